package record

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func mustID(t *testing.T, hex string) bson.ObjectID {
	t.Helper()
	id, err := bson.ObjectIDFromHex(hex)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// decodeBoth decodes with the production path and the reference path and
// fails the test if they disagree.
func decodeBoth(t *testing.T, m Message) (Record, error) {
	t.Helper()
	r, err := Decode(m, DecodeOptions{})
	ref, referr := Decode(m, DecodeOptions{Reference: true})
	if class(err) != class(referr) || string(r.Doc) != string(ref.Doc) || r.TraceID != ref.TraceID || !r.ProcessedAt.Equal(ref.ProcessedAt) {
		t.Fatalf("fast (%v, %v) and reference (%v, %v) disagree", r, err, ref, referr)
	}
	return r, err
}

func TestDecodeShapesAndHeaders(t *testing.T) {
	pAt := time.Date(2024, 5, 1, 12, 0, 0, 123000000, time.UTC)
	kafka := []Header{{HeaderTraceID, []byte("kafka-trace")}, {HeaderProcessedAt, []byte("2024-05-01T12:00:00.123Z")}}
	tests := []struct {
		name    string
		value   string
		headers []Header
		trace   string
		at      time.Time
	}{
		{name: "the record alone takes its headers from Kafka", value: `{"payload":{"a":1}}`, headers: kafka, trace: "kafka-trace", at: pAt},
		{name: "the record alone without headers has none", value: `{"payload":{"a":1}}`},
		{name: "the envelope alone gives its headers", value: `{"headers":{"traceId":"env-trace","processedAt":"2024-05-01T12:00:00.123Z"},"record":{"payload":{"a":1}}}`, trace: "env-trace", at: pAt},
		{name: "Kafka headers win over the envelope's", value: `{"headers":{"traceId":"env-trace","processedAt":"1999-01-01T00:00:00Z"},"record":{"payload":{"a":1}}}`, headers: kafka, trace: "kafka-trace", at: pAt},
		{name: "a Kafka header wins even when the envelope's is bad", value: `{"headers":{"processedAt":"nope"},"record":{"payload":{"a":1}}}`, headers: kafka, trace: "kafka-trace", at: pAt},
		{name: "the envelope fills what Kafka headers lack", value: `{"headers":{"traceId":"env-trace"},"record":{"payload":{"a":1}}}`, headers: kafka[1:], trace: "env-trace", at: pAt},
		{name: "processedAt may be an extended-JSON date", value: `{"headers":{"processedAt":{"$date":"2024-05-01T12:00:00.123Z"}},"record":{"payload":{"a":1}}}`, at: pAt},
		{name: "processedAt may be a $numberLong date", value: `{"headers":{"processedAt":{"$date":{"$numberLong":"1714564800123"}}},"record":{"payload":{"a":1}}}`, at: pAt},
		{name: "processedAt without fractional seconds or with an offset", value: `{"payload":{"a":1}}`, headers: []Header{{HeaderProcessedAt, []byte("2024-05-01T14:00:00+02:00")}}, at: pAt.Truncate(time.Second)},
		{name: "an empty processedAt header is absent", value: `{"payload":{"a":1}}`, headers: []Header{{HeaderProcessedAt, nil}}},
		{name: "a null envelope processedAt is absent", value: `{"headers":{"processedAt":null},"record":{"payload":{"a":1}}}`},
		{name: "a non-string envelope traceId is ignored", value: `{"headers":{"traceId":42},"record":{"payload":{"a":1}}}`},
		{name: "top-level headers without a record are not envelope headers", value: `{"headers":{"traceId":"x"},"payload":{"a":1}}`},
		{name: "the last of repeated Kafka headers counts", value: `{"payload":{"a":1}}`, headers: []Header{{HeaderTraceID, []byte("old")}, {HeaderTraceID, []byte("new")}}, trace: "new"},
		{name: "an envelope's other fields are ignored", value: `{"v":[1,{"x":"y"}],"headers":{"stream":"state"},"record":{"meta":true,"payload":{"a":1}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := decodeBoth(t, Message{Key: []byte(testKey), Value: []byte(tc.value), Headers: tc.headers})
			if err != nil {
				t.Fatal(err)
			}
			if r.TraceID != tc.trace || !r.ProcessedAt.Equal(tc.at) {
				t.Errorf("trace %q at %v, want %q %v", r.TraceID, r.ProcessedAt, tc.trace, tc.at)
			}
			if got := r.Doc.Lookup("a").Int32(); got != 1 {
				t.Errorf("a = %d", got)
			}
		})
	}
}

func TestDecodeExtendedJSONTypes(t *testing.T) {
	ref := mustID(t, testKey)
	date := time.Date(2024, 5, 1, 12, 0, 0, 123000000, time.UTC)
	dec, _ := bson.ParseDecimal128("1.10")
	tests := []struct {
		name  string
		json  string
		check func(bson.RawValue) bool
	}{
		{"an $oid is an ObjectId", `{"$oid":"` + testKey + `"}`, func(v bson.RawValue) bool { o, ok := v.ObjectIDOK(); return ok && o == ref }},
		{"a $date ISO string is a datetime", `{"$date":"2024-05-01T12:00:00.123Z"}`, func(v bson.RawValue) bool { d, ok := v.DateTimeOK(); return ok && d == date.UnixMilli() }},
		{"a $date $numberLong is a datetime", `{"$date":{"$numberLong":"1714564800123"}}`, func(v bson.RawValue) bool { d, ok := v.DateTimeOK(); return ok && d == date.UnixMilli() }},
		{"a $numberLong is an int64", `{"$numberLong":"5"}`, func(v bson.RawValue) bool { i, ok := v.Int64OK(); return ok && i == 5 }},
		{"a $numberInt is an int32", `{"$numberInt":"-7"}`, func(v bson.RawValue) bool { i, ok := v.Int32OK(); return ok && i == -7 }},
		{"a $numberDouble is a double", `{"$numberDouble":"2.5"}`, func(v bson.RawValue) bool { f, ok := v.DoubleOK(); return ok && f == 2.5 }},
		{"a $numberDouble Infinity is a double", `{"$numberDouble":"-Infinity"}`, func(v bson.RawValue) bool { f, ok := v.DoubleOK(); return ok && math.IsInf(f, -1) }},
		{"a $numberDecimal is a decimal128", `{"$numberDecimal":"1.10"}`, func(v bson.RawValue) bool { d, ok := v.Decimal128OK(); return ok && d == dec }},
		{"a $binary is binary data", `{"$binary":{"base64":"AAEC","subType":"80"}}`, func(v bson.RawValue) bool {
			st, b, ok := v.BinaryOK()
			return ok && st == 0x80 && string(b) == "\x00\x01\x02"
		}},
		{"a legacy $binary is binary data", `{"$binary":"AAEC","$type":"00"}`, func(v bson.RawValue) bool { _, b, ok := v.BinaryOK(); return ok && len(b) == 3 }},
		{"a $uuid is binary subtype 4", `{"$uuid":"7d1f0c8e-2b4a-4c5e-9f3a-1b2c3d4e5f60"}`, func(v bson.RawValue) bool { st, b, ok := v.BinaryOK(); return ok && st == 4 && len(b) == 16 }},
		{"a $regularExpression is a regex", `{"$regularExpression":{"pattern":"^a","options":"i"}}`, func(v bson.RawValue) bool { p, o, ok := v.RegexOK(); return ok && p == "^a" && o == "i" }},
		{"a $timestamp is a timestamp", `{"$timestamp":{"t":1,"i":2}}`, func(v bson.RawValue) bool { tt, i, ok := v.TimestampOK(); return ok && tt == 1 && i == 2 }},
		{"a $minKey is MinKey", `{"$minKey":1}`, func(v bson.RawValue) bool { return v.Type == bson.TypeMinKey }},
		{"a $maxKey is MaxKey", `{"$maxKey":1}`, func(v bson.RawValue) bool { return v.Type == bson.TypeMaxKey }},
		{"an $undefined is undefined", `{"$undefined":true}`, func(v bson.RawValue) bool { return v.Type == bson.TypeUndefined }},
		{"a $symbol is a symbol", `{"$symbol":"s"}`, func(v bson.RawValue) bool { return v.Type == bson.TypeSymbol }},
		{"a $code is JavaScript", `{"$code":"f()"}`, func(v bson.RawValue) bool { return v.Type == bson.TypeJavaScript }},
		{"a small integer is an int32", `2147483647`, func(v bson.RawValue) bool { return v.Type == bson.TypeInt32 }},
		{"minus zero is an int32 zero", `-0`, func(v bson.RawValue) bool { i, ok := v.Int32OK(); return ok && i == 0 }},
		{"an integer past int32 is an int64", `2147483648`, func(v bson.RawValue) bool { i, ok := v.Int64OK(); return ok && i == 1<<31 }},
		{"an integer past int64 is a double", `9223372036854775808`, func(v bson.RawValue) bool { f, ok := v.DoubleOK(); return ok && f == 1<<63 }},
		{"1.0 is a double", `1.0`, func(v bson.RawValue) bool { f, ok := v.DoubleOK(); return ok && f == 1 }},
		{"1e3 is a double", `1e3`, func(v bson.RawValue) bool { f, ok := v.DoubleOK(); return ok && f == 1000 }},
		{"-0.0 is a negative-zero double", `-0.0`, func(v bson.RawValue) bool { f, ok := v.DoubleOK(); return ok && math.Signbit(f) }},
		{"a string with escapes and surrogate pairs", `"a\"\\\n\u00e9\ud83d\ude00"`, func(v bson.RawValue) bool { s, ok := v.StringValueOK(); return ok && s == "a\"\\\né😀" }},
		{"a lone surrogate becomes U+FFFD", `"\ud800x"`, func(v bson.RawValue) bool { s, ok := v.StringValueOK(); return ok && s == "\uFFFDx" }},
		{"booleans and null", `[true,false,null]`, func(v bson.RawValue) bool {
			a, ok := v.ArrayOK()
			vs, _ := a.Values()
			return ok && len(vs) == 3 && vs[0].Boolean() && vs[2].Type == bson.TypeNull
		}},
		{"nested documents keep key order, a repeated name in its first place with its last value", `{"z":1,"a":2,"z":3}`, func(v bson.RawValue) bool {
			d, ok := v.DocumentOK()
			es, _ := d.Elements()
			return ok && len(es) == 2 && es[0].Key() == "z" && es[0].Value().Int32() == 3 && es[1].Key() == "a"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := decodeBoth(t, Message{Key: []byte(testKey), Value: []byte(`{"payload":{"v":` + tc.json + `}}`)})
			if err != nil {
				t.Fatal(err)
			}
			if v := r.Doc.Lookup("v"); !tc.check(v) {
				t.Errorf("v = %v (%s)", v, v.Type)
			}
		})
	}
}

func TestDecodeIDPlacement(t *testing.T) {
	id := mustID(t, testKey)
	tests := []struct {
		name, payload string
		fields        []string
	}{
		{"_id is added first when absent", `{"a":1,"b":2}`, []string{"_id", "a", "b"}},
		{"a matching $oid _id moves first", `{"a":1,"_id":{"$oid":"` + testKey + `"},"b":2}`, []string{"_id", "a", "b"}},
		{"a matching hex-string _id becomes an ObjectId", `{"_id":"` + strings.ToUpper(testKey) + `","a":1}`, []string{"_id", "a"}},
		{"a matching id is kept as it is", `{"id":"` + testKey + `"}`, []string{"_id", "id"}},
		{"a non-ObjectId id is not checked", `{"id":42}`, []string{"_id", "id"}},
		{"an id disagreeing is fine when _id agrees", `{"_id":"` + testKey + `","id":"000000000000000000000000"}`, []string{"_id", "id"}},
		{"ids in nested documents are not checked", `{"ref":{"_id":"000000000000000000000000"}}`, []string{"_id", "ref"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := decodeBoth(t, Message{Key: []byte(testKey), Value: []byte(`{"payload":` + tc.payload + `}`)})
			if err != nil {
				t.Fatal(err)
			}
			es, err := r.Doc.Elements()
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, e := range es {
				keys = append(keys, e.Key())
			}
			if strings.Join(keys, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields %v, want %v", keys, tc.fields)
			}
			if got, ok := r.Doc.Lookup("_id").ObjectIDOK(); !ok || got != id || r.ID != id {
				t.Errorf("_id %v, ID %v, want %v", got, r.ID, id)
			}
		})
	}
}

func TestDecodePoison(t *testing.T) {
	big := `{"payload":{"s":"` + strings.Repeat("x", 200) + `"}}`
	tests := []struct {
		name  string
		key   string
		value *string
		hdrs  []Header
		opts  DecodeOptions
		class string
	}{
		{name: "a missing key", key: "", value: ptr(`{"payload":{}}`), class: ClassInvalidKey},
		{name: "a key that is not hex", key: "zzzzzzzzzzzzzzzzzzzzzzzz", value: ptr(`{"payload":{}}`), class: ClassInvalidKey},
		{name: "a key of the wrong length", key: testKey + "00", value: ptr(`{"payload":{}}`), class: ClassInvalidKey},
		{name: "a tombstone with a bad key", key: "42", class: ClassInvalidKey},
		{name: "an empty value", value: ptr(``), class: ClassInvalidJSON},
		{name: "text that is not JSON", value: ptr(`hello`), class: ClassInvalidJSON},
		{name: "truncated JSON", value: ptr(`{"payload":{"a":1}`), class: ClassInvalidJSON},
		{name: "trailing garbage", value: ptr(`{"payload":{}} {}`), class: ClassInvalidJSON},
		{name: "invalid UTF-8", value: ptr("{\"payload\":{\"a\":\"\xc3\x28\"}}"), class: ClassInvalidJSON},
		{name: "a JSON array", value: ptr(`[{"payload":{}}]`), class: ClassInvalidJSON},
		{name: "a JSON scalar", value: ptr(`"payload"`), class: ClassInvalidJSON},
		{name: "JSON null", value: ptr(`null`), class: ClassInvalidJSON},
		{name: "no payload", value: ptr(`{"name":"Ada"}`), class: ClassInvalidPayload},
		{name: "a null payload", value: ptr(`{"payload":null}`), class: ClassInvalidPayload},
		{name: "a payload that is an array", value: ptr(`{"payload":[]}`), class: ClassInvalidPayload},
		{name: "an envelope record that is not an object", value: ptr(`{"record":"x"}`), class: ClassInvalidPayload},
		{name: "an envelope record without payload", value: ptr(`{"headers":{},"record":{}}`), class: ClassInvalidPayload},
		{name: "a wrong $date", value: ptr(`{"payload":{"d":{"$date":"yesterday"}}}`), class: ClassInvalidPayload},
		{name: "a wrong $oid", value: ptr(`{"payload":{"o":{"$oid":"123"}}}`), class: ClassInvalidPayload},
		{name: "a wrapper with extra keys", value: ptr(`{"payload":{"o":{"$numberLong":"1","x":2}}}`), class: ClassInvalidPayload},
		{name: "a $-prefixed field at the top", value: ptr(`{"payload":{"$set":{"a":1}}}`), class: ClassInvalidPayload},
		{name: "a $-prefixed field deep inside", value: ptr(`{"payload":{"a":[{"b":{"$inc":1}}]}}`), class: ClassInvalidPayload},
		{name: "an unknown wrapper", value: ptr(`{"payload":{"a":{"$foo":1}}}`), class: ClassInvalidPayload},
		{name: "a field name with NUL", value: ptr(`{"payload":{"a\u0000":1}}`), class: ClassInvalidPayload},
		{name: "an unparseable processedAt header", value: ptr(`{"payload":{}}`), hdrs: []Header{{HeaderProcessedAt, []byte("yesterday")}}, class: ClassInvalidPayload},
		{name: "an unparseable envelope processedAt", value: ptr(`{"headers":{"processedAt":"2024-13-01"},"record":{"payload":{}}}`), class: ClassInvalidPayload},
		{name: "an unparseable processedAt on a tombstone", hdrs: []Header{{HeaderProcessedAt, []byte("x")}}, class: ClassInvalidPayload},
		{name: "an _id of another entity", value: ptr(`{"payload":{"_id":{"$oid":"000000000000000000000000"}}}`), class: ClassIDMismatch},
		{name: "an _id that is not an ObjectId", value: ptr(`{"payload":{"_id":42}}`), class: ClassIDMismatch},
		{name: "an id of another entity without _id", value: ptr(`{"payload":{"id":"000000000000000000000000"}}`), class: ClassIDMismatch},
		{name: "a document over the limit", value: &big, opts: DecodeOptions{MaxDocBytes: 100}, class: ClassTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "" && !strings.HasPrefix(tc.name, "a missing key") {
				key = testKey
			}
			m := Message{Key: []byte(key), Headers: tc.hdrs}
			if tc.value != nil {
				m.Value = []byte(*tc.value)
			}
			for _, ref := range []bool{false, true} {
				o := tc.opts
				o.Reference = ref
				_, err := Decode(m, o)
				var pe *PoisonError
				if !errors.As(err, &pe) || pe.Class != tc.class {
					t.Fatalf("reference=%v: error %v, want class %s", ref, err, tc.class)
				}
			}
		})
	}
}

func TestDecodeTombstone(t *testing.T) {
	r, err := Decode(Message{Key: []byte(testKey), Headers: []Header{{HeaderTraceID, []byte("t")}}}, DecodeOptions{})
	if err != nil || !r.Tombstone || r.Doc != nil || r.TraceID != "t" || r.ID != mustID(t, testKey) {
		t.Fatalf("%+v %v", r, err)
	}
}

// The fast path must carry the common traffic itself, not defer to stock.
func TestFastPathHandlesCommonMessages(t *testing.T) {
	id := mustID(t, testKey)
	for _, v := range []string{
		`{"payload":{"name":"Ada","email":"ada@example.com","orgId":{"$oid":"` + testKey + `"},"createdAt":{"$date":"2024-05-01T12:00:00.000Z"},"tags":["a","b"],"n":1.5,"l":{"$numberLong":"12"},"ok":true,"x":null}}`,
		`{"headers":{"key":"` + testKey + `","traceId":"t","processedAt":"2024-05-01T12:00:00Z","topic":"codr.state.user","partion":1},"record":{"payload":{"_id":{"$oid":"` + testKey + `"},"d":{"$date":{"$numberLong":"1"}},"dec":{"$numberDecimal":"1.5"}}}}`,
		`{"payload":{"s":"\u00e9\ud83d\ude00\n","i":{"$numberInt":"1"},"f":{"$numberDouble":"NaN"}}}`,
		`{"payload":{"_id":{"$oid":"` + testKey + `"}}}`,
		`{"payload":{"a":1,"b":{"c":1,"c":2},"a":3,"arr":[{"x":1,"x":2}],"_id":"` + testKey + `","_id":"` + testKey + `"}}`,
		`{"payload":{"w":{` + wideFields(100) + `,"f3":"again"}}}`,
	} {
		if _, _, err := decodeFast([]byte(v), id, MaxBSONDocBytes); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	if _, _, err := decodeFast([]byte(`{"payload":{"s":"`+strings.Repeat("x", 200)+`"}}`), id, 100); class(err) != ClassTooLarge {
		t.Errorf("too large: %v, want the fast path to classify it", err)
	}
}

func ptr(s string) *string { return &s }

// Keys are canonical (docs/design.md "Wire format"): Kafka partitions and
// compacts by the raw key bytes, so an upper-case spelling of an ObjectId is
// another key.
func TestDecodeKeyMustBeCanonical(t *testing.T) {
	upper := strings.ToUpper(testKey)
	mixed := strings.ToUpper(testKey[:12]) + testKey[12:]
	tests := []struct {
		name, key string
		value     *string
		class     string
		message   string // a substring of the error
	}{
		{name: "a lower-case key is the document's _id", key: testKey, value: ptr(`{"payload":{"a":1}}`)},
		{name: "an upper-case key is an invalid key", key: upper, value: ptr(`{"payload":{"a":1}}`), class: ClassInvalidKey, message: "keys must be 24 lower-case hex characters"},
		{name: "a mixed-case key is an invalid key", key: mixed, value: ptr(`{"payload":{"a":1}}`), class: ClassInvalidKey, message: "keys must be 24 lower-case hex characters"},
		{name: "an upper-case key names the canonical spelling it is not", key: upper, value: ptr(`{"payload":{"a":1}}`), class: ClassInvalidKey, message: testKey},
		{name: "an upper-case key of a tombstone is an invalid key", key: upper, class: ClassInvalidKey, message: "keys must be 24 lower-case hex characters"},
		{name: "an upper-case key with a matching upper-case payload _id is still an invalid key", key: upper, value: ptr(`{"payload":{"_id":"` + upper + `"}}`), class: ClassInvalidKey},
		{name: "a key that is not hex says what a key must be", key: "zzzzzzzzzzzzzzzzzzzzzzzz", value: ptr(`{"payload":{}}`), class: ClassInvalidKey, message: "keys must be 24 lower-case hex characters"},
		{name: "a missing key says what a key must be", key: "", value: ptr(`{"payload":{}}`), class: ClassInvalidKey, message: "24 lower-case hex characters"},
		{name: "an id mismatch names the key as it is on the wire", key: testKey, value: ptr(`{"payload":{"_id":{"$oid":"000000000000000000000000"}}}`), class: ClassIDMismatch, message: testKey},
		{name: "an id-field mismatch names the key as it is on the wire", key: testKey, value: ptr(`{"payload":{"id":"000000000000000000000000"}}`), class: ClassIDMismatch, message: testKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Message{Key: []byte(tc.key)}
			if tc.value != nil {
				m.Value = []byte(*tc.value)
			}
			for _, ref := range []bool{false, true} {
				r, err := Decode(m, DecodeOptions{Reference: ref})
				if class(err) != tc.class {
					t.Fatalf("reference=%v: error %v, want class %q", ref, err, tc.class)
				}
				if err != nil {
					if !strings.Contains(err.Error(), tc.message) {
						t.Errorf("reference=%v: error %q does not say %q", ref, err, tc.message)
					}
					continue
				}
				if r.ID.Hex() != tc.key {
					t.Errorf("reference=%v: ID %s, want %s", ref, r.ID.Hex(), tc.key)
				}
			}
		})
	}
}

// Header values that are not UTF-8 never reach MongoDB as invalid BSON
// strings (the sink writes TraceID into _sync.traceId).
func TestDecodeHeaderValuesAreUTF8(t *testing.T) {
	rec := `{"payload":{"a":1}}`
	tests := []struct {
		name    string
		value   *string
		headers []Header
		trace   string
		class   string
	}{
		{name: "a traceId header that is UTF-8 is kept byte for byte", value: &rec, headers: []Header{{HeaderTraceID, []byte("tr\u00e9-1")}}, trace: "tr\u00e9-1"},
		{name: "invalid bytes in a traceId header become U+FFFD", value: &rec, headers: []Header{{HeaderTraceID, []byte("t-\xff-1")}}, trace: "t-\uFFFD-1"},
		{name: "a run of invalid bytes in a traceId header becomes one U+FFFD", value: &rec, headers: []Header{{HeaderTraceID, []byte("t-\xc3\x28\xff\xfe")}}, trace: "t-\uFFFD(\uFFFD"},
		{name: "a truncated rune at the end of a traceId header becomes U+FFFD", value: &rec, headers: []Header{{HeaderTraceID, []byte("t-\xe2\x82")}}, trace: "t-\uFFFD"},
		{name: "a tombstone's traceId header is made UTF-8 too", headers: []Header{{HeaderTraceID, []byte("\xff")}}, trace: "\uFFFD"},
		{name: "a Kafka traceId that is not UTF-8 still wins over the envelope's", value: ptr(`{"headers":{"traceId":"env"},"record":{"payload":{"a":1}}}`), headers: []Header{{HeaderTraceID, []byte("\xffk")}}, trace: "\uFFFDk"},
		{name: "an envelope traceId with a lone surrogate escape becomes U+FFFD", value: ptr(`{"headers":{"traceId":"t-\ud800"},"record":{"payload":{"a":1}}}`), trace: "t-\uFFFD"},
		{name: "an envelope header that is not UTF-8 makes the value invalid JSON", value: ptr("{\"headers\":{\"traceId\":\"t-\xff\"},\"record\":{\"payload\":{\"a\":1}}}"), class: ClassInvalidJSON},
		{name: "a processedAt header that is not UTF-8 is unparseable, so invalid-payload", value: &rec, headers: []Header{{HeaderProcessedAt, []byte("2024-05-01T12:00:00Z\xff")}}, class: ClassInvalidPayload},
		{name: "a processedAt header of extended JSON that is not UTF-8 is invalid-payload", value: &rec, headers: []Header{{HeaderProcessedAt, []byte("{\"$date\":\"2024-05-01T12:00:00Z\xff\"}")}}, class: ClassInvalidPayload},
		{name: "an unparseable processedAt cut mid-rune in the error message leaves it UTF-8", value: &rec, headers: []Header{{HeaderProcessedAt, []byte(`{"$date":"x` + strings.Repeat("\u00e9", 40) + `"}`)}}, class: ClassInvalidPayload},
		{name: "a key header that is not UTF-8 is not read by Decode", value: &rec, headers: []Header{{HeaderKey, []byte("\xff")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Message{Key: []byte(testKey), Headers: tc.headers}
			if tc.value != nil {
				m.Value = []byte(*tc.value)
			}
			for _, ref := range []bool{false, true} {
				r, err := Decode(m, DecodeOptions{Reference: ref})
				if class(err) != tc.class {
					t.Fatalf("reference=%v: error %v, want class %q", ref, err, tc.class)
				}
				if err != nil {
					if !utf8.ValidString(err.Error()) {
						t.Errorf("reference=%v: error message %q is not UTF-8", ref, err)
					}
					continue
				}
				if r.TraceID != tc.trace || !utf8.ValidString(r.TraceID) {
					t.Errorf("reference=%v: TraceID %q, want %q", ref, r.TraceID, tc.trace)
				}
			}
		})
	}
}

// When the Kafka headers and the envelope's headers both carry a field, the
// Kafka header wins; an empty Kafka header counts as absent.
func TestKafkaHeadersWinOverTheEnvelopesAndAnEmptyOneIsAbsent(t *testing.T) {
	env := `{"headers":{"traceId":"env-trace","processedAt":"2024-05-01T12:00:00Z"},"record":{"payload":{"a":1}}}`
	envAt := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	kafkaAt := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		headers []Header
		trace   string
		at      time.Time
	}{
		{"the envelope's fields count when Kafka carries none", nil, "env-trace", envAt},
		{"Kafka's fields win when both carry them", []Header{{HeaderTraceID, []byte("kafka-trace")}, {HeaderProcessedAt, []byte("2025-01-02T03:04:05Z")}}, "kafka-trace", kafkaAt},
		{"an empty Kafka header is absent, so the envelope's field counts", []Header{{HeaderTraceID, nil}, {HeaderProcessedAt, []byte{}}}, "env-trace", envAt},
		{"the last of repeated Kafka headers wins", []Header{{HeaderTraceID, []byte("first")}, {HeaderTraceID, []byte("last")}}, "last", envAt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, ref := range []bool{false, true} {
				r, err := Decode(Message{Key: []byte(testKey), Value: []byte(env), Headers: tc.headers}, DecodeOptions{Reference: ref})
				if err != nil {
					t.Fatalf("reference=%v: %v", ref, err)
				}
				if r.TraceID != tc.trace || !r.ProcessedAt.Equal(tc.at) {
					t.Errorf("reference=%v: traceId %q processedAt %s, want %q %s", ref, r.TraceID, r.ProcessedAt, tc.trace, tc.at)
				}
			}
		})
	}
}

// The stale guard compares processedAt in the batch (Go times) and in
// MongoDB (BSON dates, milliseconds): sub-millisecond digits made the two
// disagree, so a key's result depended on batch boundaries.
func TestProcessedAtIsKeptToTheMillisecondAsMongoDBStoresIt(t *testing.T) {
	for _, ref := range []bool{false, true} {
		r, err := Decode(Message{Key: []byte(testKey), Value: []byte(`{"payload":{"a":1}}`),
			Headers: []Header{{HeaderProcessedAt, []byte("2025-01-01T00:00:00.0009Z")}}}, DecodeOptions{Reference: ref})
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC); !r.ProcessedAt.Equal(want) {
			t.Errorf("reference=%v: processedAt %s, want %s", ref, r.ProcessedAt.Format(time.RFC3339Nano), want)
		}
	}
}

// parseUTCMillis computes the date itself: it must agree with package time
// on every day of years around the edges (0, leap and century years, 9999),
// and refuse the days a month does not have.
func TestParseUTCMillisMatchesPackageTime(t *testing.T) {
	for _, y := range []int{0, 1, 3, 4, 99, 100, 399, 400, 1582, 1899, 1900, 1969, 1970, 1971, 1999, 2000, 2023, 2024, 2100, 2400, 9999} {
		for mo := 1; mo <= 12; mo++ {
			for d := 1; d <= 31; d++ {
				s := fmt.Sprintf("%04d-%02d-%02dT23:59:58.999Z", y, mo, d)
				got, ok := parseUTCMillis([]byte(s))
				tm := time.Date(y, time.Month(mo), d, 23, 59, 58, 999e6, time.UTC)
				if want := tm.Day() == d; ok != want {
					t.Fatalf("%s: ok %v, want %v", s, ok, want)
				}
				if ok && got != tm.UnixMilli() {
					t.Fatalf("%s: %d, want %d", s, got, tm.UnixMilli())
				}
			}
		}
	}
}

// number's exact fast path gives ParseFloat's float64, sign of zero included.
func TestExactDecimalMatchesParseFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lits := []string{"0.0", "-0.0", "-0.000", "0.1", "0.3", "1.7976931348623", "999999999999.999", "-123456789012.345", "0.000000000000001", "9007199254.740993"}
	for range 200000 {
		intPart := strconv.FormatUint(rng.Uint64N(1_000_000_000_000), 10)
		intPart = intPart[:min(len(intPart), 1+rng.IntN(12))]
		frac := strconv.FormatUint(rng.Uint64(), 10)
		frac = frac[:min(len(frac), 1+rng.IntN(15))]
		s := intPart + "." + frac
		if rng.IntN(2) == 0 {
			s = "-" + s
		}
		lits = append(lits, s)
	}
	for _, s := range lits {
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := exactDecimal([]byte(s), strings.IndexByte(s, '.'), false)
		if ok && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: %v, want %v", s, got, want)
		}
	}
}

// processedAt's fast path gives parseISO's time.Time, the same value.
func TestParseUTCNanoMatchesParseISO(t *testing.T) {
	for _, s := range []string{
		"2024-05-01T12:00:00Z", "2024-05-01T12:00:00.1Z", "2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123456789Z",
		"2024-05-01T12:00:00.1234567891Z", "2024-05-01T12:00:00.Z", "2024-02-29T23:59:59.999999999Z", "2023-02-29T00:00:00Z",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.9Z", "1969-12-31T23:59:59.5Z", "2024-05-01T24:00:00Z", "2024-05-01T12:00:60Z",
		"2024-05-01T12:00:00+00:00", "2024-05-01 12:00:00Z", "2024-13-01T12:00:00Z", "2024-05-01T12:00:0xZ", "2024-05-01T12:00:00.12a4Z",
	} {
		want, wantOK := parseISO(s)
		got, ok := parseUTCNano([]byte(s))
		if ok && (!wantOK || got != want) {
			t.Errorf("%s: %v, want %v %v", s, got, want, wantOK)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		tm := time.Unix(rng.Int64N(300000000000)-62135596800, rng.Int64N(1e9)).UTC()
		s := tm.Format(time.RFC3339Nano)
		want, _ := parseISO(s)
		got, ok := parseUTCNano([]byte(s))
		if !ok || got != want {
			t.Fatalf("%s: %v %v, want %v", s, got, ok, want)
		}
	}
}

package record

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

const testKey = "5f1d7e3b9c8a4b2e6d0f1a2b"

// seedValues is the shared corpus of the fuzz targets and of the
// agreement test: both shapes, every extended-JSON type, poison kinds,
// escapes, numbers at the edges, nesting.
var seedValues = []string{
	`{"payload":{"name":"Ada","age":36}}`,
	`{"payload":{}}`,
	` {"payload" : { "a" : [ 1 , 2 , { "b" : null } ] } } `,
	`{"headers":{"key":"` + testKey + `","traceId":"7d1f0c8e-2b4a-4c5e-9f3a-1b2c3d4e5f60","processedAt":"2024-05-01T12:00:00.123Z"},"record":{"payload":{"name":"Ada"}}}`,
	`{"headers":{"processedAt":{"$date":"2024-05-01T12:00:00Z"}},"record":{"payload":{"x":1}}}`,
	`{"headers":{"processedAt":{"$date":{"$numberLong":"1714564800000"}}},"record":{"payload":{"x":1}}}`,
	`{"headers":{"processedAt":"yesterday"},"record":{"payload":{"x":1}}}`,
	`{"headers":{"traceId":42,"processedAt":null},"record":{"payload":{"x":1}}}`,
	`{"headers":{"traceId":"t\u00e9"},"record":{"payload":{"x":1}},"payload":{"ignored":true}}`,
	`{"payload":{"ignored":true},"record":{"payload":{"x":1}}}`,
	`{"record":{"payload":{"x":1},"extra":[1,2,{"y":"z"}]},"headers":"not an object"}`,
	`{"record":{"payload":{"x":1}},"record":{"payload":{"x":2}}}`,
	`{"payload":{"x":1},"payload":{"x":2}}`,
	`{"pay\u006coad":{"x":1}}`,
	`{"record":[]}`,
	`{"record":{"nopayload":1}}`,
	`{"headers":{}}`,
	`{"payload":null}`,
	`{"payload":[1,2]}`,
	`{"payload":"x"}`,
	`{}`,
	`[]`,
	`[{"payload":{}}]`,
	`"payload"`,
	`42`,
	`null`,
	`true`,
	``,
	` `,
	`{`,
	`{"payload":{"a":1}`,
	`{"payload":{"a":1}}}`,
	`{"payload":{"a":1}} x`,
	`{"payload":{"a":01}}`,
	`{"payload":{"a":1.}}`,
	`{"payload":{"a":.5}}`,
	`{"payload":{"a":+1}}`,
	`{"payload":{"a":tru}}`,
	`{"payload":{"a":truex}}`,
	`{"payload":{"a":'x'}}`,
	"{\"payload\":{\"a\":\"\x01\"}}",
	"{\"payload\":{\"a\":\"\xff\"}}",
	"{\"payload\":{\"a\":\"\xed\xa0\x80\"}}",
	"\xef\xbb\xbf{\"payload\":{}}",
	`{"payload":{"_id":{"$oid":"` + testKey + `"},"name":"Ada"}}`,
	`{"payload":{"name":"Ada","_id":"` + testKey + `"}}`,
	`{"payload":{"name":"Ada","_id":"` + strings.ToUpper(testKey) + `"}}`,
	`{"payload":{"_id":{"$oid":"000000000000000000000000"}}}`,
	`{"payload":{"_id":"nope"}}`,
	`{"payload":{"_id":7}}`,
	`{"payload":{"_id":"` + testKey + `","_id":{"$oid":"` + testKey + `"}}}`,
	`{"payload":{"id":"` + testKey + `"}}`,
	`{"payload":{"id":{"$oid":"000000000000000000000000"}}}`,
	`{"payload":{"id":"000000000000000000000000"}}`,
	`{"payload":{"id":"000000000000000000000000","_id":"` + testKey + `"}}`,
	`{"payload":{"id":12}}`,
	`{"payload":{"id":"slug-not-hex"}}`,
	`{"payload":{"n":{"sub":{"_id":"zzz","id":"000000000000000000000000"}}}}`,
	`{"payload":{"$set":{"a":1}}}`,
	`{"payload":{"a":{"b":{"$set":1}}}}`,
	`{"payload":{"a":[{"$inc":1}]}}`,
	`{"payload":{"a":{"b":1,"$oid":"` + testKey + `"}}}`,
	`{"payload":{"$oid":"` + testKey + `"}}`,
	`{"payload":{"a\u0000b":1}}`,
	`{"payload":{"a":"x\u0000y"}}`,
	`{"payload":{"":1}}`,
	`{"payload":{"a.b":1}}`,
	`{"payload":{"\u0024set":1}}`,
	`{"payload":{"a":{"\u0024oid":"` + testKey + `"}}}`,
	`{"payload":{"a":{"$oid":"` + testKey + `"}}}`,
	`{"payload":{"a":{"$oid":"` + strings.ToUpper(testKey) + `"}}}`,
	`{"payload":{"a":{"$oid":"xyz"}}}`,
	`{"payload":{"a":{"$oid":12}}}`,
	`{"payload":{"a":{"$oid":"` + testKey + `","b":1}}}`,
	`{"payload":{"a":{"$date":"2024-05-01T12:00:00Z"}}}`,
	`{"payload":{"a":{"$date":"2024-05-01T12:00:00.123456789+02:00"}}}`,
	`{"payload":{"a":{"$date":"2024-05-01T12:00:00.5-0700"}}}`,
	`{"payload":{"a":{"$date":"2024-05-01"}}}`,
	`{"payload":{"a":{"$date":"yesterday"}}}`,
	`{"payload":{"a":{"$date":{"$numberLong":"1714564800000"}}}}`,
	`{"payload":{"a":{"$date":{"$numberLong":"-1"}}}}`,
	`{"payload":{"a":{"$date":{"$numberLong":"x"}}}}`,
	`{"payload":{"a":{"$date":1714564800000}}}`,
	`{"payload":{"a":{"$date":1.5}}}`,
	`{"payload":{"a":{"$numberLong":"9223372036854775807"}}}`,
	`{"payload":{"a":{"$numberLong":"9223372036854775808"}}}`,
	`{"payload":{"a":{"$numberLong":"+5"}}}`,
	`{"payload":{"a":{"$numberLong":5}}}`,
	`{"payload":{"a":{"$numberInt":"2147483647"}}}`,
	`{"payload":{"a":{"$numberInt":"2147483648"}}}`,
	`{"payload":{"a":{"$numberInt":"-0"}}}`,
	`{"payload":{"a":{"$numberDouble":"1.5"}}}`,
	`{"payload":{"a":{"$numberDouble":"Infinity"}}}`,
	`{"payload":{"a":{"$numberDouble":"-Infinity"}}}`,
	`{"payload":{"a":{"$numberDouble":"NaN"}}}`,
	`{"payload":{"a":{"$numberDouble":"-0.0"}}}`,
	`{"payload":{"a":{"$numberDouble":"1e400"}}}`,
	`{"payload":{"a":{"$numberDecimal":"1.10"}}}`,
	`{"payload":{"a":{"$numberDecimal":"-Infinity"}}}`,
	`{"payload":{"a":{"$numberDecimal":"nope"}}}`,
	`{"payload":{"a":{"$binary":{"base64":"AAEC","subType":"00"}}}}`,
	`{"payload":{"a":{"$binary":{"base64":"AAEC","subType":"80"}}}}`,
	`{"payload":{"a":{"$binary":"AAEC","$type":"00"}}}`,
	`{"payload":{"a":{"$uuid":"7d1f0c8e-2b4a-4c5e-9f3a-1b2c3d4e5f60"}}}`,
	`{"payload":{"a":{"$regularExpression":{"pattern":"^a","options":"i"}}}}`,
	`{"payload":{"a":{"$regex":"^a","$options":"i"}}}`,
	`{"payload":{"a":{"$timestamp":{"t":1,"i":2}}}}`,
	`{"payload":{"a":{"$minKey":1},"b":{"$maxKey":1}}}`,
	`{"payload":{"a":{"$undefined":true}}}`,
	`{"payload":{"a":{"$symbol":"s"}}}`,
	`{"payload":{"a":{"$code":"f()"}}}`,
	`{"payload":{"a":{"$code":"f()","$scope":{"x":1}}}}`,
	`{"payload":{"a":{"$dbPointer":{"$ref":"c","$id":{"$oid":"` + testKey + `"}}}}}`,
	`{"payload":{"a":{"$unknown":1}}}`,
	`{"payload":{"i":0,"n":-0,"m":-1,"big":2147483647,"bigger":2147483648,"neg":-2147483648,"negger":-2147483649}}`,
	`{"payload":{"l":9223372036854775807,"l2":-9223372036854775808,"huge":9223372036854775808,"huger":123456789012345678901234567890}}`,
	`{"payload":{"f":1.0,"e":1e3,"E":1E+3,"z":-0.0,"s":1e-400,"o":1e400}}`,
	`{"payload":{"f":0.1,"g":123456789.123456789,"h":5e-324,"k":1.7976931348623157e308}}`,
	`{"payload":{"s":"\"\\\/\b\f\n\r\t","u":"\u00e9\u4e2d\ud83d\ude00"}}`,
	`{"payload":{"s":"\ud800","t":"\udc00x","u":"\ud800\u0041","v":"\ud800\ud800\udc00","w":"\ud800\n","x":"\udbff\udfff"}}`,
	`{"payload":{"s":"\ud800"}}`,
	`{"payload":{"s":"\ud800\"}}`,
	`{"payload":{"s":"\uZZZZ"}}`,
	`{"payload":{"s":"\x"}}`,
	`{"payload":{"s":"é中😀"}}`,
	`{"payload":{"a":1,"a":2,"b":{"c":1,"c":"2"}}}`,
	`{"payload":{"a":1,"b":2,"a":3,"c":{"d":[{"e":1,"f":2,"e":{"g":0,"g":1}}],"d":5},"a":{"$date":"2024-05-01T12:00:00Z"}}}`,
	`{"payload":{"a":1,"\u0061":2,"é":3,"\u00e9":4,"":5,"":6}}`,
	`{"payload":{"k\ud800\ud800\udc00":1,"k\ufffd\ud800\udc00":2,"k\ud800\ud800\ud800":3}}`,
	`{"payload":{"a":{"$set":1},"a":{"$oid":"bad"},"a":[{"x":1,"x":2}]}}`,
	`{"payload":{"_id":"000000000000000000000000","_id":"` + testKey + `","id":"` + testKey + `","id":"000000000000000000000000"}}`,
	`{"payload":{"_id":"` + testKey + `","a":1,"_id":{"$oid":"` + testKey + `"},"a":2}}`,
	`{"payload":{"id":"000000000000000000000000","id":"` + testKey + `"}}`,
	`{"payload":{"o":{"$oid":"000000000000000000000000","$oid":"` + testKey + `"},"n":{"$numberLong":"1","$numberLong":"2"}}}`,
	`{"payload":{"d":{"$date":{"$numberLong":"1","$numberLong":"2"}},"t":{"$timestamp":{"t":1,"i":2,"t":3}}}}`,
	`{"payload":{"b":{"$binary":{"base64":"AAEC","subType":"00","base64":"AA=="}},"r":{"$regex":"a","$options":"i","$regex":"b"}}}`,
	`{"payload":{"c":{"$code":"f","$scope":{"x":1,"x":2},"$code":"g"}}}`,
	`{"payload":{"w":{` + strings.Repeat(`"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,`, 4) + `"k":0}}}`,
	`{"payload":{"w":{` + wideFields(40) + `,"f7":"again","f39":"end","f0":{"f0":1,"f0":2}}}}`,
	`{"headers":{"traceId":"a","traceId":"b"},"record":{"payload":{"x":1}},"headers":{"processedAt":"2024-05-01T12:00:00Z"}}`,
	`{"headers":{"traceId":"a"},"headers":"x","record":{"payload":{"x":1,"x":2}},"record":{"payload":{"y":1,"y":2}}}`,
	`{"record":{"payload":{"x":1},"payload":{"x":2,"x":3}},"payload":{"z":1},"payload":{"z":2}}`,
	`{"payload":{"z":1,"a":2,"m":3}}`,
	`{"payload":{"t":true,"f":false,"n":null,"arr":[],"obj":{},"mixed":[1,"a",null,true,{"x":[[]]}]}}`,
	`{"payload":{"a":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}}`,
	`{"payload":` + strings.Repeat(`{"a":`, 120) + `1` + strings.Repeat(`}`, 120) + `}`,
	`{"payload":` + strings.Repeat(`{"a":`, 205) + `1` + strings.Repeat(`}`, 205) + `}`,
	`{"payload":{"a":` + strings.Repeat(`[`, 300) + strings.Repeat(`]`, 300) + `}}`,
	`{"payload":{"name":"Ada","email":"ada@example.com","orgId":{"$oid":"` + testKey + `"},"createdAt":{"$date":"2024-05-01T12:00:00.000Z"},"tags":["a","b"],"address":{"city":"London","zip":"N1"},"score":{"$numberLong":"12"}}}`,
	// The fast path's compact forms and their edges.
	`{"payload":{"a":{"$numberLong":"-123"},"b":{"$numberLong":"007"},"c":{"$numberLong":"123456789012345678"},"d":{"$numberLong":"1234567890123456789"},"e":{"$numberLong":"-"},"f":{"$numberLong":""},"g":{"$numberLong":"-9223372036854775808"},"h":{"$numberLong":"-0"}}}`,
	`{"payload":{"a":-0.0,"b":0.000000000000001,"c":123456789012.345,"d":1234567890123456.7,"e":-99999999999999.9,"f":0.30000000000000004}}`,
	`{"payload":{"k":"abcdefg","kk":"abcdefgh","abcdefg":"abcdefghi","abcdefgh":"","abcdefghi":"\u0041","x":"é"}}`,
	`{"payload":{"o":{"$oid":"5F1D7E3B9C8A4B2E6D0F1A2b"},"p":{"$oid":"5f1d7e3b9c8a4b2e6d0f1a2g"},"d":{"$date":"2024-02-30T00:00:00.000Z"},"e":{"$date":"2024-02-29T23:59:59.999Z"},"f":{"$date":"0000-01-01T00:00:00.000Z"}}}`,
}

// wideFields returns n JSON members "f0":0,...,"f<n-1>":<n-1>.
func wideFields(n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`"f` + strconv.Itoa(i) + `":` + strconv.Itoa(i))
	}
	return sb.String()
}

func FuzzDecodeMatchesStock(f *testing.F) {
	for _, s := range seedValues {
		f.Add([]byte(s), uint16(0))
		f.Add([]byte(s), uint16(40))
	}
	id, _ := parseKey([]byte(testKey))
	f.Fuzz(func(t *testing.T, value []byte, maxDoc uint16) {
		max := MaxBSONDocBytes
		if maxDoc != 0 {
			max = int(maxDoc)
		}
		fdoc, fenv, ferr := decodeFast(value, id, max)
		if errors.Is(ferr, errFallback) {
			return
		}
		sdoc, senv, serr := decodeStock(value, id, max)
		if ferr != nil || serr != nil {
			if ferr == nil || serr == nil || class(ferr) != class(serr) {
				t.Fatalf("value %q: fast error %v, stock error %v", value, ferr, serr)
			}
			return
		}
		if !bytes.Equal(fdoc, sdoc) {
			t.Fatalf("value %q:\nfast  %x\nstock %x", value, fdoc, sdoc)
		}
		if p := duplicateName(sdoc, ""); p != "" {
			t.Fatalf("value %q: field %s twice in %s", value, p, sdoc)
		}
		ft, fp, fe := resolveHeaders(nil, fenv)
		st, sp, se := resolveHeaders(nil, senv)
		if ft != st || !fp.Equal(sp) || class(fe) != class(se) {
			t.Fatalf("value %q: headers differ: fast (%q, %v, %v), stock (%q, %v, %v)", value, ft, fp, fe, st, sp, se)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range seedValues {
		f.Add([]byte(testKey), []byte(s), "", false)
		f.Add([]byte(testKey), []byte(s), "2024-05-01T12:00:00Z", false)
	}
	f.Add([]byte("nope"), []byte(`{"payload":{}}`), "", false)
	f.Add([]byte(testKey), []byte(nil), "", true)
	f.Add([]byte(strings.ToUpper(testKey)), []byte(`{"payload":{}}`), "", false)
	f.Add([]byte(testKey), []byte(`{"payload":{}}`), "2024-05-01T12:00:00Z\xff", false)
	f.Add([]byte(testKey), []byte(`{"payload":{}}`), "2024-05-01T12:00:00.123456789Z", false)
	f.Add([]byte(testKey), []byte(`{"payload":{}}`), "2024-02-30T12:00:00.1Z", false)
	f.Fuzz(func(t *testing.T, key, value []byte, processedAt string, tombstone bool) {
		m := Message{Key: key, Value: value}
		if tombstone {
			m.Value = nil
		}
		if processedAt != "" {
			// The same bytes as a traceId: any bytes must give a UTF-8 TraceID.
			m.Headers = []Header{{Key: HeaderProcessedAt, Value: []byte(processedAt)}, {Key: HeaderTraceID, Value: []byte(processedAt)}}
		}
		r, err := Decode(m, DecodeOptions{})
		ref, referr := Decode(m, DecodeOptions{Reference: true})
		if (err == nil) != (referr == nil) || class(err) != class(referr) {
			t.Fatalf("key %q value %q: fast error %v, reference error %v", key, value, err, referr)
		}
		if err != nil {
			var pe *PoisonError
			if !errors.As(err, &pe) || pe.Class == "" {
				t.Fatalf("error %v is not a classified *PoisonError", err)
			}
			return
		}
		if !bytes.Equal(r.Doc, ref.Doc) || r.ID != ref.ID || r.Tombstone != ref.Tombstone || r.TraceID != ref.TraceID || !r.ProcessedAt.Equal(ref.ProcessedAt) {
			t.Fatalf("key %q value %q: records differ:\n%+v\n%+v", key, value, r, ref)
		}
		if !r.Tombstone {
			if err := r.Doc.Validate(); err != nil {
				t.Fatalf("value %q: invalid BSON: %v", value, err)
			}
			if e := r.Doc.Index(0); e.Key() != "_id" {
				t.Fatalf("value %q: first field is %q, want _id", value, e.Key())
			}
			if p := duplicateName(r.Doc, ""); p != "" {
				t.Fatalf("value %q: field %s twice in %s", value, p, r.Doc)
			}
			if !utf8.ValidString(r.TraceID) {
				t.Fatalf("traceId %q is not UTF-8", r.TraceID)
			}
		}
	})
}

func class(err error) string {
	var pe *PoisonError
	if errors.As(err, &pe) {
		return pe.Class
	}
	if err != nil {
		return "unclassified: " + err.Error()
	}
	return ""
}

package deadletter

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/codr/statesync/record"
)

const testKey = "5f1d7e3b9c8a4b2e6d0f1a2b"

// seedValues seed the fuzz target: both shapes, envelopes with repeated
// parts and odd headers, each record encoding (JSON, string, base64).
var seedValues = []string{
	`{"payload":{"name":"Ada","age":36}}`,
	` {"payload" : { "a" : [ 1 , 2 , { "b" : null } ] } } `,
	`{"headers":{"key":"` + testKey + `","traceId":"7d1f0c8e-2b4a-4c5e-9f3a-1b2c3d4e5f60","processedAt":"2024-05-01T12:00:00.123Z"},"record":{"payload":{"name":"Ada"}}}`,
	`{"headers":{"processedAt":{"$date":"2024-05-01T12:00:00Z"}},"record":{"payload":{"x":1}}}`,
	`{"headers":{"traceId":42,"processedAt":null},"record":{"payload":{"x":1}}}`,
	`{"headers":{"traceId":"t\u00e9"},"record":{"payload":{"x":1}},"payload":{"ignored":true}}`,
	`{"record":{"payload":{"x":1},"extra":[1,2,{"y":"z"}]},"headers":"not an object"}`,
	`{"record":{"payload":{"x":1}},"record":{"payload":{"x":2}}}`,
	`{"pay\u006coad":{"x":1}}`,
	`{"headers":{}}`,
	`{"payload":[1,2]}`,
	`[]`,
	`42`,
	`null`,
	``,
	` `,
	`{"payload":{"a":1}`,
	"{\"payload\":{\"a\":\"\x01\"}}",
	"{\"payload\":{\"a\":\"\xff\"}}",
}

// class is the poison class of a Decode error ("" for none).
func class(err error) string {
	var pe *record.PoisonError
	if errors.As(err, &pe) {
		return pe.Class
	}
	if err != nil {
		return "unclassified: " + err.Error()
	}
	return ""
}

func TestDeadLetterRoundTrip(t *testing.T) {
	at := time.Date(2024, 5, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))
	hdrs := []record.Header{{Key: record.HeaderKey, Value: []byte(testKey)}, {Key: record.HeaderTraceID, Value: []byte("7d1f0c8e-2b4a-4c5e-9f3a-1b2c3d4e5f60")},
		{Key: record.HeaderProcessedAt, Value: []byte("2024-05-01T12:00:00.123Z")}}
	big := make([]byte, 0, 17<<20+64)
	big = append(big, `{"payload":{"blob":"`...)
	big = append(big, strings.Repeat("x", 17<<20)...)
	big = append(big, `"}}`...)

	tests := []struct {
		name     string
		key      []byte
		value    []byte
		headers  []record.Header
		class    string
		encoding string
		envelope bool // the replay carries the envelope's record part only
	}{
		{name: "a key that is not an ObjectId", key: []byte("user-42"), value: []byte(`{"payload":{"a":1}}`), headers: hdrs, class: record.ClassInvalidKey, encoding: RecordJSON},
		{name: "a missing key", value: []byte(`{"payload":{"a":1}}`), class: record.ClassInvalidKey, encoding: RecordJSON},
		{name: "a tombstone with a bad key stays a tombstone", key: []byte("nope"), class: record.ClassInvalidKey, encoding: RecordTombstone},
		{name: "text that is not JSON is kept verbatim as a string", key: []byte(testKey), value: []byte("hello \"world\"\n\t\x01 é"), headers: hdrs, class: record.ClassInvalidJSON, encoding: RecordString},
		{name: "invalid UTF-8 is kept as base64", key: []byte(testKey), value: []byte("{\"payload\":{\"a\":\"\xff\xfe\"}}"), class: record.ClassInvalidJSON, encoding: RecordBase64},
		{name: "JSON with surrounding whitespace is kept byte for byte", key: []byte(testKey), value: []byte(" [1, 2] \n"), class: record.ClassInvalidJSON, encoding: RecordString},
		{name: "the JSON null value is not a tombstone", key: []byte(testKey), value: []byte(`null`), class: record.ClassInvalidJSON, encoding: RecordJSON},
		{name: "an empty value is not a tombstone", key: []byte(testKey), value: []byte{}, class: record.ClassInvalidJSON, encoding: RecordString},
		{name: "a payload that is not an object", key: []byte(testKey), value: []byte(`{"payload":[1,2]}`), headers: hdrs, class: record.ClassInvalidPayload, encoding: RecordJSON},
		{name: "a $-prefixed field", key: []byte(testKey), value: []byte(`{"payload":{"$set":{"a":1}}}`), class: record.ClassInvalidPayload, encoding: RecordJSON},
		{name: "an envelope with a bad processedAt", key: []byte(testKey), value: []byte(`{"headers":{"key":"` + testKey + `","traceId":"t-1","processedAt":"yesterday"},"record":{"payload":{"a":1}}}`), class: record.ClassInvalidPayload, encoding: RecordJSON, envelope: true},
		{name: "an envelope whose _id disagrees with the key", key: []byte(testKey), value: []byte(`{"headers":{"traceId":"t-2","processedAt":{"$date":"2024-05-01T12:00:00Z"}},"record":{"payload":{"_id":{"$oid":"000000000000000000000000"}}}}`), class: record.ClassIDMismatch, encoding: RecordJSON, envelope: true},
		{name: "a 17 MiB document", key: []byte(testKey), value: big, headers: hdrs, class: record.ClassTooLarge, encoding: RecordJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := record.Message{Topic: "codr.state.user", Partition: 3, Offset: 1234567, Key: tc.key, Value: tc.value, Headers: tc.headers}
			_, err := record.Decode(m, record.DecodeOptions{})
			var pe *record.PoisonError
			if !errors.As(err, &pe) || pe.Class != tc.class {
				t.Fatalf("Decode error %v, want class %s", err, tc.class)
			}
			k, v, h := Encode(m, pe, at)
			if !bytes.Equal(k, tc.key) {
				t.Fatalf("dead letter key %q, want %q", k, tc.key)
			}
			if !json.Valid(v) {
				t.Fatalf("dead letter value is not JSON: %.200q", v)
			}
			if len(tc.value) > 1<<20 && cap(v) > len(v)+len(v)/8 {
				t.Errorf("value buffer over-allocated: len %d cap %d", len(v), cap(v))
			}
			for _, want := range []string{HeaderStream, HeaderTopic, HeaderPartition, HeaderOffset, HeaderErrorClass, HeaderErrorMessage, HeaderErrorAt} {
				if _, ok := record.LastHeader(h, want); !ok {
					t.Errorf("no %s Kafka header", want)
				}
			}
			info, err := Parse(k, v, h)
			if err != nil {
				t.Fatal(err)
			}
			if info.Topic != m.Topic || info.Partition != 3 || info.Offset != 1234567 || info.Class != tc.class || info.Message != pe.Err.Error() {
				t.Errorf("parsed %+v", info)
			}
			if !info.At.Equal(at) || info.At.Location() != time.UTC {
				t.Errorf("error.at %v, want %v in UTC", info.At, at)
			}
			var enc struct {
				Headers struct {
					RecordEncoding string `json:"recordEncoding"`
					Stream         string `json:"stream"`
				} `json:"headers"`
			}
			if err := json.Unmarshal(v, &enc); err != nil || enc.Headers.RecordEncoding != tc.encoding || enc.Headers.Stream != StreamState {
				t.Errorf("value headers %+v (%v), want encoding %s", enc.Headers, err, tc.encoding)
			}
			orig := info.Original
			if orig.Topic != m.Topic || orig.Partition != m.Partition || orig.Offset != m.Offset || !bytes.Equal(orig.Key, m.Key) {
				t.Errorf("original %s/%d@%d key %q", orig.Topic, orig.Partition, orig.Offset, orig.Key)
			}
			if !tc.envelope && (!bytes.Equal(orig.Value, m.Value) || (orig.Value == nil) != (m.Value == nil)) {
				t.Errorf("original value %.100q, want %.100q", orig.Value, m.Value)
			}
			for _, h := range tc.headers {
				if got, ok := record.LastHeader(orig.Headers, h.Key); !ok || !bytes.Equal(got, h.Value) {
					t.Errorf("original header %s = %q, want %q", h.Key, got, h.Value)
				}
			}
			// A replay of the original fails the same way (a hotfix would
			// make it pass) and, for envelopes, carries the same headers.
			r2, err2 := record.Decode(orig, record.DecodeOptions{})
			if class(err2) != tc.class {
				t.Errorf("replayed original decodes to %v (%+v), want class %s", err2, r2, tc.class)
			}
			if tc.envelope {
				if !strings.HasPrefix(info.TraceID, "t-") {
					t.Errorf("envelope traceId lost: %q", info.TraceID)
				}
			}
		})
	}
}

func TestDeadLetterOfEnvelopeReplaysEquivalently(t *testing.T) {
	m := record.Message{Topic: "codr.state.user", Key: []byte(testKey), Value: []byte(`{"headers":{"key":"` + testKey + `","traceId":"t-9","processedAt":"2024-05-01T12:00:00.5Z"},"record":{"payload":{"a":{"$numberLong":"5"}}}}`)}
	want, err := record.Decode(m, record.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k, v, h := Encode(m, &record.PoisonError{Class: record.ClassRejected, Err: errors.New("document failed validation")}, time.Now())
	info, err := Parse(k, v, h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := record.Decode(info.Original, record.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Doc, want.Doc) || got.TraceID != want.TraceID || !got.ProcessedAt.Equal(want.ProcessedAt) {
		t.Fatalf("replay decodes to %+v, want %+v", got, want)
	}
}

func TestParseDeadLetterFromTheSeedModel(t *testing.T) {
	t.Run("the seed's partion spelling is accepted", func(t *testing.T) {
		v := []byte(`{"headers":{"key":"` + testKey + `","traceId":"t","processedAt":"2024-05-01T12:00:00Z","stream":"state","topic":"codr.state.user","partion":7,"offset":99},"record":{"payload":{"a":1}}}`)
		info, err := Parse([]byte(testKey), v, nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.Partition != 7 || info.Offset != 99 || info.Topic != "codr.state.user" || string(info.Original.Value) != `{"payload":{"a":1}}` {
			t.Fatalf("%+v", info)
		}
	})
	t.Run("fields missing from the value come from Kafka headers", func(t *testing.T) {
		v := []byte(`{"headers":{},"record":{"payload":{}}}`)
		h := []record.Header{{Key: HeaderTopic, Value: []byte("codr.state.org")}, {Key: HeaderPartitionSeed, Value: []byte("2")}, {Key: HeaderOffset, Value: []byte("5")}, {Key: HeaderErrorAt, Value: []byte("2024-05-01T12:00:00.000000001Z")}}
		info, err := Parse(nil, v, h)
		if err != nil {
			t.Fatal(err)
		}
		if info.Topic != "codr.state.org" || info.Partition != 2 || info.Offset != 5 || info.At.Nanosecond() != 1 {
			t.Fatalf("%+v", info)
		}
	})
	t.Run("a value that is not a dead letter is an error", func(t *testing.T) {
		for _, v := range []string{`nope`, `{"headers":{"topic":"t","partition":1,"offset":1}}`, `{"headers":{"partition":1,"offset":1},"record":{}}`, `{"headers":{"topic":"t","offset":1},"record":{}}`} {
			if _, err := Parse(nil, []byte(v), nil); err == nil {
				t.Errorf("%s: no error", v)
			}
		}
	})
}

func TestDeadLetterCopiesA17MiBValueOnce(t *testing.T) {
	value := []byte(`{"payload":{"blob":"` + strings.Repeat("y", 17<<20) + `"}}`)
	m := record.Message{Topic: "codr.state.user", Key: []byte(testKey), Value: value}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, v, _ := Encode(m, &record.PoisonError{Class: record.ClassTooLarge, Err: errors.New("big")}, time.Now())
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(value))+64<<10 {
		t.Fatalf("DeadLetter allocated %d bytes for a %d-byte value", alloc, len(value))
	}
	if len(v) < len(value) {
		t.Fatal("short value")
	}
}

// FuzzDeadLetterRoundTrip: whatever the original value, the parsed dead
// letter gives back its origin, and its exact value unless it was an envelope
// (whose record part is replayed with the headers as Kafka headers).
func FuzzDeadLetterRoundTrip(f *testing.F) {
	for _, s := range seedValues {
		f.Add([]byte(testKey), []byte(s), "trace", false)
	}
	f.Add([]byte(nil), []byte(nil), "", true)
	f.Add([]byte("k\xff"), []byte("\xff\x00 x"), "t\xfe", false)
	f.Fuzz(func(t *testing.T, key, value []byte, trace string, tombstone bool) {
		if tombstone {
			value = nil
		}
		m := record.Message{Topic: "codr.state.x", Partition: 1, Offset: 2, Key: key, Value: value, Headers: []record.Header{{Key: record.HeaderTraceID, Value: []byte(trace)}}}
		k, v, h := Encode(m, &record.PoisonError{Class: record.ClassInvalidJSON, Err: errors.New("x")}, time.Unix(0, 0))
		if !json.Valid(v) {
			t.Fatalf("dead letter of %q is not JSON: %q", value, v)
		}
		info, err := Parse(k, v, h)
		if err != nil {
			t.Fatalf("dead letter of %q: %v", value, err)
		}
		if info.Topic != m.Topic || info.Partition != 1 || info.Offset != 2 || !bytes.Equal(info.Key, key) || info.TraceID != trace {
			t.Fatalf("parsed %+v", info)
		}
		if _, _, _, isEnv := record.SplitEnvelope(value); !isEnv || !json.Valid(value) {
			if !bytes.Equal(info.Original.Value, value) || (info.Original.Value == nil) != (value == nil) {
				t.Fatalf("original %q, want %q", info.Original.Value, value)
			}
		}
	})
}

// A dead letter of an envelope with repeated parts carries what record.Decode
// read: the last record and the last headers.
func TestDeadLetterOfDuplicateEnvelopeParts(t *testing.T) {
	tests := []struct {
		name, value  string
		record       string
		trace, procd string
	}{
		{"the last record is the one kept", `{"headers":{"traceId":"t"},"record":{"payload":{"_id":1}},"record":{"payload":{"_id":2}}}`, `{"payload":{"_id":2}}`, "t", ""},
		{"the last headers are the ones kept", `{"headers":{"traceId":"old","processedAt":"2024-01-01T00:00:00Z"},"record":{"payload":{"_id":1}},"headers":{"traceId":"new"}}`, `{"payload":{"_id":1}}`, "new", ""},
		{"a repeated traceId inside headers: the last is kept", `{"headers":{"traceId":"old","traceId":"new"},"record":{"payload":{"_id":1}}}`, `{"payload":{"_id":1}}`, "new", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := record.Message{Topic: "codr.state.user", Key: []byte(testKey), Value: []byte(tc.value)}
			_, err := record.Decode(m, record.DecodeOptions{})
			if class(err) != record.ClassIDMismatch {
				t.Fatalf("Decode error %v, want %s", err, record.ClassIDMismatch)
			}
			_, v, h := Encode(m, err.(*record.PoisonError), time.Unix(0, 0))
			var dl struct {
				Headers map[string]json.RawMessage
				Record  json.RawMessage
			}
			if err := json.Unmarshal(v, &dl); err != nil {
				t.Fatal(err)
			}
			if string(dl.Record) != tc.record {
				t.Errorf("record %s, want %s", dl.Record, tc.record)
			}
			if got, _ := record.LastHeader(h, record.HeaderTraceID); string(got) != tc.trace {
				t.Errorf("traceId header %q, want %q", got, tc.trace)
			}
			if got, _ := record.LastHeader(h, record.HeaderProcessedAt); string(got) != tc.procd {
				t.Errorf("processedAt header %q, want %q", got, tc.procd)
			}
		})
	}
}

func TestParseDeadLetterRepeatedHeadersLastWins(t *testing.T) {
	v := `{"headers":{"traceId":"old","topic":"codr.state.a","partition":1,"offset":2},"record":{"payload":{}},` +
		`"headers":{"topic":"codr.state.b","partition":3,"offset":4}}`
	info, err := Parse([]byte(testKey), []byte(v), nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Topic != "codr.state.b" || info.Partition != 3 || info.Offset != 4 || info.TraceID != "" {
		t.Errorf("parsed %+v, want the last headers only (topic b, partition 3, offset 4, no traceId)", info)
	}
}

// A dead letter's bytes are a contract with whoever reads the topic (other
// Codr services, statesync dlt replay of letters written by an older
// statesync): this pins them exactly, value and Kafka headers in order.
func TestDeadLetterBytesAreStable(t *testing.T) {
	at := time.Date(2024, 5, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))
	const errorAt = "2024-05-02T02:04:05.0000006Z"
	tests := []struct {
		name    string
		m       record.Message
		cause   *record.PoisonError
		value   string
		headers []record.Header
	}{
		{
			name:    "record-only JSON is kept verbatim",
			m:       record.Message{Topic: "codr.state.user", Partition: 3, Offset: 1234567, Key: []byte(testKey), Value: []byte(`{"payload":{"a":1,"s":"é\u0001"}}`)},
			cause:   &record.PoisonError{Class: record.ClassInvalidPayload, Err: errors.New(`bad "a"`)},
			value:   `{"headers":{"key":"` + testKey + `","stream":"state","topic":"codr.state.user","partition":3,"offset":1234567,"recordEncoding":"json"},"record":{"payload":{"a":1,"s":"é\u0001"}}}`,
			headers: headerList("key", testKey, "stream", "state", "topic", "codr.state.user", "partition", "3", "offset", "1234567", "error.class", "invalid-payload", "error.message", `bad "a"`, "error.at", errorAt),
		},
		{
			name:    "an envelope: its record part, its headers as the letter's",
			m:       record.Message{Topic: "codr.state.user", Offset: 7, Key: []byte(testKey), Value: []byte(`{"headers":{"key":"k","traceId":"t-1","processedAt":{"$date":"2024-05-01T12:00:00Z"}},"record":{"payload":{"a":1}}}`)},
			cause:   &record.PoisonError{Class: record.ClassIDMismatch, Err: errors.New("x")},
			value:   `{"headers":{"key":"` + testKey + `","traceId":"t-1","processedAt":{"$date":"2024-05-01T12:00:00Z"},"stream":"state","topic":"codr.state.user","partition":0,"offset":7,"recordEncoding":"json"},"record":{"payload":{"a":1}}}`,
			headers: headerList("key", testKey, "traceId", "t-1", "processedAt", `{"$date":"2024-05-01T12:00:00Z"}`, "stream", "state", "topic", "codr.state.user", "partition", "0", "offset", "7", "error.class", "id-mismatch", "error.message", "x", "error.at", errorAt),
		},
		{
			name: "Kafka headers win over the envelope's; invalid UTF-8 in a header becomes U+FFFD in the value only",
			m: record.Message{Topic: "t", Partition: 1, Offset: 2, Key: []byte(`k"ey`), Value: []byte(`{"headers":{"traceId":"env"},"record":{"payload":{}}}`),
				Headers: []record.Header{{Key: record.HeaderKey, Value: []byte("ik")}, {Key: record.HeaderTraceID, Value: []byte("kt\xff\n")}, {Key: record.HeaderProcessedAt, Value: []byte("2024-05-01T12:00:00.123Z")}}},
			cause:   &record.PoisonError{Class: record.ClassRejected, Err: errors.New("validation")},
			value:   `{"headers":{"key":"ik","traceId":"kt\ufffd\n","processedAt":"2024-05-01T12:00:00.123Z","stream":"state","topic":"t","partition":1,"offset":2,"recordEncoding":"json"},"record":{"payload":{}}}`,
			headers: headerList("key", "ik", "traceId", "kt\xff\n", "processedAt", "2024-05-01T12:00:00.123Z", "stream", "state", "topic", "t", "partition", "1", "offset", "2", "error.class", "rejected", "error.message", "validation", "error.at", errorAt),
		},
		{
			name:    "text that is not JSON: a JSON string",
			m:       record.Message{Topic: "t", Key: []byte(testKey), Value: []byte("hello \"world\"\n\t\x01 é")},
			cause:   &record.PoisonError{Class: record.ClassInvalidJSON, Err: errors.New("not json")},
			value:   `{"headers":{"key":"` + testKey + `","stream":"state","topic":"t","partition":0,"offset":0,"recordEncoding":"string"},"record":"hello \"world\"\n\t\u0001 é"}`,
			headers: headerList("key", testKey, "stream", "state", "topic", "t", "partition", "0", "offset", "0", "error.class", "invalid-json", "error.message", "not json", "error.at", errorAt),
		},
		{
			name:    "bytes that are not UTF-8: base64",
			m:       record.Message{Topic: "t", Key: []byte(testKey), Value: []byte("{\"a\":\"\xff\xfe\"}")},
			cause:   &record.PoisonError{Class: record.ClassInvalidJSON, Err: errors.New("utf8")},
			value:   `{"headers":{"key":"` + testKey + `","stream":"state","topic":"t","partition":0,"offset":0,"recordEncoding":"base64"},"record":"eyJhIjoi//4ifQ=="}`,
			headers: headerList("key", testKey, "stream", "state", "topic", "t", "partition", "0", "offset", "0", "error.class", "invalid-json", "error.message", "utf8", "error.at", errorAt),
		},
		{
			name:    "a tombstone without a key",
			m:       record.Message{Topic: "t", Partition: 2, Offset: 9},
			cause:   &record.PoisonError{Class: record.ClassInvalidKey, Err: errors.New("no key")},
			value:   `{"headers":{"key":null,"stream":"state","topic":"t","partition":2,"offset":9,"recordEncoding":"tombstone"},"record":null}`,
			headers: headerList("stream", "state", "topic", "t", "partition", "2", "offset", "9", "error.class", "invalid-key", "error.message", "no key", "error.at", errorAt),
		},
		{
			name:    "an empty key and no cause",
			m:       record.Message{Topic: "t", Key: []byte{}, Value: []byte(` [1] `)},
			value:   `{"headers":{"key":"","stream":"state","topic":"t","partition":0,"offset":0,"recordEncoding":"string"},"record":" [1] "}`,
			headers: headerList("key", "", "stream", "state", "topic", "t", "partition", "0", "offset", "0", "error.class", "", "error.message", "", "error.at", errorAt),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, v, h := Encode(tc.m, tc.cause, at)
			if !bytes.Equal(k, tc.m.Key) || (k == nil) != (tc.m.Key == nil) {
				t.Errorf("key %q, want the original %q", k, tc.m.Key)
			}
			if string(v) != tc.value {
				t.Errorf("value\n got %s\nwant %s", v, tc.value)
			}
			if len(h) != len(tc.headers) {
				t.Fatalf("headers %q, want %q", h, tc.headers)
			}
			for i := range h {
				if h[i].Key != tc.headers[i].Key || !bytes.Equal(h[i].Value, tc.headers[i].Value) {
					t.Errorf("header %d = %s:%q, want %s:%q", i, h[i].Key, h[i].Value, tc.headers[i].Key, tc.headers[i].Value)
				}
			}
		})
	}
}

// headerList makes Kafka headers of name, value pairs.
func headerList(kv ...string) []record.Header {
	hs := make([]record.Header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, record.Header{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func TestParseNamesAnOutOfRangePartition(t *testing.T) {
	for _, p := range []string{"-1", "2147483648"} {
		value := []byte(`{"headers":{"topic":"codr.state.x","partition":` + p + `,"offset":1},"record":{}}`)
		_, err := Parse(nil, value, nil)
		if want := "dead letter partition " + p + " is out of range"; err == nil || err.Error() != want {
			t.Errorf("partition %s: err = %v, want %q", p, err, want)
		}
	}
}

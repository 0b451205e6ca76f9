package record

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// duplicateName returns the dotted path of the first field name that occurs
// twice in one document of doc (at any depth, arrays included), or "".
func duplicateName(doc bson.Raw, path string) string {
	elems, err := doc.Elements()
	if err != nil {
		return path + ": " + err.Error()
	}
	seen := make(map[string]bool, len(elems))
	for _, e := range elems {
		k := e.Key()
		if seen[k] {
			return path + "." + k
		}
		seen[k] = true
		v := e.Value()
		switch v.Type {
		case bson.TypeEmbeddedDocument:
			if p := duplicateName(v.Document(), path+"."+k); p != "" {
				return p
			}
		case bson.TypeArray:
			if p := duplicateName(bson.Raw(v.Array()), path+"."+k); p != "" {
				return p
			}
		}
	}
	return ""
}

// Duplicate names in a JSON object: the last one wins, at every depth, in the
// position of the first (as JSON.parse: node prints {"a":3,"b":2} for
// JSON.stringify(JSON.parse('{"a":1,"b":2,"a":3}'))).
func TestDecodeDuplicateNamesLastWins(t *testing.T) {
	wide := func(extra string) string {
		var sb strings.Builder
		sb.WriteString("{")
		for i := range 100 {
			sb.WriteString(`"f` + strconv.Itoa(i) + `":` + strconv.Itoa(i) + `,`)
		}
		sb.WriteString(extra + "}")
		return sb.String()
	}
	tests := []struct {
		name, value, want string // want: the value JSON.parse gives, spelled without duplicates
	}{
		{"the last of two fields wins in the first one's place", `{"payload":{"a":1,"b":2,"a":3}}`, `{"payload":{"a":3,"b":2}}`},
		{"the last of three fields wins in the first one's place", `{"payload":{"a":1,"b":2,"a":3,"c":4,"a":5}}`, `{"payload":{"a":5,"b":2,"c":4}}`},
		{"the last field's type wins with its value", `{"payload":{"a":"x","b":1,"a":{"$date":"2024-05-01T12:00:00Z"}}}`, `{"payload":{"a":{"$date":"2024-05-01T12:00:00Z"},"b":1}}`},
		{"a null last value still replaces", `{"payload":{"a":[1,2],"a":null}}`, `{"payload":{"a":null}}`},
		{"names inside a nested object are deduplicated", `{"payload":{"n":{"x":1,"y":2,"x":3},"z":0}}`, `{"payload":{"n":{"x":3,"y":2},"z":0}}`},
		{"a repeated object replaces the first, it does not merge", `{"payload":{"n":{"x":1},"n":{"y":2}}}`, `{"payload":{"n":{"y":2}}}`},
		{"objects inside arrays are deduplicated", `{"payload":{"arr":[{"k":1,"k":2},{"k":3},[{"j":1,"j":true}]]}}`, `{"payload":{"arr":[{"k":2},{"k":3},[{"j":true}]]}}`},
		{"deeply nested duplicates are deduplicated at each depth", `{"payload":{"a":{"b":[{"c":{"d":1,"d":2},"c":{"d":3,"e":4,"d":5}}],"a":0}}}`, `{"payload":{"a":{"b":[{"c":{"d":5,"e":4}}],"a":0}}}`},
		{"a name spelled with an escape is the same name", `{"payload":{"a":1,"\u0061":2,"\u00e9":3,"é":4}}`, `{"payload":{"a":2,"é":4}}`},
		{"the empty name can be repeated too", `{"payload":{"":1,"":2}}`, `{"payload":{"":2}}`},
		{"a replaced value is not checked", `{"payload":{"a":{"$set":1},"a":{"$oid":"nope"},"a":1}}`, `{"payload":{"a":1}}`},
		{"a replaced _id is not checked, the last one is", `{"payload":{"_id":"000000000000000000000000","x":1,"_id":{"$oid":"` + testKey + `"}}}`, `{"payload":{"x":1}}`},
		{"a repeated matching _id still goes first, once", `{"payload":{"a":1,"_id":"` + testKey + `","a":2,"_id":"` + testKey + `"}}`, `{"payload":{"a":2}}`},
		{"a replaced id is not checked, the last one is", `{"payload":{"id":"000000000000000000000000","id":"` + testKey + `"}}`, `{"payload":{"id":"` + testKey + `"}}`},
		{"a wide object keeps the first place of a name repeated at its end", `{"payload":` + wide(`"f0":"last","f99":"end"`) + `}`, `{"payload":` + strings.Replace(strings.Replace(wide(`"x":0`), `"f0":0`, `"f0":"last"`, 1), `"f99":99,"x":0`, `"f99":"end"`, 1) + `}`},
		{"a wide nested object is deduplicated too", `{"payload":{"w":` + wide(`"f50":"last"`) + `}}`, `{"payload":{"w":` + strings.Replace(strings.Replace(wide(`"x":0`), `"f50":50`, `"f50":"last"`, 1), `,"x":0`, ``, 1) + `}}`},
		{"an $oid wrapper with two $oid keys takes the last", `{"payload":{"o":{"$oid":"000000000000000000000000","$oid":"` + testKey + `"}}}`, `{"payload":{"o":{"$oid":"` + testKey + `"}}}`},
		{"a $numberLong wrapper with two keys takes the last", `{"payload":{"n":{"$numberLong":"1","$numberLong":"2"}}}`, `{"payload":{"n":{"$numberLong":"2"}}}`},
		{"a $date wrapper's inner $numberLong takes the last", `{"payload":{"d":{"$date":{"$numberLong":"1","$numberLong":"2"}}}}`, `{"payload":{"d":{"$date":{"$numberLong":"2"}}}}`},
		{"a $timestamp wrapper's repeated t takes the last", `{"payload":{"ts":{"$timestamp":{"t":1,"i":2,"t":3}}}}`, `{"payload":{"ts":{"$timestamp":{"t":3,"i":2}}}}`},
		{"a $binary wrapper's repeated base64 takes the last", `{"payload":{"b":{"$binary":{"base64":"AAEC","subType":"00","base64":"AA=="}}}}`, `{"payload":{"b":{"$binary":{"base64":"AA==","subType":"00"}}}}`},
		{"a payload given twice: the last is the record", `{"payload":{"x":1},"payload":{"x":2,"x":3}}`, `{"payload":{"x":3}}`},
		{"an envelope record given twice: the last is the record", `{"record":{"payload":{"x":1}},"record":{"payload":{"x":2}}}`, `{"payload":{"x":2}}`},
		{"an envelope record's payload given twice: the last is the record", `{"record":{"payload":{"x":1},"payload":{"x":2}}}`, `{"payload":{"x":2}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeBoth(t, Message{Key: []byte(testKey), Value: []byte(tc.value)})
			if err != nil {
				t.Fatal(err)
			}
			want, err := decodeBoth(t, Message{Key: []byte(testKey), Value: []byte(tc.want)})
			if err != nil {
				t.Fatalf("want: %v", err)
			}
			if !bytes.Equal(got.Doc, want.Doc) {
				t.Errorf("got  %s\nwant %s", got.Doc, want.Doc)
			}
			if p := duplicateName(got.Doc, ""); p != "" {
				t.Errorf("duplicate field %s in %s", p, got.Doc)
			}
		})
	}
}

func TestDecodeDuplicateNamesPoison(t *testing.T) {
	tests := []struct {
		name, value, class string
	}{
		{"a last _id of another entity is an id mismatch", `{"payload":{"_id":"` + testKey + `","_id":"000000000000000000000000"}}`, ClassIDMismatch},
		{"a last id of another entity is an id mismatch", `{"payload":{"id":"` + testKey + `","id":"000000000000000000000000"}}`, ClassIDMismatch},
		{"a last value that is a bad wrapper is invalid", `{"payload":{"a":1,"a":{"$oid":"nope"}}}`, ClassInvalidPayload},
		{"a legacy $regex wrapper with a repeated $regex is invalid as it is without", `{"payload":{"r":{"$regex":"a","$options":"i","$regex":"b"}}}`, ClassInvalidPayload},
		{"a last payload that is not an object is invalid", `{"payload":{"x":1},"payload":[1]}`, ClassInvalidPayload},
		{"a last envelope record without payload is invalid", `{"record":{"payload":{"x":1}},"record":{}}`, ClassInvalidPayload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeBoth(t, Message{Key: []byte(testKey), Value: []byte(tc.value)}); class(err) != tc.class {
				t.Errorf("error %v, want class %s", err, tc.class)
			}
		})
	}
}

func TestDecodeDuplicateEnvelopeHeadersLastWins(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, value string
		trace       string
		at          time.Time
	}{
		{"a repeated traceId: the last counts", `{"headers":{"traceId":"a","traceId":"b"},"record":{"payload":{}}}`, "b", time.Time{}},
		{"a repeated processedAt: the last counts, even after a bad one", `{"headers":{"processedAt":"nope","processedAt":"2024-05-01T12:00:00Z"},"record":{"payload":{}}}`, "", at},
		{"repeated headers: the last object replaces the first, it does not merge", `{"headers":{"traceId":"a"},"record":{"payload":{}},"headers":{"processedAt":"2024-05-01T12:00:00Z"}}`, "", at},
		{"repeated headers: a last one that is not an object leaves none", `{"headers":{"traceId":"a"},"headers":"x","record":{"payload":{}}}`, "", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := decodeBoth(t, Message{Key: []byte(testKey), Value: []byte(tc.value)})
			if err != nil {
				t.Fatal(err)
			}
			if r.TraceID != tc.trace || !r.ProcessedAt.Equal(tc.at) {
				t.Errorf("trace %q at %v, want %q %v", r.TraceID, r.ProcessedAt, tc.trace, tc.at)
			}
		})
	}
}

// Random nested objects whose names come from a small set, so that names
// repeat, in objects narrow and wide (past largeObject): the fast path must
// transcode them itself and agree with the reference.
func TestDuplicateNamesRandomObjects(t *testing.T) {
	id := mustID(t, testKey)
	rng := rand.New(rand.NewPCG(1, 2))
	var object func(sb *strings.Builder, depth int)
	value := func(sb *strings.Builder, depth int) {
		switch r := rng.IntN(10); {
		case r < 2 && depth < 3:
			object(sb, depth+1)
		case r < 3 && depth < 3:
			sb.WriteString("[")
			object(sb, depth+1)
			sb.WriteString(`,1,{"z":0,"z":[]}]`)
		case r < 4:
			sb.WriteString(`{"$numberLong":"` + strconv.Itoa(rng.IntN(1000)) + `"}`)
		case r < 5:
			sb.WriteString(`"s` + strconv.Itoa(rng.IntN(100)) + `"`)
		default:
			sb.WriteString(strconv.Itoa(rng.IntN(100)))
		}
	}
	object = func(sb *strings.Builder, depth int) {
		n := rng.IntN(8)
		if rng.IntN(8) == 0 {
			n = 20 + rng.IntN(60)
		}
		names := 1 + rng.IntN(2*n+1)
		sb.WriteString("{")
		for i := range n {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString(`"n` + strconv.Itoa(rng.IntN(names)) + `":`)
			value(sb, depth)
		}
		sb.WriteString("}")
	}
	total := 0
	for i := range 1000 {
		var sb strings.Builder
		sb.WriteString(`{"payload":`)
		object(&sb, 0)
		sb.WriteString(`}`)
		v := []byte(sb.String())
		total += len(v)
		fdoc, _, ferr := decodeFast(v, id, MaxBSONDocBytes)
		sdoc, _, serr := decodeStock(v, id, MaxBSONDocBytes)
		if ferr != nil || serr != nil {
			t.Fatalf("object %d %s: fast error %v, stock error %v", i, v, ferr, serr)
		}
		if !bytes.Equal(fdoc, sdoc) {
			t.Fatalf("object %d %s:\nfast  %s\nstock %s", i, v, bson.Raw(fdoc), bson.Raw(sdoc))
		}
		if p := duplicateName(fdoc, ""); p != "" {
			t.Fatalf("object %d: field %s twice", i, p)
		}
	}
	t.Logf("%d bytes of JSON", total)
}

package record

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// decodeStock is the reference decoder: encoding/json finds the envelope and
// bson.UnmarshalExtJSON decodes the payload. It is slow (~20 µs per KiB) and
// obviously right; the fast path must agree with it on every input.
func decodeStock(value []byte, id bson.ObjectID, maxDoc int) ([]byte, envHeaders, error) {
	var env envHeaders
	if !utf8.Valid(value) {
		return nil, env, poison(ClassInvalidJSON, "value is not valid UTF-8")
	}
	if !json.Valid(value) {
		return nil, env, poison(ClassInvalidJSON, "value is not JSON")
	}
	if bytes.TrimLeft(value, " \t\r\n")[0] != '{' {
		return nil, env, poison(ClassInvalidJSON, "value is JSON but not an object: want {\"payload\": {...}} or {\"headers\": {...}, \"record\": {\"payload\": {...}}}")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(value, &top); err != nil {
		return nil, env, poison(ClassInvalidJSON, "value: %v", err)
	}
	rec := top
	if r, ok := top["record"]; ok {
		if h, ok := top["headers"]; ok && h[0] == '{' {
			var hm map[string]json.RawMessage
			if err := json.Unmarshal(h, &hm); err != nil {
				return nil, env, poison(ClassInvalidJSON, "envelope headers: %v", err)
			}
			env.traceID = hm[HeaderTraceID]
			env.processedAt = hm[HeaderProcessedAt]
		}
		if r[0] != '{' {
			return nil, env, poison(ClassInvalidPayload, "envelope record is not an object: want \"record\": {\"payload\": {...}}")
		}
		rec = nil
		if err := json.Unmarshal(r, &rec); err != nil {
			return nil, env, poison(ClassInvalidJSON, "envelope record: %v", err)
		}
	}
	p, ok := rec["payload"]
	if !ok {
		return nil, env, poison(ClassInvalidPayload, "no payload: want {\"payload\": {...entity...}}")
	}
	if p[0] != '{' {
		return nil, env, poison(ClassInvalidPayload, "payload is not an object")
	}
	var raw bson.Raw
	if err := bson.UnmarshalExtJSON(p, false, &raw); err != nil {
		return nil, env, poison(ClassInvalidPayload, "payload is not valid extended JSON: %v", err)
	}
	if err := checkFieldNames(raw, ""); err != nil {
		return nil, env, err
	}
	elems, err := raw.Elements()
	if err != nil {
		return nil, env, poison(ClassInvalidPayload, "payload: %v", err)
	}
	sawID, idBad := false, false
	for _, e := range elems {
		v := e.Value()
		switch e.Key() {
		case "_id":
			sawID = true
			if !idMatches(v.Type, v.Value, id) {
				return nil, env, poison(ClassIDMismatch, "payload _id %s disagrees with the key %s", clip([]byte(v.String()), 64), id.Hex())
			}
		case "id":
			if isObjectIDLike(v.Type, v.Value) && !idMatches(v.Type, v.Value, id) {
				idBad = true
			}
		}
	}
	if !sawID && idBad {
		return nil, env, poison(ClassIDMismatch, "payload id disagrees with the key %s", id.Hex())
	}
	out := make([]byte, 4, len(raw)+17)
	out = appendIDElement(out, id)
	for _, e := range elems {
		if e.Key() != "_id" {
			out = append(out, e...)
		}
	}
	out = append(out, 0)
	if len(out) > maxDoc {
		return nil, env, tooLarge(len(out), maxDoc)
	}
	binary.LittleEndian.PutUint32(out, uint32(len(out)))
	return out, env, nil
}

// checkFieldNames rejects field names starting with '$' left after extended
// JSON decoding: they are update operators or typos of wrappers, and MongoDB
// would refuse or misread them.
func checkFieldNames(doc bson.Raw, path string) error {
	elems, err := doc.Elements()
	if err != nil {
		return poison(ClassInvalidPayload, "payload: %v", err)
	}
	for _, e := range elems {
		k := e.Key()
		p := k
		if path != "" {
			p = path + "." + k
		}
		if len(k) > 0 && k[0] == '$' {
			return poison(ClassInvalidPayload, "field %q: names starting with '$' are reserved (not an extended-JSON wrapper)", truncate([]byte(p), 128))
		}
		v := e.Value()
		switch v.Type {
		case bson.TypeEmbeddedDocument:
			if err := checkFieldNames(v.Document(), p); err != nil {
				return err
			}
		case bson.TypeArray:
			if err := checkFieldNames(bson.Raw(v.Array()), p); err != nil {
				return err
			}
		}
	}
	return nil
}

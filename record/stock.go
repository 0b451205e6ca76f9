package record

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
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
	p, err := lastWins(p)
	if err != nil {
		return nil, env, poison(ClassInvalidJSON, "payload: %v", err)
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
// would refuse or misread them. It also refuses a document with a field name
// twice, which lastWins leaves none of: that invariant (docs/design.md
// "Wire format") is checked here, on what is written, rather than trusted.
func checkFieldNames(doc bson.Raw, path string) error {
	elems, err := doc.Elements()
	if err != nil {
		return poison(ClassInvalidPayload, "payload: %v", err)
	}
	seen := make(map[string]bool, len(elems))
	for _, e := range elems {
		k := e.Key()
		p := k
		if path != "" {
			p = path + "." + k
		}
		if len(k) > 0 && k[0] == '$' {
			return poison(ClassInvalidPayload, "field %q: names starting with '$' are reserved (not an extended-JSON wrapper)", truncate([]byte(p), 128))
		}
		if seen[k] {
			return poison(ClassInvalidPayload, "field %q appears twice in one document", truncate([]byte(p), 128))
		}
		seen[k] = true
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

// lastWins resolves repeated names in the JSON objects of the payload p as
// JSON.parse does, at every depth (wrappers such as {"$oid": ...} included):
// the last value wins, in the place of the first. Names are compared as
// bson.UnmarshalExtJSON writes them (bsonName), so two spellings of one name
// ("a", "\u0061") are one name and no document gets a field name twice. p
// must be valid JSON (decodeStock checked it). It returns p itself when no
// object repeats a name; else only the objects and arrays around a repeated
// name are rebuilt, once, at the end (linear however deep the nesting).
func lastWins(p []byte) ([]byte, error) {
	s := jsonScan{in: p}
	v, err := s.value()
	if err != nil || v.node == nil {
		return p, err
	}
	return v.node.appendTo(make([]byte, 0, len(p))), nil
}

// jsonValue is a value read by jsonScan: verbatim when nothing in it
// repeats a name, else rebuilt.
type jsonValue struct {
	raw  []byte
	node *jsonNode
}

// jsonNode is an object (names and values, each name once) or an array.
type jsonNode struct {
	object bool
	names  [][]byte // each name as first spelled, quotes included
	keys   []string // each name as in BSON
	values []jsonValue
}

func (n *jsonNode) appendTo(out []byte) []byte {
	open, close := byte('['), byte(']')
	if n.object {
		open, close = '{', '}'
	}
	out = append(out, open)
	for i, v := range n.values {
		if i > 0 {
			out = append(out, ',')
		}
		if n.object {
			out = append(append(out, n.names[i]...), ':')
		}
		if v.node != nil {
			out = v.node.appendTo(out)
		} else {
			out = append(out, v.raw...)
		}
	}
	return append(out, close)
}

// jsonScan walks JSON known to be valid: it only finds where values, names
// and strings start and end.
type jsonScan struct {
	in  []byte
	pos int
}

func (s *jsonScan) ws() {
	for s.pos < len(s.in) && isJSONSpace(s.in[s.pos]) {
		s.pos++
	}
}

// str skips a string; s.pos is at its opening quote.
func (s *jsonScan) str() {
	for s.pos++; s.in[s.pos] != '"'; s.pos++ {
		if s.in[s.pos] == '\\' {
			s.pos++ // the escaped character: never the closing quote
		}
	}
	s.pos++
}

func (s *jsonScan) value() (jsonValue, error) {
	s.ws()
	start := s.pos
	switch s.in[s.pos] {
	case '{', '[':
		return s.container()
	case '"':
		s.str()
	default: // number or literal
		for s.pos < len(s.in) && bytes.IndexByte([]byte(",}] \t\r\n"), s.in[s.pos]) < 0 {
			s.pos++
		}
	}
	return jsonValue{raw: s.in[start:s.pos]}, nil
}

func (s *jsonScan) container() (jsonValue, error) {
	start := s.pos
	n := &jsonNode{object: s.in[s.pos] == '{'}
	s.pos++
	s.ws()
	if c := s.in[s.pos]; c == '}' || c == ']' {
		s.pos++
		return jsonValue{raw: s.in[start:s.pos]}, nil
	}
	changed := false
	var index map[string]int // name -> its place, for objects past 16 names
	for {
		var name []byte
		var key string
		if n.object {
			s.ws()
			ns := s.pos
			s.str()
			name = s.in[ns:s.pos]
			var err error
			if key, err = bsonName(name); err != nil {
				return jsonValue{}, err
			}
			s.ws()
			s.pos++ // ':'
		}
		v, err := s.value()
		if err != nil {
			return jsonValue{}, err
		}
		changed = changed || v.node != nil
		i, ok := -1, false
		switch {
		case !n.object:
		case index != nil:
			i, ok = index[key]
		default:
			i = slices.Index(n.keys, key)
			ok = i >= 0
			if !ok && len(n.keys) == 16 {
				index = make(map[string]int, 64)
				for j, k := range n.keys {
					index[k] = j
				}
			}
		}
		if ok {
			n.values[i] = v
			changed = true
		} else {
			if n.object {
				if index != nil {
					index[key] = len(n.values)
				}
				n.names = append(n.names, name)
				n.keys = append(n.keys, key)
			}
			n.values = append(n.values, v)
		}
		s.ws()
		c := s.in[s.pos]
		s.pos++
		if c != ',' {
			break
		}
	}
	if !changed {
		return jsonValue{raw: s.in[start:s.pos]}, nil
	}
	return jsonValue{node: n}, nil
}

// bsonName is the BSON field name of a quoted JSON name, as
// bson.UnmarshalExtJSON decodes it (its escape handling differs from
// encoding/json's for some invalid surrogate sequences).
func bsonName(quoted []byte) (string, error) {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1 : len(quoted)-1]), nil
	}
	var doc bson.Raw
	if err := bson.UnmarshalExtJSON(append(append([]byte(`{"n":`), quoted...), '}'), false, &doc); err != nil {
		return "", err
	}
	s, ok := doc.Lookup("n").StringValueOK()
	if !ok {
		return "", errors.New("record: name is not a string")
	}
	return s, nil
}

package record

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// MaxBSONDocBytes is MongoDB's limit on one document.
const MaxBSONDocBytes = 16 * 1024 * 1024

// DecodeOptions tunes Decode. The zero value is the production setting.
type DecodeOptions struct {
	// MaxDocBytes is the largest BSON document accepted; 0 means 16 MiB.
	MaxDocBytes int
	// Reference decodes with the stock path only (encoding/json +
	// bson.UnmarshalExtJSON). It is the oracle the fast path is fuzzed
	// against, and the baseline of the benchmarks.
	Reference bool
}

func (o DecodeOptions) maxDocBytes() int {
	if o.MaxDocBytes <= 0 {
		return MaxBSONDocBytes
	}
	return o.MaxDocBytes
}

// IMessage header names, both as Kafka headers and inside an envelope.
const (
	HeaderKey         = "key"
	HeaderTraceID     = "traceId"
	HeaderProcessedAt = "processedAt"
)

// Decode turns one state message into a Record. Every error it returns is a
// *PoisonError: the message can never be written as it is.
//
// Rules (docs/design.md "Wire format"):
//   - The Kafka key must be 24 lower-case hex characters (parseKey): it
//     becomes Record.ID and the document's _id (always the first field,
//     ObjectId type). A payload _id or id may spell the ObjectId in either
//     case, as {"$oid": ...} does: only the Kafka key's bytes identify the
//     entity to Kafka.
//   - A nil value is a tombstone. An empty non-nil value is invalid JSON.
//   - The value is either the record alone {"payload": {...}} or the envelope
//     {"headers": {...}, "record": {"payload": {...}}}: a top-level "record"
//     key makes it an envelope. A value that is JSON but not an object (array,
//     scalar, null) is ClassInvalidJSON, like text that is not JSON.
//   - IMessage headers traceId and processedAt: a Kafka header wins when it is
//     present, else the envelope's header is used. Kafka headers are what the
//     Codr producers set and what the broker-side tooling shows, and they are
//     cheap to read; the envelope is the fallback for producers that only fill
//     the JSON. A non-string envelope traceId is ignored. A processedAt that is
//     present but unparseable is ClassInvalidPayload: ignoring it would
//     silently switch off the stale-write guard for that record.
//   - Header values are bytes to Kafka but strings to MongoDB. A Kafka traceId
//     that is not valid UTF-8 has each run of invalid bytes replaced by U+FFFD
//     (strings.ToValidUTF8): _sync.traceId is always a valid BSON string, and
//     the record is still written (a trace id is diagnostic; dead-lettering
//     the entity over it would hold back its state for nothing). A processedAt
//     that is not UTF-8 cannot be a date: ClassInvalidPayload, like any
//     unparseable processedAt. Decode does not read the key header (the Kafka
//     key is the _id). The envelope's headers are inside the value, which must
//     be UTF-8 (else ClassInvalidJSON); their escapes decode as encoding/json
//     does (a lone surrogate is U+FFFD).
//   - A name repeated in a JSON object (the envelope, its headers, the record,
//     the payload at any depth, extended-JSON wrappers included) counts once,
//     as JSON.parse reads it: the last value, in the place of the first
//     ({"a":1,"b":2,"a":3} is {"a":3,"b":2}). Names are compared as they are
//     written to BSON, so no document with a field name twice comes out.
//   - The payload is MongoDB Extended JSON (relaxed or canonical), decoded with
//     bson.UnmarshalExtJSON semantics. A field name starting with '$' that is
//     not an extended-JSON wrapper, at any depth, is ClassInvalidPayload.
//   - A payload _id must be the key's ObjectId (or its hex string); else, with
//     no _id, an "id" holding an ObjectId (or 24-hex string) must equal the key.
//
// The production path is a single-pass JSON to BSON transcoder; for what it
// does not handle itself (rare extended-JSON types, and every poison record
// except a bad key or an oversized document) it defers to the stock decoder,
// so both always agree (FuzzDecodeMatchesStock).
func Decode(m Message, o DecodeOptions) (Record, error) {
	id, err := parseKey(m.Key)
	if err != nil {
		return Record{}, err
	}
	r := Record{Msg: m, ID: id}
	var env envHeaders
	if m.Value == nil {
		r.Tombstone = true
	} else {
		var doc []byte
		if !o.Reference {
			doc, env, err = decodeFast(m.Value, id, o.maxDocBytes())
		}
		if o.Reference || err == errFallback {
			doc, env, err = decodeStock(m.Value, id, o.maxDocBytes())
		}
		if err != nil {
			return Record{}, err
		}
		r.Doc = doc
	}
	if r.TraceID, r.ProcessedAt, err = resolveHeaders(m.Headers, env); err != nil {
		return Record{}, err
	}
	return r, nil
}

func poison(class, format string, args ...any) *PoisonError {
	return &PoisonError{Class: class, Err: fmt.Errorf(format, args...)}
}

// parseKey reads a Kafka key: the entity ObjectId as 24 lower-case hex
// characters. Kafka partitions and compacts by the raw key bytes, so an
// upper-case (or mixed-case) spelling of an ObjectId is a different key: the
// same entity could then sit in two partitions, with no order between its
// records, and survive compaction twice. It is ClassInvalidKey, never the
// same _id.
func parseKey(key []byte) (bson.ObjectID, error) {
	var id bson.ObjectID
	if len(key) == 0 {
		return id, poison(ClassInvalidKey, "missing key: keys must be 24 lower-case hex characters (the entity ObjectId)")
	}
	var seen byte // the union of the nibbles' flags
	if len(key) == 24 {
		for i := range id {
			hi, lo := hexNibble[key[2*i]], hexNibble[key[2*i+1]]
			seen |= hi | lo
			id[i] = hi<<4 | lo&0x0f
		}
	}
	if len(key) != 24 || seen&notHex != 0 {
		return bson.ObjectID{}, poison(ClassInvalidKey, "key %q is not an ObjectId: keys must be 24 lower-case hex characters", truncate(key, 64))
	}
	if seen&upperHex != 0 {
		return bson.ObjectID{}, poison(ClassInvalidKey, "key %q is not canonical: keys must be 24 lower-case hex characters (Kafka partitions and compacts by the raw key bytes, so it is another key than %s)", key, bytes.ToLower(key))
	}
	return id, nil
}

// hexNibble maps a byte to its value as a lower-case hex digit; an
// upper-case hex digit has upperHex set too, any other byte notHex.
var hexNibble = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			t[c] = upperHex | byte(c-'A'+10)
		default:
			t[c] = notHex
		}
	}
	return t
}()

const (
	upperHex = 0x10
	notHex   = 0xe0
)

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// envHeaders are the raw JSON values of the envelope's traceId and
// processedAt headers (nil when absent). They alias the message value.
type envHeaders struct {
	traceID, processedAt []byte
}

// LastHeader returns the value of the last Kafka header named key: the one
// that counts when a header is repeated.
func LastHeader(hs []Header, key string) ([]byte, bool) {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == key {
			return hs[i].Value, true
		}
	}
	return nil, false
}

func resolveHeaders(hs []Header, env envHeaders) (traceID string, processedAt time.Time, err error) {
	// A Kafka header wins over the envelope's field; an empty one is absent.
	if v, ok := LastHeader(hs, HeaderTraceID); ok && len(v) > 0 {
		traceID = validUTF8(v)
	} else if env.traceID != nil {
		traceID = jsonStringOrEmpty(env.traceID)
	}
	if v, ok := LastHeader(hs, HeaderProcessedAt); ok && len(v) > 0 {
		processedAt, err = parseProcessedAtHeader(v)
	} else if env.processedAt != nil {
		processedAt, err = parseProcessedAtJSON(env.processedAt)
	}
	if err != nil {
		return "", time.Time{}, &PoisonError{Class: ClassInvalidPayload, Err: err}
	}
	// MongoDB stores and compares processedAt in milliseconds (a BSON date):
	// the stale guard must see the same instants wherever it compares them.
	return traceID, processedAt.Truncate(time.Millisecond), nil
}

// validUTF8 returns b as a string, each run of bytes that is not UTF-8
// replaced by U+FFFD.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// clip returns at most the first n bytes of b as valid UTF-8, for error
// messages: it cuts at a rune boundary and replaces invalid bytes by U+FFFD.
func clip(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i] // a rune cut in two
				}
				break
			}
		}
	}
	return validUTF8(b)
}

func jsonStringOrEmpty(raw []byte) string {
	if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 && bytes.IndexByte(raw[1:len(raw)-1], '"') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// parseProcessedAtHeader reads a Kafka processedAt header: an ISO-8601 string,
// or the extended-JSON {"$date": ...} some producers send. Empty is absent.
func parseProcessedAtHeader(v []byte) (time.Time, error) {
	if len(v) == 0 {
		return time.Time{}, nil
	}
	if v[0] == '{' {
		return parseProcessedAtJSON(v)
	}
	if t, ok := parseUTCNano(v); ok {
		return t, nil
	}
	t, ok := parseISO(string(v))
	if !ok {
		return time.Time{}, fmt.Errorf("header processedAt %q is not an ISO-8601 date (want RFC 3339, e.g. 2024-05-01T12:00:00.000Z)", truncate(v, 64))
	}
	return t, nil
}

// parseProcessedAtJSON reads an envelope processedAt: a JSON string, null
// (absent), or {"$date": <ISO string | {"$numberLong": "ms"} | ms number>}.
func parseProcessedAtJSON(raw []byte) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("header processedAt %s is not an ISO-8601 date (want RFC 3339, e.g. \"2024-05-01T12:00:00.000Z\", or {\"$date\": ...})", clip(raw, 64))
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return bad()
	}
	switch v := v.(type) {
	case nil:
		return time.Time{}, nil
	case string:
		if v == "" {
			return time.Time{}, nil
		}
		if t, ok := parseISO(v); ok {
			return t, nil
		}
	case map[string]any:
		d, ok := v["$date"]
		if !ok || len(v) != 1 {
			return bad()
		}
		switch d := d.(type) {
		case string:
			if t, ok := parseISO(d); ok {
				return t, nil
			}
		case float64:
			if d == float64(int64(d)) {
				return time.UnixMilli(int64(d)).UTC(), nil
			}
		case map[string]any:
			if s, ok := d["$numberLong"].(string); ok && len(d) == 1 {
				var ms int64
				if _, err := fmt.Sscan(s, &ms); err == nil {
					return time.UnixMilli(ms).UTC(), nil
				}
			}
		}
	}
	return bad()
}

// parseISO accepts RFC 3339 with or without fractional seconds, and the
// offset without a colon that some JavaScript producers emit.
func parseISO(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t, err = time.Parse("2006-01-02T15:04:05.999999999Z0700", s)
		if err != nil {
			return time.Time{}, false
		}
	}
	return t.UTC(), true
}

// parseUTCNano reads the common processedAt, "2006-01-02T15:04:05Z" with 0
// to 9 fraction digits, as parseISO would; false on anything else, which
// parseISO then decides.
func parseUTCNano(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[19] != '.' && len(s) != 20 {
		return time.Time{}, false
	}
	secs, ok := parseDateTime(s[:19])
	if !ok {
		return time.Time{}, false
	}
	var ns int64
	if len(s) > 20 {
		frac := s[20 : len(s)-1]
		if len(frac) == 0 || len(frac) > 9 {
			return time.Time{}, false
		}
		for _, c := range frac {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			ns = ns*10 + int64(c-'0')
		}
		for range 9 - len(frac) {
			ns *= 10
		}
	}
	return time.Unix(secs, ns).UTC(), true
}

// idMatches reports whether a payload _id/id value of BSON type t with value
// bytes v equals the key: the same ObjectId, or a string of its 24 hex digits.
func idMatches(t bson.Type, v []byte, id bson.ObjectID) bool {
	switch t {
	case bson.TypeObjectID:
		return len(v) == 12 && bytes.Equal(v, id[:])
	case bson.TypeString:
		got, ok := hexObjectID(v)
		return ok && got == id
	}
	return false
}

// isObjectIDLike reports whether an "id" value holds an ObjectId: an ObjectId
// or a string of 24 hex digits. Other ids (numbers, slugs) are not checked.
func isObjectIDLike(t bson.Type, v []byte) bool {
	switch t {
	case bson.TypeObjectID:
		return true
	case bson.TypeString:
		_, ok := hexObjectID(v)
		return ok
	}
	return false
}

// hexObjectID parses a BSON string value holding 24 hex digits.
func hexObjectID(v []byte) (bson.ObjectID, bool) {
	var id bson.ObjectID
	s, ok := bsonStringBytes(v)
	if !ok || len(s) != 24 {
		return id, false
	}
	_, err := hex.Decode(id[:], s)
	return id, err == nil
}

func bsonStringBytes(v []byte) ([]byte, bool) {
	if len(v) < 5 {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint32(v))
	if n < 1 || 4+n > len(v) {
		return nil, false
	}
	return v[4 : 4+n-1], true
}

func appendIDElement(dst []byte, id bson.ObjectID) []byte {
	dst = append(dst, byte(bson.TypeObjectID), '_', 'i', 'd', 0)
	return append(dst, id[:]...)
}

func tooLarge(n, max int) *PoisonError {
	return poison(ClassTooLarge, "document is %d bytes of BSON, over the %d-byte limit", n, max)
}

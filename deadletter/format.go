package deadletter

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/codr/statesync/record"
)

// Dead-letter header names (the Codr guide's IDeadLetterHeaders; docs/design.md
// "Dead letters").
const (
	HeaderStream         = "stream"
	HeaderTopic          = "topic"
	HeaderPartition      = "partition"
	HeaderPartitionSeed  = "partion" // the guide's spelling, accepted when reading
	HeaderOffset         = "offset"
	HeaderErrorClass     = "error.class"
	HeaderErrorMessage   = "error.message"
	HeaderErrorAt        = "error.at"
	HeaderRecordEncoding = "recordEncoding" // in the value's headers only: how "record" holds the original
	StreamState          = "state"
)

// How a dead letter's "record" holds the original value. A dead letter
// without recordEncoding (from another producer) is read as RecordJSON.
const (
	// RecordJSON: "record" is the original JSON verbatim (record-only shape),
	// or the "record" part of an envelope, whose IMessage headers are then
	// replayed as Kafka headers (equivalent under Decode).
	RecordJSON = "json"
	// RecordString: the original was UTF-8 but not JSON (or had whitespace
	// around it): "record" is a JSON string of exactly its bytes.
	RecordString = "string"
	// RecordBase64: the original was not UTF-8: "record" is its standard
	// base64 encoding, so a replay restores the exact bytes.
	RecordBase64 = "base64"
	// RecordTombstone: the original value was null; "record" is null.
	RecordTombstone = "tombstone"
)

// Encode builds the dead letter of m: same Kafka key; value
// {"headers": {key, traceId, processedAt, stream, topic, partition, offset,
// recordEncoding}, "record": <original>}; Kafka headers repeat those fields
// (except recordEncoding) and add error.class, error.message and error.at
// (RFC 3339, UTC). The original value is copied once, into the new value.
func Encode(m record.Message, cause *record.PoisonError, at time.Time) (key, value []byte, headers []record.Header) {
	o := carriedOf(m)
	return m.Key, o.value(m), o.headers(m, cause, at)
}

// carried is what a dead letter says of the message it carries.
type carried struct {
	encoding   string // recordEncoding
	recordJSON []byte // verbatim JSON for "record", when the encoding is RecordJSON
	key        []byte // the IMessage key: the "key" header, else the Kafka key
	hasKey     bool
	// The IMessage headers traceId and processedAt, as a Kafka header's
	// bytes and as the JSON for the value's headers (nil: absent).
	traceID, traceJSON         []byte
	processedAt, processedJSON []byte
}

func carriedOf(m record.Message) carried {
	o := carried{encoding: RecordJSON}
	var envTraceID, envProcessedAt []byte // raw JSON, from an envelope's headers
	switch {
	case m.Value == nil:
		o.encoding = RecordTombstone
	case !utf8.Valid(m.Value):
		o.encoding = RecordBase64
	case !json.Valid(m.Value) || isJSONSpace(m.Value[0]) || isJSONSpace(m.Value[len(m.Value)-1]):
		o.encoding = RecordString
	default:
		o.recordJSON = m.Value
		if rec, trace, processed, ok := record.SplitEnvelope(m.Value); ok {
			o.recordJSON, envTraceID, envProcessedAt = rec, trace, processed
		}
	}
	o.key, o.hasKey = record.LastHeader(m.Headers, record.HeaderKey)
	if !o.hasKey && m.Key != nil {
		o.key, o.hasKey = m.Key, true
	}
	o.traceID, o.traceJSON = headerForDLT(m.Headers, record.HeaderTraceID, envTraceID)
	o.processedAt, o.processedJSON = headerForDLT(m.Headers, record.HeaderProcessedAt, envProcessedAt)
	return o
}

// value is the letter's value: {"headers": {...}, "record": ...}, in one
// allocation sized up front.
func (o carried) value(m record.Message) []byte {
	size := 256 + len(m.Topic) + len(o.key) + len(o.traceJSON) + len(o.processedJSON)
	switch o.encoding {
	case RecordJSON:
		size += len(o.recordJSON)
	case RecordString:
		size += len(m.Value) + len(m.Value)/8 + 2
	case RecordBase64:
		size += base64.StdEncoding.EncodedLen(len(m.Value)) + 2
	}
	v := make([]byte, 0, size) // not slices.Grow: under -race it allocates twice
	v = append(v, `{"headers":{"key":`...)
	if o.hasKey {
		v = appendJSONString(v, o.key)
	} else {
		v = append(v, "null"...)
	}
	if o.traceJSON != nil {
		v = append(v, `,"traceId":`...)
		v = append(v, o.traceJSON...)
	}
	if o.processedJSON != nil {
		v = append(v, `,"processedAt":`...)
		v = append(v, o.processedJSON...)
	}
	v = append(v, `,"stream":"state","topic":`...)
	v = appendJSONString(v, []byte(m.Topic))
	v = append(v, `,"partition":`...)
	v = strconv.AppendInt(v, int64(m.Partition), 10)
	v = append(v, `,"offset":`...)
	v = strconv.AppendInt(v, m.Offset, 10)
	v = append(v, `,"recordEncoding":"`...)
	v = append(v, o.encoding...)
	v = append(v, `"},"record":`...)
	switch o.encoding {
	case RecordTombstone:
		v = append(v, "null"...)
	case RecordJSON:
		v = append(v, o.recordJSON...)
	case RecordString:
		v = appendJSONString(v, m.Value)
	case RecordBase64:
		v = append(v, '"')
		v = base64.StdEncoding.AppendEncode(v, m.Value)
		v = append(v, '"')
	}
	return append(v, '}')
}

// headers are the letter's Kafka headers: the IMessage ones, then the
// origin and the error.
func (o carried) headers(m record.Message, cause *record.PoisonError, at time.Time) []record.Header {
	msg, class := "", ""
	if cause != nil {
		class = cause.Class
		if cause.Err != nil {
			msg = cause.Err.Error()
		}
	}
	headers := make([]record.Header, 0, 10)
	if o.hasKey {
		headers = append(headers, record.Header{Key: record.HeaderKey, Value: o.key})
	}
	if o.traceID != nil {
		headers = append(headers, record.Header{Key: record.HeaderTraceID, Value: o.traceID})
	}
	if o.processedAt != nil {
		headers = append(headers, record.Header{Key: record.HeaderProcessedAt, Value: o.processedAt})
	}
	return append(headers,
		record.Header{Key: HeaderStream, Value: []byte(StreamState)},
		record.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
		record.Header{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		record.Header{Key: HeaderOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
		record.Header{Key: HeaderErrorClass, Value: []byte(class)},
		record.Header{Key: HeaderErrorMessage, Value: []byte(msg)},
		record.Header{Key: HeaderErrorAt, Value: []byte(at.UTC().Format(time.RFC3339Nano))},
	)
}

// headerForDLT returns an IMessage header for a dead letter: the Kafka header
// when present, else the envelope's; as Kafka header bytes and as JSON.
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func headerForDLT(hs []record.Header, name string, envRaw []byte) (kafka, asJSON []byte) {
	if v, ok := record.LastHeader(hs, name); ok {
		return v, appendJSONString(nil, v)
	}
	if envRaw == nil || string(envRaw) == "null" {
		return nil, nil
	}
	if envRaw[0] == '"' {
		var s string
		if json.Unmarshal(envRaw, &s) == nil {
			return []byte(s), envRaw
		}
	}
	return envRaw, envRaw
}

// appendJSONString appends s as a JSON string. s is expected to be UTF-8;
// invalid bytes become U+FFFD (only header values can be such; the record
// itself goes base64 then).
func appendJSONString(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 {
			i++
			continue
		}
		if c >= 0x80 {
			r, n := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Letter is a parsed dead letter: where it came from, why it failed,
// and the original message to re-publish to its origin topic.
type Letter struct {
	Topic       string // origin topic
	Partition   int32
	Offset      int64
	Key         []byte // the Kafka key, as on the origin message
	TraceID     string
	ProcessedAt string // verbatim, as the origin message carried it ("" when absent)
	Class       string // error.class
	Message     string // error.message
	At          time.Time
	// Original is the message to re-publish: origin topic, partition and
	// offset (for reference), key, value, and the IMessage headers (key,
	// traceId, processedAt) as Kafka headers.
	Original record.Message
}

// Parse reads a dead letter written by Encode, or by another
// Codr producer following IDeadLetterMessage: fields are taken from the
// value's headers, else from the Kafka headers; "partion" is accepted for
// "partition".
func Parse(key, value []byte, headers []record.Header) (Letter, error) {
	f, raw, err := splitLetter(value, headers)
	if err != nil {
		return Letter{}, err
	}
	var info Letter
	var ok bool
	if info.Topic, ok = f.str(HeaderTopic); !ok || info.Topic == "" {
		return Letter{}, errors.New("dead letter has no origin topic header")
	}
	p, err := f.num(HeaderPartition, HeaderPartitionSeed)
	switch {
	case err != nil:
		return Letter{}, fmt.Errorf("dead letter partition: %w", err)
	case p < 0 || p > 1<<31-1:
		return Letter{}, fmt.Errorf("dead letter partition %d is out of range", p)
	}
	info.Partition = int32(p)
	if info.Offset, err = f.num(HeaderOffset); err != nil {
		return Letter{}, fmt.Errorf("dead letter offset: %w", err)
	}
	info.Key = key
	if v, ok := record.LastHeader(headers, HeaderErrorClass); ok {
		info.Class = string(v)
	}
	if v, ok := record.LastHeader(headers, HeaderErrorMessage); ok {
		info.Message = string(v)
	}
	if v, ok := record.LastHeader(headers, HeaderErrorAt); ok {
		if info.At, err = time.Parse(time.RFC3339Nano, string(v)); err != nil {
			return Letter{}, fmt.Errorf("dead letter error.at %q: %w", v, err)
		}
	}
	encoding, _ := f.str(HeaderRecordEncoding)
	orig, err := originalValue(encoding, raw)
	if err != nil {
		return Letter{}, err
	}
	info.Original = record.Message{Topic: info.Topic, Partition: info.Partition, Offset: info.Offset, Key: key, Value: orig}
	// IMessage headers: the Kafka header first, as it keeps the exact bytes.
	for _, name := range []string{record.HeaderKey, record.HeaderTraceID, record.HeaderProcessedAt} {
		v, ok := record.LastHeader(headers, name)
		if !ok {
			var s string
			if s, ok = f.str(name); ok {
				v = []byte(s)
			}
		}
		if !ok {
			continue
		}
		info.Original.Headers = append(info.Original.Headers, record.Header{Key: name, Value: v})
		switch name {
		case record.HeaderTraceID:
			info.TraceID = string(v)
		case record.HeaderProcessedAt:
			info.ProcessedAt = string(v)
		}
	}
	return info, nil
}

// letterFields finds a dead letter's fields: in its value's "headers"
// first, then in its Kafka headers.
type letterFields struct {
	value map[string]json.RawMessage // the value's "headers"
	kafka []record.Header
}

// splitLetter reads a dead letter's value: its "headers" and its "record".
// Maps, not a struct: a repeated "headers" is then replaced, not merged, and
// names match exactly, as JSON.parse reads them.
func splitLetter(value []byte, headers []record.Header) (letterFields, json.RawMessage, error) {
	var top map[string]json.RawMessage
	f := letterFields{kafka: headers}
	err := json.Unmarshal(value, &top)
	if h, ok := top["headers"]; err == nil && ok {
		err = json.Unmarshal(h, &f.value)
	}
	if err != nil {
		return f, nil, fmt.Errorf("dead letter value is not {\"headers\": {...}, \"record\": ...}: %w", err)
	}
	raw := top["record"]
	if raw == nil {
		return f, nil, errors.New("dead letter has no \"record\"")
	}
	return f, raw, nil
}

// str is a string field: a JSON string's value, any other JSON verbatim.
func (f letterFields) str(name string) (string, bool) {
	if raw, ok := f.value[name]; ok && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
		return string(raw), true
	}
	if v, ok := record.LastHeader(f.kafka, name); ok {
		return string(v), true
	}
	return "", false
}

// num is an integer field under the first of names present: a JSON number
// or a string holding one.
func (f letterFields) num(names ...string) (int64, error) {
	for _, name := range names {
		if raw, ok := f.value[name]; ok && string(raw) != "null" {
			var n json.Number
			if err := json.Unmarshal(raw, &n); err != nil {
				var s string
				if json.Unmarshal(raw, &s) != nil {
					return 0, fmt.Errorf("dead letter header %s %s is not a number", name, raw)
				}
				n = json.Number(s)
			}
			return strconv.ParseInt(string(n), 10, 64)
		}
	}
	for _, name := range names {
		if v, ok := record.LastHeader(f.kafka, name); ok {
			return strconv.ParseInt(string(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("dead letter has no %s header", names[0])
}

// originalValue is the origin message's value from a letter's "record" in
// its recordEncoding (none: JSON, a null record a tombstone).
func originalValue(encoding string, raw json.RawMessage) ([]byte, error) {
	switch encoding {
	case RecordTombstone:
		return nil, nil
	case RecordString, RecordBase64:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("dead letter record with encoding %s is not a string: %w", encoding, err)
		}
		if encoding == RecordString {
			return []byte(s), nil
		}
		orig, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("dead letter record is not base64: %w", err)
		}
		return orig, nil
	case RecordJSON, "":
		if string(raw) != "null" || encoding == RecordJSON {
			return raw, nil
		}
		return nil, nil
	default:
		return nil, fmt.Errorf("dead letter recordEncoding %q is unknown: want json, string, base64 or tombstone", encoding)
	}
}

package record

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// errFallback means the fast path declined the message: the stock decoder
// decides it. It is never returned by Decode.
var errFallback = errors.New("record: fast path declined")

// maxFastDepth bounds the nesting (objects and arrays) the fast path handles;
// deeper values go to the stock decoder, which enforces its own limits.
const maxFastDepth = 100

// scratch buffers for the transcoder: the document is built in out and
// copied out at its exact size, so a batch does not pin oversized buffers.
type scratch struct {
	out   []byte
	names []member
	table []uint32
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{out: make([]byte, 0, 8<<10), names: make([]member, 0, 64)}
}}

// decodeFast is the production decoder: one pass over the value, appending
// BSON as it reads. It succeeds only where it is sure the stock decoder would
// produce the same bytes; on anything else (invalid JSON, any poison except
// an oversized document, rare extended-JSON wrappers, escaped envelope keys,
// duplicate envelope keys, deep nesting) it returns errFallback.
func decodeFast(value []byte, id bson.ObjectID, maxDoc int) ([]byte, envHeaders, error) {
	sc := scratchPool.Get().(*scratch)
	d := fastDecoder{in: value, out: sc.out[:0], names: sc.names[:0], table: sc.table[:0], id: id}
	ok := d.message()
	var doc []byte
	var err error
	switch {
	case !ok:
		err = errFallback
	case len(d.out) > maxDoc:
		err = tooLarge(len(d.out), maxDoc)
	default:
		doc = make([]byte, len(d.out))
		copy(doc, d.out)
	}
	if cap(d.out) <= 1<<20 && cap(d.names) <= 1<<14 && cap(d.table) <= 1<<16 {
		sc.out, sc.names, sc.table = d.out[:0], d.names[:0], d.table[:0]
		scratchPool.Put(sc)
	}
	if err != nil {
		return nil, envHeaders{}, err
	}
	return doc, d.env, nil
}

type fastDecoder struct {
	in    []byte
	pos   int
	out   []byte
	id    bson.ObjectID
	depth int
	env   envHeaders

	// names holds the members of the objects being transcoded, innermost
	// object last (objectBody), to find a name written twice; table is
	// repeatedLarge's.
	names []member
	table []uint32

	sawID, idBad, idWrong bool
	escaped               bool // str decoded an escape sequence
}

// member is a field written into out: the offset of its element (type byte,
// then its name) and the length of its name.
type member struct {
	pos int32 // objectBody declines a document past 2 GiB
	n   int32
}

func (d *fastDecoder) ws() {
	if d.pos < len(d.in) && d.in[d.pos] > ' ' {
		return
	}
	for d.pos < len(d.in) {
		switch d.in[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// next skips whitespace and returns the next byte without consuming it (0 at
// the end of input).
func (d *fastDecoder) next() byte {
	d.ws()
	if d.pos < len(d.in) {
		return d.in[d.pos]
	}
	return 0
}

func (d *fastDecoder) expect(c byte) bool {
	if d.next() != c {
		return false
	}
	d.pos++
	return true
}

// message reads the whole value: record-only or envelope.
func (d *fastDecoder) message() bool {
	if !d.expect('{') {
		return false
	}
	var sawPayload, sawRecord, sawHeaders, docOK bool
	var env envHeaders
	if d.next() == '}' {
		return false
	}
	for {
		key, ok := d.plainKey()
		if !ok || !d.expect(':') {
			return false
		}
		switch string(key) {
		case "payload":
			if sawPayload {
				return false
			}
			sawPayload = true
			if sawRecord {
				ok = d.skipValue()
			} else {
				ok = d.payload()
				docOK = ok
			}
		case "record":
			if sawRecord {
				return false
			}
			sawRecord = true
			ok = d.record()
			docOK = ok
		case "headers":
			if sawHeaders {
				return false
			}
			sawHeaders = true
			ok = d.headers(&env)
		default:
			ok = d.skipValue()
		}
		if !ok {
			return false
		}
		if more, ok := d.separator('}'); !ok {
			return false
		} else if !more {
			break
		}
	}
	d.ws()
	if d.pos != len(d.in) || !docOK {
		return false
	}
	if sawRecord {
		d.env = env
	}
	return true
}

// plainKey reads an object key that has no escapes (envelope level).
func (d *fastDecoder) plainKey() ([]byte, bool) {
	if !d.expect('"') {
		return nil, false
	}
	in := d.in
	start := d.pos
	i := plainRun(in, start)
	for i < len(in) {
		c := in[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return in[start:i], true
		case c == '\\' || c < 0x20:
			return nil, false
		case c < 0x80:
			i++
		default:
			r, n := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false
			}
			i += n
		}
		i = plainRun(in, i)
	}
	return nil, false
}

// plainRun returns the index of the first byte of in at or after i that is
// a quote, a backslash, a control character or not ASCII (len(in) if none):
// the end of a run of string bytes that are copied as they are. It reads 8
// bytes at a time.
func plainRun(in []byte, i int) int {
	for ; i+8 <= len(in); i += 8 {
		if m := specialBytes(binary.LittleEndian.Uint64(in[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(in); i++ {
		if c := in[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return i
}

// specialBytes flags (bit 7 of the byte) the bytes of w that are '"', '\\',
// below 0x20 or from 0x80. Only the lowest flag is exact (a borrow can flag a
// byte above a flagged one), which is all plainRun needs.
func specialBytes(w uint64) uint64 {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	q := w ^ ('"' * ones)
	b := w ^ ('\\' * ones)
	return ((q-ones)&^q | (b-ones)&^b | (w-0x20*ones)&^w | w) & high
}

func (d *fastDecoder) record() bool {
	if !d.expect('{') {
		return false
	}
	sawPayload := false
	if d.next() == '}' {
		return false
	}
	for {
		key, ok := d.plainKey()
		if !ok || !d.expect(':') {
			return false
		}
		if string(key) == "payload" {
			if sawPayload {
				return false
			}
			sawPayload = true
			ok = d.payload()
		} else {
			ok = d.skipValue()
		}
		if !ok {
			return false
		}
		if more, ok := d.separator('}'); !ok || !more {
			return ok && sawPayload
		}
	}
}

func (d *fastDecoder) headers(env *envHeaders) bool {
	if d.next() != '{' {
		return d.skipValue()
	}
	d.pos++
	if d.next() == '}' {
		d.pos++
		return true
	}
	for {
		key, ok := d.plainKey()
		if !ok || !d.expect(':') {
			return false
		}
		d.ws()
		start := d.pos
		if !d.skipValue() {
			return false
		}
		switch string(key) {
		case HeaderTraceID:
			env.traceID = d.in[start:d.pos]
		case HeaderProcessedAt:
			env.processedAt = d.in[start:d.pos]
		}
		if more, ok := d.separator('}'); !ok || !more {
			return ok
		}
	}
}

// payload transcodes the entity into d.out as the final document: _id first,
// then the payload's fields without its own _id.
func (d *fastDecoder) payload() bool {
	if !d.expect('{') {
		return false
	}
	d.out = d.out[:0]
	d.out = append(d.out, 0, 0, 0, 0)
	d.out = appendIDElement(d.out, d.id)
	d.sawID, d.idBad, d.idWrong = false, false, false
	if !d.objectBody(true) {
		return false
	}
	d.out = append(d.out, 0)
	binary.LittleEndian.PutUint32(d.out, uint32(len(d.out)))
	return !d.idWrong && (!d.idBad || d.sawID)
}

// objectBody transcodes the members of an object whose '{' was consumed,
// up to and including its '}'. A name written twice is resolved at the end,
// as JSON.parse does (lastWins). The common case, no name twice, costs an
// append to d.names and a bit in a Bloom word per name (nameBit); only an
// object with a Bloom hit is checked exactly (repeated).
func (d *fastDecoder) objectBody(top bool) bool {
	if d.next() == '}' {
		d.pos++
		return true
	}
	base := len(d.names)
	var bloom uint64 // one bit per name's length, first and last byte
	maybe := false   // a name hit the Bloom word: repeated decides
	for {
		typePos := len(d.out)
		keyStart := typePos + 1
		if !d.plainName() {
			if !d.expect('"') {
				return false
			}
			d.out = append(d.out, 0)
			d.escaped = false
			if !d.str() {
				return false
			}
			// A NUL can only come from a \u0000 escape.
			key := d.out[keyStart:]
			if d.escaped && bytes.IndexByte(key, 0) >= 0 {
				return false
			}
			d.out = append(d.out, 0)
			if !d.expect(':') {
				return false
			}
		}
		valStart := len(d.out)
		key := d.out[keyStart : valStart-1]
		if len(key) > 0 && key[0] == '$' {
			return false
		}
		bit := nameBit(key)
		t, ok := d.value()
		if !ok {
			return false
		}
		d.out[typePos] = byte(t)
		kept := true
		if top {
			// The last _id and the last id are the ones checked: the
			// others are replaced (lastWins).
			switch string(d.out[keyStart : valStart-1]) {
			case "_id":
				d.idWrong = !idMatches(t, d.out[valStart:], d.id)
				d.sawID = true
				d.out = d.out[:typePos]
				kept = false
			case "id":
				d.idBad = isObjectIDLike(t, d.out[valStart:]) && !idMatches(t, d.out[valStart:], d.id)
			}
		}
		if kept {
			if typePos > math.MaxInt32 {
				return false
			}
			d.names = append(d.names, member{int32(typePos), int32(valStart - 1 - keyStart)})
			maybe = maybe || bloom&bit != 0
			bloom |= bit
		}
		if more, ok := d.separator('}'); !ok || !more {
			if ok && maybe && d.repeated(d.names[base:]) {
				d.lastWins(base)
			}
			d.names = d.names[:base]
			return ok
		}
	}
}

// plainName reads the common member name, `"<plain ASCII>":` with no space
// before the colon, at d.pos (after spaces), and appends its element header
// (a type byte to fill in, the name, NUL) to d.out, as objectBody's general
// path would. It returns false, having read and written nothing, on any
// other name.
func (d *fastDecoder) plainName() bool {
	d.ws()
	in, pos := d.in, d.pos
	if pos >= len(in) || in[pos] != '"' {
		return false
	}
	buf := d.spare(len(in) - pos + 16)
	pos, l, ok := copyPlain(in, buf, pos+1, len(d.out)+1) // after the type byte
	if !ok || in[pos] != '"' || pos+1 >= len(in) || in[pos+1] != ':' {
		return false
	}
	buf[len(d.out)] = 0
	buf[l] = 0
	d.out = d.out[:l+1]
	d.pos = pos + 2
	return true
}

// plainString reads a string value without escapes or non-ASCII bytes at
// d.pos (its quote) and appends it as a BSON string (length, bytes, NUL), as
// value's general path would; false, having read and written nothing, on
// any other value.
func (d *fastDecoder) plainString() bool {
	in := d.in
	buf := d.spare(len(in) - d.pos + 16)
	start := len(d.out)
	pos, l, ok := copyPlain(in, buf, d.pos+1, start+4)
	if !ok || in[pos] != '"' {
		return false
	}
	binary.LittleEndian.PutUint32(buf[start:], uint32(l-start-4+1))
	buf[l] = 0
	d.out = d.out[:l+1]
	d.pos = pos + 1
	return true
}

// spare makes sure out has n bytes of spare capacity and returns out up to
// its capacity, to write into before setting its length.
func (d *fastDecoder) spare(n int) []byte {
	if cap(d.out)-len(d.out) < n {
		d.out = slices.Grow(d.out, n)
	}
	return d.out[:cap(d.out)]
}

// copyPlain copies the run of plain string bytes at in[pos:] (see plainRun)
// to buf[l:], 8 bytes at a time, and returns the positions in in and buf of
// the byte that ends it; false when it finds none before the last 8 bytes
// of in. buf must have len(in)-pos+8 bytes from l.
func copyPlain(in, buf []byte, pos, l int) (int, int, bool) {
	for ; pos+8 <= len(in); pos, l = pos+8, l+8 {
		w := binary.LittleEndian.Uint64(in[pos:])
		binary.LittleEndian.PutUint64(buf[l:], w)
		if m := specialBytes(w); m != 0 {
			k := bits.TrailingZeros64(m) >> 3
			return pos + k, l + k, true
		}
	}
	return pos, l, false
}

// nameBit is a field name's bit in objectBody's Bloom word: of its length,
// first and last byte.
func nameBit(name []byte) uint64 {
	sig := uint64(len(name))
	if len(name) > 0 {
		sig |= uint64(name[0])<<8 | uint64(name[len(name)-1])<<16
	}
	return 1 << (sig * 0x9e3779b97f4a7c15 >> 58)
}

// largeObject is the number of names past which repeated finds a repeated
// name with a hash table rather than a Bloom word (filling up by then) and a
// scan.
const largeObject = 16

// repeated reports whether a name occurs twice among the members ms of the
// object just transcoded. It costs a hash and a Bloom bit per name, and a
// look at the hashes so far only on a Bloom hit.
func (d *fastDecoder) repeated(ms []member) bool {
	if cap(d.out)-len(d.out) < 8 {
		d.out = slices.Grow(d.out, 8) // for nameHash
	}
	if len(ms) > largeObject {
		return d.repeatedLarge(ms)
	}
	var bloom uint64
	var hs [largeObject]uint32
	for i, m := range ms {
		h := nameHash(d.out, int(m.pos)+1, int(m.n))
		hs[i] = h
		bit := uint64(1) << (h >> 26)
		if bloom&bit != 0 {
			for j, o := range hs[:i] {
				if o == h && d.sameName(ms[j], m) {
					return true
				}
			}
		}
		bloom |= bit
	}
	return false
}

// repeatedLarge is repeated with an open-addressing table of indexes into ms
// (plus one; 0 is empty), at most a quarter full.
func (d *fastDecoder) repeatedLarge(ms []member) bool {
	tabBits := bits.Len(uint(4 * len(ms))) // 4n < 1<<tabBits <= 8n
	t := slices.Grow(d.table[:0], 1<<tabBits)[:1<<tabBits]
	d.table = t
	clear(t)
	mask := len(t) - 1
	for i, m := range ms {
		j := int(nameHash(d.out, int(m.pos)+1, int(m.n)) >> (32 - tabBits))
		for ; t[j] != 0; j = (j + 1) & mask {
			if d.sameName(ms[t[j]-1], m) {
				return true
			}
		}
		t[j] = uint32(i + 1)
	}
	return false
}

// nameHash hashes the n-byte field name at b[start:] from its length and its
// first and last (up to) 8 bytes: a collision only costs a comparison of two
// names. It reads 8 bytes from start even for a shorter name, and masks them
// to the name: the caller makes sure they are within cap(b).
func nameHash(b []byte, start, n int) uint32 {
	w := binary.LittleEndian.Uint64(b[start : start+8 : cap(b)])
	if n < 8 {
		w &= 1<<(uint(8*n)&63) - 1
	} else {
		w ^= bits.RotateLeft64(binary.LittleEndian.Uint64(b[start+n-8:]), 31)
	}
	return uint32((w ^ uint64(n)<<56) * 0x9e3779b97f4a7c15 >> 32)
}

// sameName reports whether members a and b have the same name.
func (d *fastDecoder) sameName(a, b member) bool {
	return a.n == b.n && bytes.Equal(d.name(a), d.name(b))
}

// name returns the name of member m.
func (d *fastDecoder) name(m member) []byte {
	return d.out[int(m.pos)+1 : int(m.pos)+1+int(m.n)]
}

// lastWins rewrites the members of the object just transcoded, d.names[base:]
// (its elements, contiguous up to the end of out), so that each name appears
// once: in the place of its first occurrence, with the type and value of its
// last, as JSON.parse does. Only objects that repeat a name come here.
func (d *fastDecoder) lastWins(base int) {
	ms := d.names[base:]
	end := len(d.out)
	elem := func(i int) []byte {
		e := end
		if i+1 < len(ms) {
			e = int(ms[i+1].pos)
		}
		return d.out[ms[i].pos:e]
	}
	name := func(i int) string { return string(d.name(ms[i])) }
	last := make(map[string]int, len(ms))
	for i := range ms {
		last[name(i)] = i
	}
	out := make([]byte, 0, end-int(ms[0].pos))
	for i := range ms {
		k := name(i)
		if j, ok := last[k]; ok {
			out = append(out, elem(j)...)
			delete(last, k) // later occurrences are written
		}
	}
	d.out = append(d.out[:ms[0].pos], out...)
}

// value transcodes one JSON value and returns its BSON type.
func (d *fastDecoder) value() (bson.Type, bool) {
	switch d.next() {
	case '{':
		d.pos++
		if d.depth++; d.depth > maxFastDepth {
			return 0, false
		}
		t, ok := d.object()
		d.depth--
		return t, ok
	case '[':
		d.pos++
		if d.depth++; d.depth > maxFastDepth {
			return 0, false
		}
		ok := d.array()
		d.depth--
		return bson.TypeArray, ok
	case '"':
		if d.plainString() {
			return bson.TypeString, true
		}
		d.pos++
		start := len(d.out)
		d.out = append(d.out, 0, 0, 0, 0)
		if !d.str() {
			return 0, false
		}
		d.out = append(d.out, 0)
		binary.LittleEndian.PutUint32(d.out[start:], uint32(len(d.out)-start-4))
		return bson.TypeString, true
	case 't':
		if !d.literal("true") {
			return 0, false
		}
		d.out = append(d.out, 1)
		return bson.TypeBoolean, true
	case 'f':
		if !d.literal("false") {
			return 0, false
		}
		d.out = append(d.out, 0)
		return bson.TypeBoolean, true
	case 'n':
		if !d.literal("null") {
			return 0, false
		}
		return bson.TypeNull, true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return d.number()
	}
	return 0, false
}

// object transcodes an object value ('{' consumed): a wrapper when its first
// key starts with '$' (or is escaped: the wrapper path declines it).
func (d *fastDecoder) object() (bson.Type, bool) {
	if d.next() == '"' && d.pos+1 < len(d.in) && (d.in[d.pos+1] == '$' || d.in[d.pos+1] == '\\') {
		return d.wrapper()
	}
	start := len(d.out)
	d.out = append(d.out, 0, 0, 0, 0)
	if !d.objectBody(false) {
		return 0, false
	}
	d.out = append(d.out, 0)
	binary.LittleEndian.PutUint32(d.out[start:], uint32(len(d.out)-start))
	return bson.TypeEmbeddedDocument, true
}

// array transcodes an array value ('[' consumed).
func (d *fastDecoder) array() bool {
	start := len(d.out)
	d.out = append(d.out, 0, 0, 0, 0)
	if d.next() == ']' {
		d.pos++
	} else {
		for i := 0; ; i++ {
			typePos := len(d.out)
			d.out = append(d.out, 0)
			if i < 10 {
				d.out = append(d.out, byte('0'+i))
			} else {
				d.out = strconv.AppendInt(d.out, int64(i), 10)
			}
			d.out = append(d.out, 0)
			t, ok := d.value()
			if !ok {
				return false
			}
			d.out[typePos] = byte(t)
			c := d.next()
			d.pos++
			if c == ']' {
				break
			}
			if c != ',' {
				return false
			}
		}
	}
	d.out = append(d.out, 0)
	binary.LittleEndian.PutUint32(d.out[start:], uint32(len(d.out)-start))
	return true
}

func (d *fastDecoder) literal(lit string) bool {
	if len(d.in)-d.pos < len(lit) || string(d.in[d.pos:d.pos+len(lit)]) != lit {
		return false
	}
	d.pos += len(lit)
	return true
}

// number follows the relaxed extended-JSON reader: an integer literal is
// int32 when it fits, else int64 when it fits, else a double; a literal with a
// fraction or an exponent is a double; a double out of range is an error.
func (d *fastDecoder) number() (bson.Type, bool) {
	start := d.pos
	in := d.in
	i := d.pos
	if i < len(in) && in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case i < len(in) && in[i] >= '1' && in[i] <= '9':
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
	default:
		return 0, false
	}
	isFloat, hasExp := false, false
	dot := -1
	if i < len(in) && in[i] == '.' {
		isFloat = true
		dot = i
		i++
		j := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		if i == j {
			return 0, false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		isFloat, hasExp = true, true
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		j := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		if i == j {
			return 0, false
		}
	}
	d.pos = i
	lit := in[start:i]
	if !isFloat {
		var v int64
		ok := false
		if len(lit) <= 18 {
			neg := lit[0] == '-'
			digits := lit
			if neg {
				digits = lit[1:]
			}
			for _, c := range digits {
				v = v*10 + int64(c-'0')
			}
			if neg {
				v = -v
			}
			ok = true
		} else if p, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
			v, ok = p, true
		}
		if ok {
			if v >= math.MinInt32 && v <= math.MaxInt32 {
				d.out = binary.LittleEndian.AppendUint32(d.out, uint32(int32(v)))
				return bson.TypeInt32, true
			}
			d.out = binary.LittleEndian.AppendUint64(d.out, uint64(v))
			return bson.TypeInt64, true
		}
	}
	f, ok := exactDecimal(lit, dot-start, hasExp)
	if !ok {
		var err error
		if f, err = strconv.ParseFloat(string(lit), 64); err != nil {
			return 0, false
		}
	}
	d.out = binary.LittleEndian.AppendUint64(d.out, math.Float64bits(f))
	return bson.TypeDouble, true
}

// exactDecimal is strconv.ParseFloat's exact fast path (Clinger's) for a
// number literal without exponent whose dot is at lit[dot] and which has at
// most 15 digits: the digits and the power of ten are exact float64s, so one
// correctly rounded division gives the same float64 as ParseFloat.
func exactDecimal(lit []byte, dot int, hasExp bool) (float64, bool) {
	neg := lit[0] == '-'
	digits := len(lit) - 1
	if neg {
		digits--
	}
	if hasExp || dot < 0 || digits > 15 {
		return 0, false
	}
	var mant uint64
	for _, c := range lit {
		if c >= '0' {
			mant = mant*10 + uint64(c-'0')
		}
	}
	f := float64(mant) / float64pow10[len(lit)-1-dot]
	if neg {
		f = -f
	}
	return f, true
}

var float64pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// str decodes a JSON string (opening quote consumed) onto d.out, with the
// escape handling of the bson extended-JSON scanner: a lone surrogate becomes
// U+FFFD, and a high surrogate followed by a non-low-surrogate \u escape
// becomes U+FFFD followed by that escape's rune.
func (d *fastDecoder) str() bool {
	in := d.in
	for {
		i := d.copyRun()
		d.pos = i
		if i >= len(in) {
			return false
		}
		c := in[i]
		switch {
		case c == '"':
			d.pos++
			return true
		case c < 0x20:
			return false
		case c >= 0x80:
			r, n := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && n == 1 {
				return false
			}
			d.out = append(d.out, in[i:i+n]...)
			d.pos += n
		default:
			d.pos++
			d.escaped = true
			if !d.escape() {
				return false
			}
		}
	}
}

// copyRun appends the run of plain string bytes at d.pos (see plainRun) to
// d.out and returns the index that ends it. It copies 8 bytes at a time,
// writing past the run into out's spare capacity (never past the input's
// length plus 8, which it makes sure of). Only the length of d.out is
// stored, unless it grows.
func (d *fastDecoder) copyRun() int {
	in, pos := d.in, d.pos
	if cap(d.out)-len(d.out) < len(in)-pos+8 {
		d.out = slices.Grow(d.out, len(in)-pos+8)
	}
	l := len(d.out)
	buf := d.out[:cap(d.out)]
	for ; pos+8 <= len(in); pos, l = pos+8, l+8 {
		w := binary.LittleEndian.Uint64(in[pos:])
		binary.LittleEndian.PutUint64(buf[l:], w)
		if m := specialBytes(w); m != 0 {
			k := bits.TrailingZeros64(m) >> 3
			d.out = d.out[:l+k]
			return pos + k
		}
	}
	for ; pos < len(in); pos, l = pos+1, l+1 {
		c := in[pos]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
		buf[l] = c
	}
	d.out = d.out[:l]
	return pos
}

// escape decodes one escape sequence; d.pos is just after the backslash.
func (d *fastDecoder) escape() bool {
	in := d.in
	for {
		if d.pos >= len(in) {
			return false
		}
		c := in[d.pos]
		d.pos++
		switch c {
		case '"', '\\', '/':
			d.out = append(d.out, c)
		case 'b':
			d.out = append(d.out, '\b')
		case 'f':
			d.out = append(d.out, '\f')
		case 'n':
			d.out = append(d.out, '\n')
		case 'r':
			d.out = append(d.out, '\r')
		case 't':
			d.out = append(d.out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return false
			}
			if !utf16.IsSurrogate(r) {
				d.out = utf8.AppendRune(d.out, r)
				return true
			}
			if d.pos >= len(in) {
				return false
			}
			if in[d.pos] != '\\' {
				d.out = utf8.AppendRune(d.out, utf8.RuneError)
				return true
			}
			d.pos++
			if d.pos >= len(in) {
				return false
			}
			if in[d.pos] != 'u' {
				d.out = utf8.AppendRune(d.out, utf8.RuneError)
				continue
			}
			d.pos++
			r2, ok := d.hex4()
			if !ok {
				return false
			}
			if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
				d.out = utf8.AppendRune(d.out, p)
			} else {
				d.out = utf8.AppendRune(d.out, utf8.RuneError)
				d.out = utf8.AppendRune(d.out, r2)
			}
		default:
			return false
		}
		return true
	}
}

func (d *fastDecoder) hex4() (rune, bool) {
	if len(d.in)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.in[d.pos : d.pos+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	d.pos += 4
	return r, true
}

// wrapperString reads `"<no escapes>"` after a wrapper key's colon.
// wrapperInt reads a wrapper's string value as a base-10 integer that fits
// in bits bits ($numberLong, $numberInt).
func (d *fastDecoder) wrapperInt(bits int) (int64, bool) {
	s, ok := d.wrapperString()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(s), 10, bits)
	return v, err == nil
}

func (d *fastDecoder) wrapperString() ([]byte, bool) {
	return d.plainKey()
}

// wrapper transcodes the common extended-JSON wrappers ($oid, $date,
// $numberLong, $numberInt, $numberDouble, $numberDecimal); d.pos is at the
// first key's quote. Any other wrapper, or any irregularity, declines.
func (d *fastDecoder) wrapper() (bson.Type, bool) {
	if t, ok := d.compactWrapper(); ok {
		return t, true
	}
	key, ok := d.plainKey()
	if !ok || !d.expect(':') {
		return 0, false
	}
	var t bson.Type
	switch string(key) {
	case "$oid":
		s, ok := d.wrapperString()
		if !ok || len(s) != 24 {
			return 0, false
		}
		var oid bson.ObjectID
		if _, err := hex.Decode(oid[:], s); err != nil {
			return 0, false
		}
		d.out = append(d.out, oid[:]...)
		t = bson.TypeObjectID
	case "$date":
		ms, ok := d.wrapperDate()
		if !ok {
			return 0, false
		}
		d.out = binary.LittleEndian.AppendUint64(d.out, uint64(ms))
		t = bson.TypeDateTime
	case "$numberLong":
		v, ok := d.wrapperInt(64)
		if !ok {
			return 0, false
		}
		d.out = binary.LittleEndian.AppendUint64(d.out, uint64(v))
		t = bson.TypeInt64
	case "$numberInt":
		v, ok := d.wrapperInt(32)
		if !ok {
			return 0, false
		}
		d.out = binary.LittleEndian.AppendUint32(d.out, uint32(int32(v)))
		t = bson.TypeInt32
	case "$numberDouble":
		f, ok := d.wrapperDouble()
		if !ok {
			return 0, false
		}
		d.out = binary.LittleEndian.AppendUint64(d.out, math.Float64bits(f))
		t = bson.TypeDouble
	case "$numberDecimal":
		s, ok := d.wrapperString()
		if !ok {
			return 0, false
		}
		dec, err := bson.ParseDecimal128(string(s))
		if err != nil {
			return 0, false
		}
		hi, lo := dec.GetBytes()
		d.out = binary.LittleEndian.AppendUint64(d.out, lo)
		d.out = binary.LittleEndian.AppendUint64(d.out, hi)
		t = bson.TypeDecimal128
	default:
		return 0, false
	}
	if !d.expect('}') {
		return 0, false
	}
	return t, true
}

// compactWrapper transcodes the wrappers of most payloads written without
// spaces, {"$oid":"<24 hex>"}, {"$numberLong":"<up to 18 digits>"} and
// {"$date":"<yyyy-mm-ddThh:mm:ss.mmmZ>"} (d.pos at the first key's quote),
// as wrapper would; false (nothing read or written) on anything else.
func (d *fastDecoder) compactWrapper() (bson.Type, bool) {
	in := d.in[d.pos:]
	switch {
	case len(in) >= 34 && string(in[:8]) == `"$oid":"` && in[32] == '"' && in[33] == '}':
		var oid bson.ObjectID
		var seen byte
		for i := range oid {
			hi, lo := hexNibble[in[8+2*i]], hexNibble[in[9+2*i]]
			seen |= hi | lo
			oid[i] = hi<<4 | lo&0x0f
		}
		if seen&notHex != 0 {
			return 0, false
		}
		d.out = append(d.out, oid[:]...)
		d.pos += 34
		return bson.TypeObjectID, true
	case len(in) >= 18 && string(in[:15]) == `"$numberLong":"`:
		// Up to 18 digits, optionally negative: what ParseInt reads
		// without overflow; anything else goes the general way.
		i, neg := 15, in[15] == '-'
		if neg {
			i++
		}
		var v int64
		j := i
		for ; j < len(in) && j-i < 19 && in[j] >= '0' && in[j] <= '9'; j++ {
			v = v*10 + int64(in[j]-'0')
		}
		if j == i || j-i > 18 || j+1 >= len(in) || in[j] != '"' || in[j+1] != '}' {
			return 0, false
		}
		if neg {
			v = -v
		}
		d.out = binary.LittleEndian.AppendUint64(d.out, uint64(v))
		d.pos += j + 2
		return bson.TypeInt64, true
	case len(in) >= 35 && string(in[:9]) == `"$date":"` && in[33] == '"' && in[34] == '}':
		ms, ok := parseUTCMillis(in[9:33])
		if !ok {
			return 0, false
		}
		d.out = binary.LittleEndian.AppendUint64(d.out, uint64(ms))
		d.pos += 35
		return bson.TypeDateTime, true
	}
	return 0, false
}

// wrapperDate reads a $date's value: a relaxed date string or a
// {"$numberLong": "..."} of milliseconds.
func (d *fastDecoder) wrapperDate() (int64, bool) {
	switch d.next() {
	case '"':
		s, ok := d.wrapperString()
		if !ok {
			return 0, false
		}
		return parseExtJSONDate(s)
	case '{':
		d.pos++
		k, ok := d.plainKey()
		if !ok || string(k) != "$numberLong" || !d.expect(':') {
			return 0, false
		}
		v, ok := d.wrapperInt(64)
		if !ok || !d.expect('}') {
			return 0, false
		}
		return v, true
	default:
		return 0, false
	}
}

// wrapperDouble reads a $numberDouble's string: a number, Infinity,
// -Infinity or NaN.
func (d *fastDecoder) wrapperDouble() (float64, bool) {
	s, ok := d.wrapperString()
	if !ok {
		return 0, false
	}
	switch string(s) {
	case "Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	case "NaN":
		return math.NaN(), true
	}
	f, err := strconv.ParseFloat(string(s), 64)
	return f, err == nil
}

// parseExtJSONDate parses a relaxed $date string exactly as the bson package
// does: RFC 3339 with millisecond truncation, with or without a colon in the
// offset. The common UTC form with 0 or 3 fraction digits is parsed by hand;
// anything else, including out-of-range fields, goes through time.Parse.
func parseExtJSONDate(s []byte) (int64, bool) {
	if ms, ok := parseUTCMillis(s); ok {
		return ms, true
	}
	for _, layout := range [...]string{"2006-01-02T15:04:05.999Z07:00", "2006-01-02T15:04:05.999Z0700"} {
		if t, err := time.Parse(layout, string(s)); err == nil {
			return int64(bson.NewDateTimeFromTime(t)), true
		}
	}
	return 0, false
}

// parseUTCMillis reads "2006-01-02T15:04:05Z" or "2006-01-02T15:04:05.000Z".
func parseUTCMillis(s []byte) (int64, bool) {
	if len(s) != 20 && len(s) != 24 || s[len(s)-1] != 'Z' {
		return 0, false
	}
	secs, ok := parseDateTime(s[:19])
	ms := 0
	if len(s) == 24 {
		if s[19] != '.' {
			return 0, false
		}
		ms = num(s[20:23])
	}
	if !ok || ms < 0 {
		return 0, false
	}
	return secs*1000 + int64(ms), true
}

// parseDateTime reads "2006-01-02T15:04:05" (a valid date and time, second
// 59 at most) as seconds since the Unix epoch.
func parseDateTime(s []byte) (int64, bool) {
	if len(s) != 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	y, mo, d, h, mi, sec := num(s[0:4]), num(s[5:7]), num(s[8:10]), num(s[11:13]), num(s[14:16]), num(s[17:19])
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return 0, false
	}
	if d > daysIn(y, mo) {
		return 0, false
	}
	return daysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+sec), true
}

// num reads decimal digits; -1 if a byte is not one.
func num(b []byte) int {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// daysIn is the number of days of month mo (1-12) of year y (proleptic
// Gregorian, as package time).
func daysIn(y, mo int) int {
	if mo == 2 {
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return 30 + (mo+mo>>3)&1
}

// daysFromCivil is the number of days from 1970-01-01 to y-mo-d (y >= 0,
// proleptic Gregorian; Howard Hinnant's days_from_civil).
func daysFromCivil(y, mo, d int) int64 {
	if mo <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	doy := (153*((mo+9)%12)+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// skipValue validates and skips one JSON value (envelope parts other than the
// payload).
func (d *fastDecoder) skipValue() bool {
	switch d.next() {
	case '{':
		d.pos++
		if d.depth++; d.depth > maxFastDepth {
			return false
		}
		ok := d.skipObject()
		d.depth--
		return ok
	case '[':
		d.pos++
		if d.depth++; d.depth > maxFastDepth {
			return false
		}
		ok := d.skipArray()
		d.depth--
		return ok
	case '"':
		d.pos++
		return d.skipString()
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		mark := len(d.out)
		_, ok := d.number()
		d.out = d.out[:mark]
		return ok
	}
	return false
}

func (d *fastDecoder) skipObject() bool {
	if d.next() == '}' {
		d.pos++
		return true
	}
	for {
		if !d.expect('"') || !d.skipString() || !d.expect(':') || !d.skipValue() {
			return false
		}
		if more, ok := d.separator('}'); !ok || !more {
			return ok
		}
	}
}

func (d *fastDecoder) skipArray() bool {
	if d.next() == ']' {
		d.pos++
		return true
	}
	for {
		if !d.skipValue() {
			return false
		}
		if more, ok := d.separator(']'); !ok || !more {
			return ok
		}
	}
}

// separator consumes what follows a member or element: ',' (more follow)
// or closer (the object or array ends). ok is false on anything else.
func (d *fastDecoder) separator(closer byte) (more, ok bool) {
	switch d.next() {
	case ',':
		d.pos++
		return true, true
	case closer:
		d.pos++
		return false, true
	}
	return false, false
}

// skipString validates a JSON string whose opening quote was consumed.
func (d *fastDecoder) skipString() bool {
	in := d.in
	for d.pos < len(in) {
		c := in[d.pos]
		switch {
		case c == '"':
			d.pos++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			d.pos++
			if d.pos >= len(in) {
				return false
			}
			switch in[d.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.pos++
			case 'u':
				d.pos++
				if _, ok := d.hex4(); !ok {
					return false
				}
			default:
				return false
			}
		case c < 0x80:
			d.pos++
		default:
			r, n := utf8.DecodeRune(in[d.pos:])
			if r == utf8.RuneError && n == 1 {
				return false
			}
			d.pos += n
		}
	}
	return false
}

package e2e

// The model checker's pure half: a seed's plan (topics, settings, faults) and history (the records
// to produce, good and poison), and the reference the real system is compared with. No network,
// no clock but the anchor it is given. model_test.go runs a plan against the built binary.
//
// The reference is DESIGN.md's: per key, apply each good record one by one in offset order with
// the stale-write guard. An upsert with processedAt t replaces the stored document only if there
// is none, or it has no processedAt, or its processedAt <= t; an upsert without processedAt always
// replaces. A tombstone with processedAt t deletes under the same condition (deleting nothing is a
// no-op); a tombstone without processedAt always deletes. processedAt is compared in milliseconds,
// the precision `_sync.processedAt` (a BSON date) stores. The document written carries `_sync`
// {topic, partition, offset, processedAt, traceId} of the record that wrote it.

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/record"
)

// faultKind is one kind of fault the checker injects.
type faultKind string

const (
	faultKill9    faultKind = "kill9"    // SIGKILL a replica, start another
	faultSigstop  faultKind = "sigstop"  // SIGSTOP a replica, a second takes over, then SIGCONT
	faultMongo    faultKind = "mongo"    // scripts/stack stop mongo (FerretDB), start again
	faultPostgres faultKind = "postgres" // scripts/stack stop postgres (FerretDB's storage), start again
	faultLock     faultKind = "lock"     // LOCK TABLE <one collection> IN ACCESS EXCLUSIVE MODE for a while
	faultKafka    faultKind = "kafka"    // scripts/stack stop kafka, start again
)

// faultKinds in the order a seed's first fault is chosen: seed%6, so six consecutive seeds inject
// every kind at least once.
var faultKinds = []faultKind{faultKill9, faultSigstop, faultMongo, faultPostgres, faultLock, faultKafka}

// needsStack says whether the fault stops a service of the local stack.
func (k faultKind) needsStack() bool {
	return k == faultMongo || k == faultPostgres || k == faultLock || k == faultKafka
}

type fault struct {
	kind  faultKind
	after time.Duration // wait before injecting it, once the chunk before it is produced
	hold  time.Duration // service down / lock held / replica frozen after the takeover
	pick  int           // which replica (kill9, sigstop) or topic (lock), modulo the candidates
	mode  string        // lock: ACCESS EXCLUSIVE (blocks the canary too) or EXCLUSIVE (blocks writes; FerretDB skips an unchanged row)
}

func (f fault) String() string {
	if f.kind == faultLock {
		return fmt.Sprintf("%s(%s, after %s, hold %s)", f.kind, f.mode, f.after, f.hold)
	}
	return fmt.Sprintf("%s(after %s, hold %s)", f.kind, f.after, f.hold)
}

// modelTopic is one state topic of a seed.
type modelTopic struct {
	name, entity, collection string
	partitions               int
	keys                     []bson.ObjectID
	part                     map[bson.ObjectID]int32 // a key's partition
}

// plan is everything a seed decides.
type plan struct {
	seed          uint64
	id            string // names topics, group and database; unique per run
	anchor        time.Time
	topics        []*modelTopic
	dlt, db       string
	group         string
	subscription  string // STATESYNC_TOPICS
	subscribesDLT bool   // the subscription is a regex the dead-letter topic matches too
	collections   string // STATESYNC_COLLECTIONS
	batchDocs     int
	batchWait     time.Duration
	concurrency   int
	mongoTimeout  time.Duration
	replicas      int     // `run` processes started at first
	importFirst   bool    // chunk 0 is synced by `statesync import` before `run` starts
	importKill    bool    // ... whose first attempt is killed -9 midway,
	killImportAt  float64 // once it consumed this share of chunk 0's records (or at once if it finished)
	allowDLT      bool    // import --allow-dead-letters
	faults        []fault
	msgs          []*modelMsg // in production order
	chunks        []int       // chunk i is msgs[chunks[i]:chunks[i+1]]
}

// modelMsg is one record of the history and what the contract makes of it.
type modelMsg struct {
	seq       int
	topic     int // index in plan.topics
	partition int32
	key       []byte
	value     []byte // nil: tombstone
	headers   []record.Header
	offset    int64 // set when produced
	chunk     int   // produced with chunk

	good      bool // a state record that must reach the database (decimal aside)
	id        bson.ObjectID
	tombstone bool
	hasAt     bool
	atMs      int64          // processedAt, milliseconds since the epoch
	traceID   string         // expected _sync.traceId ("" none)
	traceRaw  []byte         // a Kafka traceId header that is not valid UTF-8
	payload   map[string]any // expected payload fields, normalized, without _id
	decimal   bool           // holds a Decimal128: FerretDB 1.x cannot store it (unwritable), MongoDB can
	dup       bool           // its JSON has a name twice in one object (the last one wins)
	class     string         // poison: the expected error.class
	what      string         // poison kind or wire shape, for messages
}

// poisonClass is the error class expected for m on a server (ferret: FerretDB 1.x), "" if m is good.
func (m *modelMsg) poisonClass(ferret bool) string {
	if m.good && m.decimal && ferret {
		return record.ClassUnwritable
	}
	if m.good {
		return ""
	}
	return m.class
}

func (m *modelMsg) String() string {
	kind := "upsert"
	switch {
	case !m.good:
		kind = "poison " + m.what
	case m.tombstone:
		kind = "tombstone"
	}
	at := "no processedAt"
	if !m.good {
		at = ""
	} else if m.hasAt {
		at = time.UnixMilli(m.atMs).UTC().Format("15:04:05.000")
	}
	return fmt.Sprintf("#%d topic %d [%d]@%d key %q %s (%s) %s", m.seq, m.topic, m.partition, m.offset, m.key, kind, m.what, at)
}

// ---------------------------------------------------------------------------------------------
// the plan

// newPlan draws a seed's plan and history. Only the anchor (processedAt values are anchor-relative,
// "future" ones lie past the wall clock) and the names (id) depend on more than the seed.
func newPlan(seed uint64, id string, anchor time.Time) *plan {
	rng := rand.New(rand.NewPCG(seed, 0x5eedc0de))
	p := &plan{seed: seed, id: id, anchor: anchor.UTC().Truncate(time.Second)}
	p.dlt = "codr.svc." + id + ".dlt"
	p.db = "model_" + strings.ReplaceAll(id, "-", "_")
	p.group = "model-" + id
	nTopics := 2 + rng.IntN(2)
	var names []string
	for i := range nTopics {
		entity := fmt.Sprintf("%s-%c", id, 'a'+i)
		tp := &modelTopic{name: "codr.state." + entity, entity: entity, collection: entity, partitions: 2 + rng.IntN(2),
			part: map[bson.ObjectID]int32{}}
		for range 6 + rng.IntN(20) {
			k := randomOID(rng)
			for strings.ToUpper(k.Hex()) == k.Hex() { // an upper-case spelling must differ
				k = randomOID(rng)
			}
			tp.keys = append(tp.keys, k)
			tp.part[k] = int32(rng.IntN(tp.partitions))
		}
		p.topics = append(p.topics, tp)
		names = append(names, tp.name)
	}
	switch rng.IntN(3) {
	case 0:
		p.subscription = strings.Join(names, ",")
	case 1:
		p.subscription = `^codr\.state\.` + regexpQuote(id) + `-.+`
	default:
		// matches the dead-letter topic too, which must never be consumed
		p.subscription = `^codr\.[a-z]+\.` + regexpQuote(id) + `.*`
		p.subscribesDLT = true
	}
	if rng.IntN(3) == 0 {
		tp := p.topics[1]
		tp.collection = "mapped_" + strings.ReplaceAll(tp.entity, "-", "_")
		p.collections = tp.entity + "=" + tp.collection
	}
	p.batchDocs = []int{1, 3, 1000}[rng.IntN(3)]
	p.batchWait = []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond}[rng.IntN(3)]
	p.concurrency = 1 + rng.IntN(4)
	// short timeouts make a locked collection's writes fail (time out) while other collections
	// are written: they must be retried, never dead-lettered
	p.mongoTimeout = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 30 * time.Second}[rng.IntN(4)]
	p.replicas = 1
	if rng.IntN(4) == 0 {
		p.replicas = 2
	}
	p.importFirst = rng.IntN(4) == 0
	p.importKill = p.importFirst && rng.IntN(2) == 0
	p.killImportAt = 0.05 + 0.7*rng.Float64()
	p.allowDLT = rng.IntN(2) == 0
	withDecimal := rng.IntN(4) == 0

	nFaults := 1 + rng.IntN(3)
	for i := range nFaults {
		k := faultKinds[seed%uint64(len(faultKinds))]
		if i > 0 {
			// a Kafka restart costs half a minute: rarely more than one per seed
			k = faultKinds[rng.IntN(len(faultKinds)-1)]
			if rng.IntN(10) == 0 {
				k = faultKafka
			}
		}
		f := fault{kind: k, after: time.Duration(100+rng.IntN(1900)) * time.Millisecond, pick: rng.IntN(1000)}
		switch k {
		case faultMongo, faultPostgres:
			f.hold = time.Duration(2000+rng.IntN(8000)) * time.Millisecond
		case faultLock:
			f.hold = time.Duration(3000+rng.IntN(12000)) * time.Millisecond
			f.mode = []string{"ACCESS EXCLUSIVE", "ACCESS EXCLUSIVE", "EXCLUSIVE"}[rng.IntN(3)]
		case faultKafka:
			f.hold = time.Duration(3000+rng.IntN(5000)) * time.Millisecond
		case faultSigstop:
			f.hold = time.Duration(rng.IntN(3000)) * time.Millisecond
		}
		p.faults = append(p.faults, f)
	}

	g := &histGen{rng: rng, p: p, last: map[bson.ObjectID]time.Time{}}
	g.history(250+rng.IntN(350), withDecimal)
	// chunks: one before the faults and one produced during (or after) each fault
	n := len(p.faults) + 1
	p.chunks = []int{0}
	for i := 1; i < n; i++ {
		lo := p.chunks[i-1] + len(p.msgs)/(2*n)
		hi := len(p.msgs) * i / n
		p.chunks = append(p.chunks, lo+rng.IntN(max(1, hi-lo+1)))
	}
	p.chunks = append(p.chunks, len(p.msgs))
	for c := range len(p.chunks) - 1 {
		for _, m := range p.chunk(c) {
			m.chunk = c
		}
	}
	return p
}

func regexpQuote(s string) string { return strings.ReplaceAll(s, ".", `\.`) }

func randomOID(rng *rand.Rand) bson.ObjectID {
	var id bson.ObjectID
	for i := range id {
		id[i] = byte(rng.IntN(256))
	}
	return id
}

// chunk returns the messages of chunk i (none past the last).
func (p *plan) chunk(i int) []*modelMsg {
	if i+1 >= len(p.chunks) {
		return nil
	}
	return p.msgs[p.chunks[i]:p.chunks[i+1]]
}

func (p *plan) String() string {
	var parts []string
	for _, tp := range p.topics {
		parts = append(parts, fmt.Sprintf("%s(%dp,%dk→%s)", tp.name, tp.partitions, len(tp.keys), tp.collection))
	}
	good, poison := p.counts()
	return fmt.Sprintf("topics %s; subscription %q; records %d (%d good, %d poison) in chunks %v; batch docs %d wait %s; concurrency %d; "+
		"mongo timeout %s; replicas %d; import first %v (killed %v, allow dead letters %v); faults %v",
		strings.Join(parts, " "), p.subscription, len(p.msgs), good, poison, p.chunks, p.batchDocs, p.batchWait, p.concurrency,
		p.mongoTimeout, p.replicas, p.importFirst, p.importKill, p.allowDLT, p.faults)
}

func (p *plan) counts() (good, poison int) {
	for _, m := range p.msgs {
		if m.good {
			good++
		} else {
			poison++
		}
	}
	return
}

// redeliveredUpTo is the last chunk a fault may make the group read again (-1: none): a record
// of a later chunk is consumed once. Fault i comes after chunk i; a killed replica's successor's
// and a frozen replica's re-reads start at the last commit, before chunk i+1. After a Kafka
// restart chunk i+1 is produced at once, and the group may learn only later that the assignment
// it read it with was lost.
func (p *plan) redeliveredUpTo() int {
	last := -1
	if p.importKill {
		last = 0
	}
	for i, f := range p.faults {
		switch f.kind {
		case faultKafka:
			last = max(last, i+1)
		case faultKill9, faultSigstop:
			last = max(last, i)
		}
	}
	return last
}

func (p *plan) has(k faultKind) bool {
	for _, f := range p.faults {
		if f.kind == k {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------------
// the reference

// apply is one record applied one by one with the guard: what is stored after m, given cur (nil:
// no document).
func apply(cur, m *modelMsg) *modelMsg {
	if m.hasAt && cur != nil && cur.hasAt && cur.atMs > m.atMs {
		return cur // the stored document is newer: the write is fenced
	}
	if m.tombstone {
		return nil
	}
	return m
}

// expectation is the reference's final state: per topic, every lower-case key seen (good or
// poison) and the record whose document it must hold (nil: no document); and the poison records.
type expectation struct {
	docs    []map[bson.ObjectID]*modelMsg
	history []map[bson.ObjectID][]*modelMsg // each key's good records in offset order
	poison  map[string]*modelMsg            // by origin "topic/partition/offset"
}

func letterKey(topic string, partition int32, offset int64) string {
	return fmt.Sprintf("%s/%d/%d", topic, partition, offset)
}

// expect runs the reference over the produced history (offsets set). ferret: the server is
// FerretDB 1.x, where a Decimal128 record is poison.
func (p *plan) expect(ferret bool) *expectation {
	e := &expectation{poison: map[string]*modelMsg{}}
	for range p.topics {
		e.docs = append(e.docs, map[bson.ObjectID]*modelMsg{})
		e.history = append(e.history, map[bson.ObjectID][]*modelMsg{})
	}
	msgs := slices.Clone(p.msgs)
	slices.SortStableFunc(msgs, func(a, b *modelMsg) int {
		if a.topic != b.topic {
			return a.topic - b.topic
		}
		if a.partition != b.partition {
			return int(a.partition - b.partition)
		}
		return int(a.offset - b.offset)
	})
	for _, m := range msgs {
		tp := p.topics[m.topic]
		if id, ok := lowerHexOID(m.key); ok {
			if _, seen := e.docs[m.topic][id]; !seen {
				e.docs[m.topic][id] = nil
			}
		}
		if c := m.poisonClass(ferret); c != "" {
			e.poison[letterKey(tp.name, m.partition, m.offset)] = m
			continue
		}
		e.docs[m.topic][m.id] = apply(e.docs[m.topic][m.id], m)
		e.history[m.topic][m.id] = append(e.history[m.topic][m.id], m)
	}
	return e
}

func lowerHexOID(k []byte) (bson.ObjectID, bool) {
	var id bson.ObjectID
	if len(k) != 24 || strings.ToLower(string(k)) != string(k) {
		return id, false
	}
	if _, err := hex.Decode(id[:], k); err != nil {
		return id, false
	}
	return id, true
}

// zombieExcuse says whether a key's state that differs from the reference is one a frozen
// replica's late write may leave, which the contract does not exclude (docs/guarantees.md, "What is
// not guaranteed"): after its partitions moved, a replica thawed from SIGSTOP may still send the
// rest of the bulk it had in flight; only the guard fences it, so a late write of an older record
// wins when it carries no processedAt (or was collapsed with one that did not), or when the
// stored document is not newer (equal processedAt). got is the record the document holds (nil: no
// document).
//
// The late write must be of a record produced before a replica was frozen (chunk <= lastChunk),
// and a record is written unguarded when it has no processedAt or when its batch (at most
// window consecutive offsets of the partition) holds an earlier record of the key without one.
func zombieExcuse(history []*modelMsg, want, got *modelMsg, lastChunk int, window int64) bool {
	for i, r := range history {
		if r == want || r.chunk > lastChunk || r.tombstone != (got == nil) || (got != nil && r != got) {
			continue
		}
		unguarded := !r.hasAt
		for _, q := range history[:i] {
			unguarded = unguarded || (!q.hasAt && r.offset-q.offset < window)
		}
		if unguarded || want == nil || !want.hasAt || want.atMs <= r.atMs {
			return true
		}
	}
	return false
}

// zombieChunk is the last chunk produced before a replica was frozen (-1: none was).
func (p *plan) zombieChunk() int {
	last := -1
	for i, f := range p.faults {
		if f.kind == faultSigstop {
			last = i // fault i comes after chunk i
		}
	}
	return last
}

// ---------------------------------------------------------------------------------------------
// the history

type histGen struct {
	rng   *rand.Rand
	p     *plan
	clock int64 // ms after the anchor, increasing
	last  map[bson.ObjectID]time.Time
	dups  int // duplicate names rendered so far
}

// poison kinds every seed has one of (decimal only with withDecimal).
var poisonKinds = []string{"not-json", "not-object", "invalid-utf8", "key-not-oid", "upper-case-key", "id-mismatch",
	"no-payload", "dollar-field", "bad-extjson", "bad-processedAt"}

func (g *histGen) history(n int, withDecimal bool) {
	kinds := slices.Clone(poisonKinds)
	if withDecimal {
		kinds = append(kinds, "decimal")
	}
	// each kind once at a random position, plus about 3% more at random
	at := map[int]string{}
	for _, k := range kinds {
		for {
			i := g.rng.IntN(n)
			if _, taken := at[i]; !taken {
				at[i] = k
				break
			}
		}
	}
	for i := range n {
		g.clock += 1 + int64(g.rng.IntN(40))
		ti := g.rng.IntN(len(g.p.topics))
		tp := g.p.topics[ti]
		var id bson.ObjectID
		if g.rng.IntN(10) < 3 {
			id = tp.keys[g.rng.IntN(min(3, len(tp.keys)))] // hot keys
		} else {
			id = tp.keys[g.rng.IntN(len(tp.keys))]
		}
		var m *modelMsg
		kind, isPoison := at[i]
		if !isPoison && g.rng.IntN(100) < 3 {
			kind, isPoison = poisonKinds[g.rng.IntN(len(poisonKinds))], true
		}
		if kind == "decimal" {
			// a key of its own: its only record is its final state, so it must be written (or,
			// on FerretDB, dead-lettered); never collapsed into a later record or fenced
			id = randomOID(g.rng)
			tp.part[id] = int32(g.rng.IntN(tp.partitions))
		}
		switch {
		case isPoison:
			m = g.poison(kind, tp, id)
		case g.rng.IntN(100) < 12:
			m = g.tombstone(id)
		default:
			m = g.upsert(id)
		}
		m.seq, m.topic = i, ti
		if m.partition < 0 { // a key that is not the topic's chose its own
			m.partition = tp.part[id]
		}
		g.p.msgs = append(g.p.msgs, m)
	}
}

func (g *histGen) traceID(id bson.ObjectID) string {
	return fmt.Sprintf("%08x-%04x-4000-8000-%012x", uint32(g.p.seed), g.clock&0xffff, uint64(len(g.p.msgs))<<16|uint64(id[11]))
}

// processedAt draws the IMessage processedAt of the next record of key id: newer, equal, older,
// missing, equal to the millisecond with other microseconds, or in the future (a producer whose
// clock runs ahead, within a couple of minutes).
func (g *histGen) processedAt(id bson.ObjectID) (time.Time, bool) {
	last, ok := g.last[id]
	now := g.p.anchor.Add(time.Duration(g.clock) * time.Millisecond)
	var t time.Time
	r := g.rng.IntN(100)
	switch {
	case r < 14:
		return time.Time{}, false
	case r < 24 && ok:
		t = last
	case r < 28 && ok:
		t = last.Truncate(time.Millisecond).Add(time.Duration(g.rng.IntN(1000)) * time.Microsecond)
	case r < 43 && ok:
		t = last.Add(-time.Duration(1+g.rng.IntN(3000)) * time.Millisecond)
	case r < 48:
		t = g.p.anchor.Add(anchorAge + time.Duration(1+g.rng.IntN(120))*time.Second)
	case r < 55:
		t = now.Add(time.Duration(g.rng.IntN(1000)) * time.Microsecond)
	default:
		t = now
	}
	g.last[id] = t
	return t, true
}

// anchorAge is how far in the past the anchor lies: "future" processedAt values are past it.
const anchorAge = 2 * time.Hour

// formatAt renders a processedAt: milliseconds, RFC 3339 (fraction trimmed), an offset other than
// Z, or microseconds when the time has them.
func (g *histGen) formatAt(t time.Time) string {
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	}
	switch g.rng.IntN(6) {
	case 0:
		return t.UTC().Format(time.RFC3339Nano)
	case 1:
		return t.In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05.000Z07:00")
	default:
		return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
}

func (g *histGen) stamp(m *modelMsg, t time.Time, has bool) {
	m.hasAt = has
	if has {
		m.atMs = t.UnixMilli()
	}
}

func (g *histGen) tombstone(id bson.ObjectID) *modelMsg {
	m := &modelMsg{good: true, tombstone: true, id: id, key: []byte(id.Hex()), partition: -1, what: "tombstone"}
	t, has := g.processedAt(id)
	g.stamp(m, t, has)
	m.traceID = g.traceID(id)
	m.headers = []record.Header{{Key: "key", Value: m.key}, {Key: "traceId", Value: []byte(m.traceID)}}
	if has {
		m.headers = append(m.headers, record.Header{Key: "processedAt", Value: []byte(g.formatAt(t))})
	}
	return m
}

// upsert is a good record of id in one of the two wire shapes.
func (g *histGen) upsert(id bson.ObjectID) *modelMsg {
	m := &modelMsg{good: true, id: id, key: []byte(id.Hex()), partition: -1}
	dups := g.dups
	defer func() { m.dup = m.dup || g.dups > dups }()
	t, has := g.processedAt(id)
	g.stamp(m, t, has)
	trace := g.traceID(id)
	m.traceID = trace
	payload, want := g.payload(id)
	m.payload = want
	badTrace := g.rng.IntN(100) < 4
	if g.rng.IntN(100) < 55 {
		// the record alone, IMessage headers as Kafka headers
		m.what = "record"
		v := []byte(`{"payload":`)
		if g.rng.IntN(20) == 0 {
			// a decoy payload first: the last "payload" wins
			decoy, _ := g.payload(id)
			v = append(append(v, decoy...), `,"payload":`...)
			m.what += "+dup-payload"
			m.dup = true
		}
		m.value = append(append(v, payload...), '}')
		m.headers = []record.Header{{Key: "key", Value: m.key}, {Key: "traceId", Value: []byte(trace)}}
		if has {
			m.headers = append(m.headers, record.Header{Key: "processedAt", Value: []byte(g.formatAt(t))})
		}
	} else {
		// the envelope; sometimes Kafka headers too, which win over the envelope's
		m.what = "envelope"
		envTrace, envAt, envHas := trace, t, has
		if g.rng.IntN(4) == 0 {
			m.what += "+kafka-headers"
			m.headers = []record.Header{{Key: "key", Value: m.key}}
			if g.rng.IntN(2) == 0 {
				envTrace = trace + "-envelope"
				m.headers = append(m.headers, record.Header{Key: "traceId", Value: []byte(trace)})
			}
			if has && g.rng.IntN(2) == 0 {
				envAt, envHas = t.Add(time.Duration(g.rng.IntN(5000)-2500)*time.Millisecond), true
				if g.rng.IntN(3) == 0 {
					envHas = false
				}
				m.headers = append(m.headers, record.Header{Key: "processedAt", Value: []byte(g.formatAt(t))})
			}
		}
		h := []byte(`{"key":"` + id.Hex() + `","traceId":"` + envTrace + `"`)
		if envHas {
			if g.rng.IntN(20) == 0 {
				h = append(h, `,"processedAt":"2001-01-01T00:00:00.000Z"`...) // a decoy: the last one wins
				m.what += "+dup-processedAt"
				m.dup = true
			}
			if g.rng.IntN(8) == 0 {
				h = append(h, `,"processedAt":{"$date":"`+g.formatAt(envAt)+`"}`...)
			} else {
				h = append(h, `,"processedAt":"`+g.formatAt(envAt)+`"`...)
			}
		} else if g.rng.IntN(4) == 0 {
			h = append(h, `,"processedAt":null`...)
		}
		h = append(h, '}')
		rec := append(append([]byte(`{"payload":`), payload...), '}')
		if g.rng.IntN(5) == 0 {
			m.value = fmt.Appendf(nil, `{"record":%s,"headers":%s}`, rec, h)
		} else {
			m.value = fmt.Appendf(nil, `{"headers":%s,"record":%s}`, h, rec)
		}
	}
	if badTrace {
		// a traceId header that is not valid UTF-8 (it wins over an envelope's)
		m.traceRaw = []byte("bad-\xff\xfe-" + trace[:8])
		m.headers = slices.DeleteFunc(m.headers, func(h record.Header) bool { return h.Key == "traceId" })
		m.headers = append(m.headers, record.Header{Key: "traceId", Value: m.traceRaw})
		m.traceID = ""
		m.what += "+invalid-utf8-traceId"
	}
	return m
}

// poison is a record that can never be written as it is, of the given kind.
func (g *histGen) poison(kind string, tp *modelTopic, id bson.ObjectID) *modelMsg {
	m := &modelMsg{key: []byte(id.Hex()), partition: -1, what: kind}
	prev, had := g.last[id]
	t, has := g.processedAt(id)
	if had { // poison never reaches the database: the key's next record is drawn relative to the last good one
		g.last[id] = prev
	} else {
		delete(g.last, id)
	}
	if !has {
		t = g.p.anchor.Add(time.Duration(g.clock) * time.Millisecond)
	}
	trace := g.traceID(id)
	m.headers = []record.Header{{Key: "key", Value: m.key}, {Key: "traceId", Value: []byte(trace)},
		{Key: "processedAt", Value: []byte(g.formatAt(t))}}
	payload, _ := g.payload(id)
	good := append(append([]byte(`{"payload":`), payload...), '}')
	pick := func(vs ...string) []byte { return []byte(vs[g.rng.IntN(len(vs))]) }
	other := randomOID(g.rng).Hex()
	switch kind {
	case "not-json":
		m.class = record.ClassInvalidJSON
		m.value = pick(`{"payload": {"a": 1}`, `hello`, `{"payload":{"a":1}}}`, `{"payload":{"a":01}}`, `{payload:{}}`)
	case "not-object":
		m.class = record.ClassInvalidJSON
		m.value = pick(`[{"payload":{"a":1}}]`, `42`, `"payload"`, `null`, `true`)
	case "invalid-utf8":
		m.class = record.ClassInvalidJSON
		m.value = pick("{\"payload\":{\"s\":\"\xff\xfe\"}}", "{\"payload\":{\"k\xc3\":1}}", "{\"headers\":{\"traceId\":\"\xed\xa0\x80\"},\"record\":{\"payload\":{}}}")
	case "key-not-oid":
		m.class = record.ClassInvalidKey
		h := id.Hex()
		m.key = pick("not-an-object-id", h[:23], "zz"+h[2:], h+"0", "0x"+h[2:], " "+h[1:])
		m.value = good
		m.partition = int32(g.rng.IntN(tp.partitions))
	case "upper-case-key":
		// the same ObjectId spelt in upper (or mixed) case: another Kafka key, never the same _id
		m.class = record.ClassInvalidKey
		h := id.Hex()
		up := strings.ToUpper(h)
		if g.rng.IntN(2) == 0 {
			b := []byte(h)
			for i := range b {
				if b[i] >= 'a' && g.rng.IntN(2) == 0 || i == strings.IndexAny(h, "abcdef") {
					b[i] -= 'a' - 'A'
				}
			}
			up = string(b)
		}
		m.key = []byte(up)
		m.headers[0].Value = m.key
		m.value = good
	case "id-mismatch":
		m.class = record.ClassIDMismatch
		m.value = pick(`{"payload":{"_id":{"$oid":"`+other+`"},"a":1}}`, `{"payload":{"id":{"$oid":"`+other+`"},"a":1}}`,
			`{"payload":{"_id":"`+other+`","a":1}}`, `{"payload":{"_id":{"$oid":"`+id.Hex()+`"},"a":1,"_id":{"$oid":"`+other+`"}}}`)
	case "no-payload":
		m.class = record.ClassInvalidPayload
		m.value = pick(`{"state":{"a":1}}`, `{}`, `{"headers":{"key":"`+id.Hex()+`"},"record":{"data":{"a":1}}}`)
	case "dollar-field":
		m.class = record.ClassInvalidPayload
		m.value = pick(`{"payload":{"$set":{"a":1}}}`, `{"payload":{"a":{"b":{"$foo":1}}}}`, `{"payload":{"a":[1,{"$where":"x"}]}}`)
	case "bad-extjson":
		m.class = record.ClassInvalidPayload
		m.value = pick(`{"payload":{"when":{"$date":"yesterday"}}}`, `{"payload":{"o":{"$oid":"xyz"}}}`,
			`{"payload":{"n":{"$numberLong":"abc"}}}`, `{"payload":{"n":{"$numberInt":"3000000000"}}}`)
	case "bad-processedAt":
		m.class = record.ClassInvalidPayload
		if g.rng.IntN(2) == 0 {
			m.headers[2].Value = []byte("yesterday")
			m.value = good
		} else {
			m.headers = m.headers[:2]
			m.value = fmt.Appendf(nil, `{"headers":{"key":"%s","processedAt":"not a date"},"record":{"payload":%s}}`, id.Hex(), payload)
		}
	case "decimal":
		// good on MongoDB; FerretDB 1.x drops the connection on a Decimal128: unwritable there
		m.good, m.id, m.decimal = true, id, true
		m.hasAt, m.atMs = true, t.UnixMilli()
		m.traceID = trace
		m.value = []byte(`{"payload":{"d":{"$numberDecimal":"1.5"},"a":1}}`)
		d, _ := bson.ParseDecimal128("1.5")
		m.payload = map[string]any{"d": d, "a": int32(1)}
		m.what = "decimal"
	default:
		panic("unknown poison kind " + kind)
	}
	return m
}

// ---------------------------------------------------------------------------------------------
// payloads: extended JSON text and the normalized value it must become

var fieldNames = []string{"a", "b", "c", "n", "v", "x", "name", "tags", "meta", "count", "when", "ref", "flag", "é", "naïve",
	"日本", "k_1", "camelCase", "with space", "😀"}

var stringParts = []string{"", "a", "hello", "héllo wörld", "日本語", "😀 emoji", `quote " inside`, `back\slash`, "line\nbreak",
	"tab\tx", "slash/", "ünï", "mixed é😀\"\\"}

// payload returns a payload object for key id and its expected normalized fields (without _id).
func (g *histGen) payload(id bson.ObjectID) ([]byte, map[string]any) {
	n := 1 + g.rng.IntN(6)
	names := g.names(n)
	var fields []jfield
	for _, name := range names {
		fields = append(fields, jfield{name, g.value(1)})
	}
	want := map[string]any{}
	for _, f := range fields {
		want[f.name] = f.v.norm()
	}
	var idField []byte
	switch r := g.rng.IntN(20); {
	case r < 6:
		idField = fmt.Appendf(nil, `"_id":{"$oid":"%s"}`, id.Hex())
	case r < 8:
		idField = fmt.Appendf(nil, `"_id":"%s"`, id.Hex())
	case r < 9:
		idField = fmt.Appendf(nil, `"id":{"$oid":"%s"}`, id.Hex())
		want["id"] = id
	case r < 10:
		// a decoy _id first: the last one wins and matches the key
		idField = fmt.Appendf(nil, `"_id":{"$oid":"%s"},"_id":{"$oid":"%s"}`, randomOID(g.rng).Hex(), id.Hex())
		g.dups++
	}
	b := []byte{'{'}
	at := g.rng.IntN(len(fields) + 1)
	sep := false
	for i := 0; i <= len(fields); i++ {
		if i == at && idField != nil {
			if sep {
				b = append(b, ',')
			}
			b, sep = append(b, idField...), true
		}
		if i < len(fields) {
			if sep {
				b = append(b, ',')
			}
			b, sep = g.renderField(b, fields[i], fields), true
		}
	}
	return append(b, '}'), want
}

func (g *histGen) names(n int) []string {
	names := slices.Clone(fieldNames)
	g.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	return names[:min(n, len(names))]
}

type jkind int

const (
	jStr jkind = iota
	jI32
	jI64
	jF64
	jBool
	jNull
	jDate
	jOID
	jObj
	jArr
)

type jfield struct {
	name string
	v    jval
}

type jval struct {
	k      jkind
	s      string
	i      int64
	f      float64
	b      bool
	oid    bson.ObjectID
	fields []jfield // unique names; duplicates are rendered as decoys
	elems  []jval
	form   int
}

func (g *histGen) value(depth int) jval {
	r := g.rng.IntN(100)
	if depth >= 3 && r >= 72 { // no deeper objects or arrays
		r = g.rng.IntN(72)
	}
	switch {
	case r < 20:
		var parts []string
		for range 1 + g.rng.IntN(3) {
			parts = append(parts, stringParts[g.rng.IntN(len(stringParts))])
		}
		return jval{k: jStr, s: strings.Join(parts, "")}
	case r < 32:
		v := int64(g.rng.IntN(2001) - 1000)
		if g.rng.IntN(10) == 0 {
			v = []int64{math.MaxInt32, math.MinInt32}[g.rng.IntN(2)]
		}
		return jval{k: jI32, i: v, form: g.rng.IntN(4)}
	case r < 40:
		v := int64(1)<<(32+g.rng.IntN(30)) + int64(g.rng.IntN(1000))
		if g.rng.IntN(2) == 0 {
			v = -v
		}
		form := g.rng.IntN(3)
		if g.rng.IntN(4) == 0 {
			v, form = int64(g.rng.IntN(100)), 1 // small, as $numberLong: still int64
		}
		return jval{k: jI64, i: v, form: form}
	case r < 48:
		return jval{k: jF64, f: float64(g.rng.IntN(4001)-2000) / 4, form: g.rng.IntN(4)}
	case r < 54:
		return jval{k: jBool, b: g.rng.IntN(2) == 0}
	case r < 58:
		return jval{k: jNull}
	case r < 66:
		ms := g.p.anchor.UnixMilli() - int64(g.rng.IntN(1e9))*1000 - int64(g.rng.IntN(1000))
		if g.rng.IntN(3) == 0 {
			ms -= ms % 1000
		}
		return jval{k: jDate, i: ms, form: g.rng.IntN(3)}
	case r < 72:
		return jval{k: jOID, oid: randomOID(g.rng)}
	case r < 88:
		var fields []jfield
		for _, name := range g.names(g.rng.IntN(5)) {
			fields = append(fields, jfield{name, g.value(depth + 1)})
		}
		return jval{k: jObj, fields: fields}
	default:
		// no array directly in an array: FerretDB 1.x refuses nested arrays
		var elems []jval
		for range g.rng.IntN(5) {
			e := g.value(depth + 1)
			for e.k == jArr {
				e = g.value(depth + 1)
			}
			elems = append(elems, e)
		}
		return jval{k: jArr, elems: elems}
	}
}

// norm is the value as read back from the database: map[string]any, []any, int32, int64,
// float64, string, bool, nil, bson.DateTime, bson.ObjectID.
func (v jval) norm() any {
	switch v.k {
	case jStr:
		return v.s
	case jI32:
		return int32(v.i)
	case jI64:
		return v.i
	case jF64:
		return v.f
	case jBool:
		return v.b
	case jNull:
		return nil
	case jDate:
		return bson.DateTime(v.i)
	case jOID:
		return v.oid
	case jObj:
		m := map[string]any{}
		for _, f := range v.fields {
			m[f.name] = f.v.norm()
		}
		return m
	default:
		a := []any{}
		for _, e := range v.elems {
			a = append(a, e.norm())
		}
		return a
	}
}

// renderField appends "name":value; sometimes preceded by a decoy of the same name (JSON.parse
// keeps the last).
func (g *histGen) renderField(b []byte, f jfield, siblings []jfield) []byte {
	if g.rng.IntN(100) < 8 {
		g.dups++
		b = g.renderString(b, f.name)
		b = append(b, ':')
		b = g.render(b, g.value(3))
		b = append(b, ',')
	}
	b = g.renderString(b, f.name)
	b = append(b, ':')
	return g.render(b, f.v)
}

func (g *histGen) render(b []byte, v jval) []byte {
	switch v.k {
	case jStr:
		return g.renderString(b, v.s)
	case jI32:
		if v.form == 0 {
			return fmt.Appendf(b, `{"$numberInt":"%d"}`, v.i)
		}
		return strconv.AppendInt(b, v.i, 10)
	case jI64:
		if v.form == 1 {
			return fmt.Appendf(b, `{"$numberLong":"%d"}`, v.i)
		}
		return strconv.AppendInt(b, v.i, 10)
	case jF64:
		s := strconv.FormatFloat(v.f, 'f', -1, 64)
		switch v.form {
		case 0:
			return fmt.Appendf(b, `{"$numberDouble":"%s"}`, s)
		case 1:
			if v.f != 0 {
				return append(b, strconv.FormatFloat(v.f/10, 'f', -1, 64)+"e1"...)
			}
		}
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return append(b, s...)
	case jBool:
		return strconv.AppendBool(b, v.b)
	case jNull:
		return append(b, "null"...)
	case jDate:
		t := time.UnixMilli(v.i).UTC()
		switch {
		case v.form == 0 || t.Year() < 1970:
			return fmt.Appendf(b, `{"$date":{"$numberLong":"%d"}}`, v.i)
		case v.form == 1 && v.i%1000 == 0:
			return fmt.Appendf(b, `{"$date":"%s"}`, t.Format("2006-01-02T15:04:05Z"))
		default:
			return fmt.Appendf(b, `{"$date":"%s"}`, t.Format("2006-01-02T15:04:05.000Z"))
		}
	case jOID:
		return fmt.Appendf(b, `{"$oid":"%s"}`, v.oid.Hex())
	case jObj:
		b = append(b, '{')
		for i, f := range v.fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = g.renderField(b, f, v.fields)
		}
		return append(b, '}')
	default:
		b = append(b, '[')
		for i, e := range v.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = g.render(b, e)
		}
		return append(b, ']')
	}
}

// renderString writes s as a JSON string, each character literal or escaped at random (\uXXXX,
// surrogate pairs for characters past the BMP).
func (g *histGen) renderString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		esc := g.rng.IntN(5) == 0
		switch {
		case r == '"':
			b = append(b, `\"`...)
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n' && !esc:
			b = append(b, `\n`...)
		case r == '\t' && !esc:
			b = append(b, `\t`...)
		case r == '/' && esc:
			b = append(b, `\/`...)
		case r < 0x20 || (esc && r <= 0xffff):
			b = fmt.Appendf(b, `\u%04x`, r)
		case esc:
			r1, r2 := utf16Pair(r)
			b = fmt.Appendf(b, `\u%04X\u%04x`, r1, r2)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// Package batch accumulates decoded state records per partition into batches
// that cover a contiguous offset range, collapsing several records of one
// entity to one write that leaves the database as writing them one by one in
// offset order would (see Accumulator.Add; docs/design.md "Write semantics").
// It is pure and synchronous: the caller passes the clock.
package batch

import (
	"cmp"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/record"
)

// Defaults for zero Options fields, and of STATESYNC_BATCH_MAX_DOCS and
// STATESYNC_BATCH_MAX_BYTES (cmd/statesync tests that config's match).
const (
	DefaultMaxDocs  = 1000
	DefaultMaxBytes = 8 << 20
)

// Options bound a batch. A batch is full when it holds MaxDocs distinct
// entities, or 4*MaxDocs consumed messages (so one hot key cannot stretch a
// batch over an unbounded offset range), or MaxBytes of keys and values. It is
// due when it is full or MaxWait has passed since its first message (MaxWait 0:
// due at once).
type Options struct {
	MaxDocs  int           // distinct documents per batch; 0 means DefaultMaxDocs
	MaxBytes int           // sum of key and value lengths; 0 means DefaultMaxBytes
	MaxWait  time.Duration // age at which a batch is due
	// StaleGuard says the writer guards upserts and deletes that carry a
	// processedAt (sink.Options.StaleGuard with a sync field): the collapse
	// then keeps what applying the key's records one by one with the guard
	// would leave, not simply the last record.
	StaleGuard bool
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Poison is a message that can never be written; it travels in the batch so
// the writer dead-letters it and the offset range stays contiguous.
type Poison struct {
	Msg record.Message
	Err *record.PoisonError
}

// Batch is the unit written to MongoDB and then committed: every message of
// [FirstOffset, LastOffset] of one partition that was consumed is either in
// Records (or collapsed into a later record of the same ID) or in Poison.
type Batch struct {
	TopicPartition
	Records                 []record.Record // one per ID, the last by offset; ordered by offset of the kept record
	Poison                  []Poison        // in offset order
	FirstOffset, LastOffset int64
	Consumed                int       // messages accumulated: records incl. collapsed ones, and poison
	Collapsed               int       // records dropped because a later record of the same ID is in the batch
	Bytes                   int       // sum of len(Key)+len(Value) of accumulated messages (approximate memory)
	Opened                  time.Time // when the first message was added
	// Histories holds, for each key that had several records in the batch,
	// all of them in offset order, as decoded: when the writer dead-letters
	// the record a key collapsed to, Collapse of the others is what writing
	// the key's records one by one would have left.
	Histories map[bson.ObjectID][]record.Record
	// StaleGuard is Options.StaleGuard, for Collapse.
	StaleGuard bool
}

// Accumulator holds the open batch of each partition.
type Accumulator struct {
	maxDocs, maxConsumed, maxBytes int
	maxWait                        time.Duration
	guard                          bool
	parts                          map[TopicPartition]*partition
	// last is parts[lastTP] (nil: none), the partition of the previous
	// message: consecutive messages are mostly of one partition, and
	// comparing is cheaper than hashing the topic.
	last   *partition
	lastTP TopicPartition
}

// partition is the open batch of one partition and its collapse index. The
// index maps an ID to its slot in records; a slot whose ID maps elsewhere is a
// hole left by a collapsed record, compacted away when the batch is taken.
type partition struct {
	b       *Batch // nil when no batch is open
	records []record.Record
	index   map[bson.ObjectID]int
	history map[bson.ObjectID][]record.Record // see Batch.Histories
	hint    int                               // length of the previous batch's records, to size the next
}

// New returns an empty Accumulator.
func New(o Options) *Accumulator {
	if o.MaxDocs <= 0 {
		o.MaxDocs = DefaultMaxDocs
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	return &Accumulator{
		maxDocs:     o.MaxDocs,
		maxConsumed: 4 * o.MaxDocs,
		maxBytes:    o.MaxBytes,
		maxWait:     o.MaxWait,
		guard:       o.StaleGuard,
		parts:       make(map[TopicPartition]*partition),
	}
}

// Add adds a decoded record and returns the batch if this add made it full.
//
// Offsets must increase within a partition. A record whose offset is not
// after the open batch's LastOffset (the consumer seeked back, or a message
// was redelivered) closes the open batch, which Add returns, and starts a new
// batch with this record: every consumed message is still written, at least
// once, and each batch stays contiguous. If that new one-record batch is
// already full (MaxDocs 1), it is returned by the next Add, Due, Take or
// TakeAll. Drop the partition first to forget the open batch instead.
//
// Several records of one ID collapse to one write whose result is what
// writing them one by one, in offset order, would leave, whatever was stored
// before. Without the stale guard that is the last record. With it, a record
// applies over a stored document whose processedAt is not after its own
// (a record without processedAt always applies, a tombstone leaves nothing to
// guard), so the kept write is the record the one-by-one sequence ends with
// when its first record applies, guarded by the latest processedAt of the
// sequence (unguarded if any record has none): if the stored document is newer
// than all of them, none of them would apply; otherwise the first record whose
// processedAt is not before the stored one applies, and every record that
// raised the maximum after it applies too, so the sequence ends as if its
// first record had applied. An older record after a newer one loses, as it
// would one by one, tombstones included.
func (a *Accumulator) Add(r record.Record, now time.Time) *Batch {
	p, out := a.prepare(r.Msg, now)
	b := p.b
	if i, ok := p.index[r.ID]; ok {
		b.Collapsed++
		if p.history == nil {
			p.history = make(map[bson.ObjectID][]record.Record)
		}
		h := p.history[r.ID]
		if h == nil { // the first collision: the kept record is still as decoded
			h = []record.Record{p.records[i]}
		}
		p.history[r.ID] = append(h, r)
		kept := fold(p.records[i], r, a.guard)
		if kept.Msg.Offset != r.Msg.Offset {
			p.records[i] = kept
			return a.afterAdd(p, out)
		}
		r = kept
		// The older record's slot becomes a hole and the new one goes to
		// the end, so Records stay ordered by the offsets of kept records.
	}
	p.index[r.ID] = len(p.records)
	p.records = append(p.records, r)
	return a.afterAdd(p, out)
}

// fold is the collapse of a key's records so far (kept) followed by next.
func fold(kept, next record.Record, guard bool) record.Record {
	g := maxGuard(kept.GuardAt(), next.GuardAt())
	if guard && !appliesAfter(&kept, &next) {
		kept.SetGuard(g)
		return kept
	}
	next.SetGuard(g)
	return next
}

// Collapse returns the one write that leaves what writing recs (one key's
// records, in offset order) one by one would, as Add does; false when recs
// is empty.
func Collapse(recs []record.Record, guard bool) (record.Record, bool) {
	if len(recs) == 0 {
		return record.Record{}, false
	}
	kept := recs[0]
	for _, r := range recs[1:] {
		kept = fold(kept, r, guard)
	}
	return kept, true
}

// appliesAfter reports whether the guard lets next replace what prev left:
// prev's processedAt is stored only when prev is a guarded upsert.
func appliesAfter(prev, next *record.Record) bool {
	if next.ProcessedAt.IsZero() || prev.Tombstone || prev.ProcessedAt.IsZero() {
		return true
	}
	return !prev.ProcessedAt.After(next.ProcessedAt)
}

// maxGuard is the later of two guard thresholds, zero (unguarded) if either is.
func maxGuard(x, y time.Time) time.Time {
	if x.IsZero() || y.IsZero() {
		return time.Time{}
	}
	if y.After(x) {
		return y
	}
	return x
}

// AddPoison adds a poison message; see Add for offsets and the result.
func (a *Accumulator) AddPoison(x Poison, now time.Time) *Batch {
	p, out := a.prepare(x.Msg, now)
	p.b.Poison = append(p.b.Poison, x)
	return a.afterAdd(p, out)
}

// prepare opens a batch for m's partition if needed and accounts m. It
// returns a batch closed by an offset regression, if any.
func (a *Accumulator) prepare(m record.Message, now time.Time) (*partition, *Batch) {
	tp := TopicPartition{Topic: m.Topic, Partition: m.Partition}
	p := a.last
	if p == nil || a.lastTP != tp {
		p = a.parts[tp]
		if p == nil {
			p = &partition{index: make(map[bson.ObjectID]int)}
			a.parts[tp] = p
		}
		a.last, a.lastTP = p, tp
	}
	var closed *Batch
	if p.b != nil && (m.Offset <= p.b.LastOffset || a.full(p)) {
		closed = p.take()
	}
	if p.b == nil {
		if p.hint > 0 && cap(p.records) == 0 {
			p.records = make([]record.Record, 0, p.hint)
		}
		p.b = &Batch{TopicPartition: tp, FirstOffset: m.Offset, Opened: now, StaleGuard: a.guard}
	}
	b := p.b
	b.LastOffset = m.Offset
	b.Consumed++
	b.Bytes += len(m.Key) + len(m.Value)
	return p, closed
}

func (a *Accumulator) afterAdd(p *partition, closed *Batch) *Batch {
	if closed != nil {
		return closed
	}
	if a.full(p) {
		return p.take()
	}
	return nil
}

func (a *Accumulator) full(p *partition) bool {
	b := p.b
	return len(p.index) >= a.maxDocs || b.Consumed >= a.maxConsumed || b.Bytes >= a.maxBytes
}

// take closes the open batch: holes are compacted away, the index is cleared
// for reuse.
func (p *partition) take() *Batch {
	b := p.b
	recs := p.records
	if b.Collapsed > 0 {
		n := 0
		for i, r := range recs {
			if p.index[r.ID] == i {
				recs[n] = r
				n++
			}
		}
		clear(recs[n:])
		recs = recs[:n]
	}
	if len(recs) > 0 {
		b.Records = recs
	}
	p.hint = len(recs)
	p.records = nil
	b.Histories, p.history = p.history, nil
	clear(p.index)
	p.b = nil
	return b
}

func (a *Accumulator) due(p *partition, now time.Time) bool {
	return p.b != nil && (a.full(p) || now.Sub(p.b.Opened) >= a.maxWait)
}

// Due removes and returns the batches whose age is at least MaxWait (and any
// left full by an offset regression), oldest first.
func (a *Accumulator) Due(now time.Time) []*Batch {
	var out []*Batch
	for _, p := range a.parts {
		if a.due(p, now) {
			out = append(out, p.take())
		}
	}
	sortBatches(out)
	return out
}

// Take removes and returns the open batch of tp, nil if there is none: for a
// revoked partition, flush this before committing.
func (a *Accumulator) Take(tp TopicPartition) *Batch {
	if p := a.parts[tp]; p != nil && p.b != nil {
		return p.take()
	}
	return nil
}

// TakeAll removes and returns every open batch, oldest first (shutdown).
func (a *Accumulator) TakeAll() []*Batch {
	var out []*Batch
	for _, p := range a.parts {
		if p.b != nil {
			out = append(out, p.take())
		}
	}
	sortBatches(out)
	return out
}

// Drop forgets tp's open batch without returning it: the partition was lost
// and its new owner will consume those messages again.
func (a *Accumulator) Drop(tp TopicPartition) {
	delete(a.parts, tp)
	if a.lastTP == tp {
		a.last = nil
	}
}

// NextDue returns the earliest time at which an open batch becomes due, and
// false when no batch is open.
func (a *Accumulator) NextDue() (time.Time, bool) {
	var next time.Time
	found := false
	for _, p := range a.parts {
		if p.b == nil {
			continue
		}
		at := p.b.Opened.Add(a.maxWait)
		if a.full(p) {
			at = p.b.Opened
		}
		if !found || at.Before(next) {
			next, found = at, true
		}
	}
	return next, found
}

// Pending returns the number of messages accumulated for tp.
func (a *Accumulator) Pending(tp TopicPartition) int {
	if p := a.parts[tp]; p != nil && p.b != nil {
		return p.b.Consumed
	}
	return 0
}

func sortBatches(bs []*Batch) {
	slices.SortFunc(bs, func(x, y *Batch) int {
		if c := x.Opened.Compare(y.Opened); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Topic, y.Topic); c != 0 {
			return c
		}
		return cmp.Compare(x.Partition, y.Partition)
	})
}

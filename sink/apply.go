package sink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/record"
	"github.com/codr/statesync/statelog"
)

// DeadLetterer publishes a dead letter once: nil when the broker has
// acknowledged it, else the error (the Applier retries until it passes).
// deadletter.Publisher is one; sink itself knows nothing of Kafka.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, m record.Message, cause *record.PoisonError) error
}

// BatchWriter is the part of Sink the Applier needs.
type BatchWriter interface {
	Write(ctx context.Context, collection string, recs []record.Record) (Result, error)
	// Canary writes to collection something no record can make fail: it
	// passes when the collection takes writes at all.
	Canary(ctx context.Context, collection string) error
	Ping(ctx context.Context) error
}

// ApplyOptions configures an Applier.
type ApplyOptions struct {
	Collection func(topic string) string
	MinBackoff time.Duration // first retry delay; default DefaultMinBackoff
	MaxBackoff time.Duration // cap; default DefaultMaxBackoff
	// UnwritableAfter is how many times in a row a write must fail while a
	// canary write to the same collection passes right after each failure
	// before the batch is split (a single record: dead-lettered as
	// unwritable); default DefaultUnwritableAfter.
	UnwritableAfter int
	Log             *zap.Logger
	Metrics         *metrics.Metrics   // nil: metrics.New(nil), recorded nowhere
	Health          func(mongoUp bool) // told after every write attempt
}

// Defaults for zero ApplyOptions fields; the last two are also those of
// STATESYNC_RETRY_MAX_BACKOFF and STATESYNC_UNWRITABLE_AFTER (cmd/statesync
// tests that config's match).
const (
	DefaultMinBackoff      = 100 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
	DefaultUnwritableAfter = 5
)

// Applier writes whole batches: poison records and rejected documents to
// the dead-letter topic, the rest to MongoDB, retrying recoverable errors
// until they pass or the context ends.
type Applier struct {
	w   BatchWriter
	dlt DeadLetterer
	o   ApplyOptions

	mu     sync.Mutex
	writes map[string]*statelog.Condition // per collection: failing writes logged when they start and stop, not per retry
}

// NewApplier builds an Applier.
func NewApplier(w BatchWriter, dlt DeadLetterer, o ApplyOptions) *Applier {
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.UnwritableAfter <= 0 {
		o.UnwritableAfter = DefaultUnwritableAfter
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	if o.Health == nil {
		o.Health = func(bool) {}
	}
	if o.Collection == nil {
		o.Collection = func(topic string) string { return topic }
	}
	return &Applier{w: w, dlt: dlt, o: o, writes: map[string]*statelog.Condition{}}
}

// writesTo is the condition of the bulk writes to coll.
func (a *Applier) writesTo(coll string) *statelog.Condition {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.writes[coll]
	if c == nil {
		c = &statelog.Condition{Log: a.o.Log, Fields: []zap.Field{zap.String("collection", coll)},
			Failing:   "bulk writes to collection " + coll + " fail; retried with backoff (the partition waits, nothing is skipped)",
			Recovered: "bulk writes to collection " + coll + " succeed again"}
		a.writes[coll] = c
	}
	return c
}

// Outcome counts what one batch did.
type Outcome struct {
	Written, Deleted, Skipped, DeadLettered int
}

// Apply writes b. A nil error means every message of the batch is either
// in MongoDB (or fenced as stale) or acknowledged on the dead-letter topic,
// so its offsets may be committed. An error means the batch was abandoned
// (the context ended) and nothing of it may be committed.
//
// The good records are written before the poison ones are dead-lettered, so
// a dead-letter topic that cannot be reached holds back only the commit.
func (a *Applier) Apply(ctx context.Context, b *batch.Batch) (Outcome, error) {
	var out Outcome
	if b.Collapsed > 0 {
		a.o.Metrics.Skipped.WithLabelValues(b.Topic, "collapsed").Add(float64(b.Collapsed))
	}
	// A key collapsed to a record that is then dead-lettered is written
	// again as the collapse of its other records: one by one, the dead
	// letter would have left the records before it in place.
	dead := map[int64]bool{} // offsets dead-lettered (a batch is one partition's: offsets are unique)
	recs := b.Records
	for len(recs) > 0 {
		var again []bson.ObjectID // keys dead-lettered in this round
		onDead := func(r record.Record) {
			dead[r.Msg.Offset] = true
			if !slices.Contains(again, r.ID) {
				again = append(again, r.ID)
			}
		}
		if err := a.write(ctx, b.Topic, recs, &out, a.o.UnwritableAfter, onDead); err != nil {
			return out, err
		}
		recs = nil
		for _, id := range again {
			rest := slices.DeleteFunc(slices.Clone(b.Histories[id]), func(r record.Record) bool { return dead[r.Msg.Offset] })
			if r, ok := batch.Collapse(rest, b.StaleGuard); ok {
				recs = append(recs, r)
			}
		}
	}
	for _, p := range b.Poison {
		if err := a.deadLetter(ctx, p.Msg, p.Err); err != nil {
			return out, err
		}
		out.DeadLettered++
	}
	return out, nil
}

// write applies recs, retrying failures with capped backoff until they pass
// or are proven to be the records' own. Proof is a failure that a canary
// write to the same collection does not share: the canary passes right
// after it. After splitAfter such failures in a row the batch is split in
// halves to isolate the record that breaks it; an isolated record is
// dead-lettered as unwritable. A failure the canary shares, and a timeout of
// any kind, is the server's (a locked or slow collection, a wedged server)
// and starts the count again: retry, never dead-letter.
func (a *Applier) write(ctx context.Context, topic string, recs []record.Record, out *Outcome, splitAfter int, onDead func(record.Record)) error {
	if len(recs) == 0 {
		return nil
	}
	coll := a.o.Collection(topic)
	proofs := 0
	for attempt := 0; ; attempt++ {
		start := time.Now()
		res, err := a.w.Write(ctx, coll, recs)
		if err == nil {
			a.o.Health(true)
			a.writesTo(coll).OK()
			a.observe(topic, len(recs), time.Since(start), res)
			out.Written += res.Upserted
			out.Deleted += res.Deleted
			out.Skipped += res.Skipped
			for _, rj := range res.Rejected {
				if err := a.deadLetter(ctx, recs[rj.Index].Msg, rj.Err); err != nil {
					return err
				}
				onDead(recs[rj.Index])
				out.DeadLettered++
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("write %s batch of %d abandoned: %w", topic, len(recs), ctx.Err())
		}
		a.o.Metrics.Retries.WithLabelValues(topic).Inc()
		timeout := isTimeout(err)
		canary := errors.New("not tried: the write timed out")
		if !timeout {
			canary = a.w.Canary(ctx, coll)
		}
		up := canary == nil || a.w.Ping(ctx) == nil
		a.o.Health(up)
		if canary == nil {
			proofs++
		} else {
			proofs = 0
		}
		// Logged when the collection's writes start failing, every few
		// minutes while they go on, and when they pass again; each retry
		// only at debug level.
		fields := []zap.Field{zap.String("topic", topic), zap.Int("documents", len(recs)), zap.Int("attempt", attempt+1),
			zap.Bool("mongo_up", up), zap.NamedError("canary", canary)}
		a.writesTo(coll).Failed(err, fields...)
		a.o.Log.Debug("bulk write failed, will retry", append(fields, zap.String("collection", coll), zap.Error(err))...)
		if proofs >= splitAfter {
			if len(recs) == 1 {
				cause := &record.PoisonError{Class: record.ClassUnwritable,
					Err: fmt.Errorf("write failed %d times in a row while a canary write to collection %s passed after each: %w", proofs, coll, err)}
				if err := a.deadLetter(ctx, recs[0].Msg, cause); err != nil {
					return err
				}
				onDead(recs[0])
				out.DeadLettered++
				return nil
			}
			// A half has already failed splitAfter times as part of its
			// parent: two proofs of its own are enough to split it again.
			mid := len(recs) / 2
			if err := a.write(ctx, topic, recs[:mid], out, 2, onDead); err != nil {
				return err
			}
			return a.write(ctx, topic, recs[mid:], out, 2, onDead)
		}
		if err := sleep(ctx, a.backoff(attempt)); err != nil {
			return fmt.Errorf("write %s batch of %d abandoned: %w", topic, len(recs), err)
		}
	}
}

func (a *Applier) observe(topic string, docs int, took time.Duration, res Result) {
	m := a.o.Metrics
	m.WriteDuration.WithLabelValues(topic).Observe(took.Seconds())
	m.BatchDocs.Observe(float64(docs))
	m.Written.WithLabelValues(topic).Add(float64(res.Upserted))
	m.Deleted.WithLabelValues(topic).Add(float64(res.Deleted))
	if res.Skipped > 0 {
		m.Skipped.WithLabelValues(topic, "stale").Add(float64(res.Skipped))
	}
}

// deadLetter retries the produce until it is acknowledged or ctx ends: a
// record is never skipped because the dead-letter topic was unreachable.
func (a *Applier) deadLetter(ctx context.Context, m record.Message, cause *record.PoisonError) error {
	for attempt := 0; ; attempt++ {
		err := a.dlt.DeadLetter(ctx, m, cause)
		if err == nil {
			a.o.Metrics.DeadLettered.WithLabelValues(m.Topic, cause.Class).Inc()
			a.o.Log.Warn("record dead-lettered", zap.String("topic", m.Topic), zap.Int32("partition", m.Partition),
				zap.Int64("offset", m.Offset), zap.String("class", cause.Class), zap.Error(cause.Err))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("dead-letter %s[%d]@%d abandoned: %w", m.Topic, m.Partition, m.Offset, errors.Join(ctx.Err(), err))
		}
		// The dead-letter publisher logs when publishing starts and stops
		// failing; each retry only at debug level.
		a.o.Log.Debug("dead-letter produce failed, will retry", zap.String("topic", m.Topic), zap.Int64("offset", m.Offset), zap.Error(err))
		if err := sleep(ctx, a.backoff(attempt)); err != nil {
			return fmt.Errorf("dead-letter %s[%d]@%d abandoned: %w", m.Topic, m.Partition, m.Offset, err)
		}
	}
}

// backoff is capped exponential with jitter in [d/2, d].
func (a *Applier) backoff(attempt int) time.Duration {
	d := a.o.MinBackoff << min(attempt, 20)
	if d <= 0 || d > a.o.MaxBackoff {
		d = a.o.MaxBackoff
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

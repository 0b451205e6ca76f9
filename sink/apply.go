package sink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/record"
)

// DeadLetterer publishes a dead letter and returns once the broker has
// acknowledged it.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, m record.Message, cause *record.PoisonError) error
}

// BatchWriter is the part of Sink the Applier needs.
type BatchWriter interface {
	Write(ctx context.Context, collection string, recs []record.Record) (Result, error)
	Ping(ctx context.Context) error
}

// ApplyOptions configures an Applier.
type ApplyOptions struct {
	Collection      func(topic string) string
	MinBackoff      time.Duration // first retry delay; default 100ms
	MaxBackoff      time.Duration // cap; default 30s
	UnwritableAfter int           // failed attempts of one isolated record, MongoDB healthy, before it is dead-lettered; default 5
	Log             *zap.Logger
	Metrics         *metrics.Metrics
	Health          func(mongoUp bool) // told after every write attempt
}

// Applier writes whole batches: poison records and rejected documents to
// the dead-letter topic, the rest to MongoDB, retrying recoverable errors
// until they pass or the context ends.
type Applier struct {
	w   BatchWriter
	dlt DeadLetterer
	o   ApplyOptions
	// lastSuccess is when any write last succeeded (unix nanos): a record
	// is only unwritable if other writes succeed while it keeps failing.
	lastSuccess atomic.Int64
}

// NewApplier builds an Applier.
func NewApplier(w BatchWriter, dlt DeadLetterer, o ApplyOptions) *Applier {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.UnwritableAfter <= 0 {
		o.UnwritableAfter = 5
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Health == nil {
		o.Health = func(bool) {}
	}
	if o.Collection == nil {
		o.Collection = func(topic string) string { return topic }
	}
	return &Applier{w: w, dlt: dlt, o: o}
}

// Outcome counts what one batch did.
type Outcome struct {
	Written, Deleted, Skipped, DeadLettered int
}

// Apply writes b. A nil error means every message of the batch is either
// in MongoDB (or fenced as stale) or acknowledged on the dead-letter topic,
// so its offsets may be committed. An error means the batch was abandoned
// (the context ended) and nothing of it may be committed.
func (a *Applier) Apply(ctx context.Context, b *batch.Batch) (Outcome, error) {
	var out Outcome
	for _, p := range b.Poison {
		if err := a.deadLetter(ctx, p.Msg, p.Err); err != nil {
			return out, err
		}
		out.DeadLettered++
	}
	if a.o.Metrics != nil && b.Collapsed > 0 {
		a.o.Metrics.Skipped.WithLabelValues(b.Topic, "collapsed").Add(float64(b.Collapsed))
	}
	var since int64
	unresolved, err := a.write(ctx, b.Topic, b.Records, &out, true, &since)
	// Records that kept failing alone while no other write succeeded are
	// not proven unwritable (the server may be wedged): try them again until
	// they pass, or other writes pass and they still fail.
	for attempt := 0; err == nil && len(unresolved) > 0; attempt++ {
		if err := sleep(ctx, a.backoff(attempt)); err != nil {
			return out, fmt.Errorf("write %s abandoned: %w", b.Topic, err)
		}
		var still []record.Record
		for i := range unresolved {
			var u []record.Record
			u, err = a.write(ctx, b.Topic, unresolved[i:i+1], &out, false, &since)
			if err != nil {
				break
			}
			still = append(still, u...)
		}
		unresolved = still
	}
	return out, err
}

// write applies recs, retrying recoverable errors with capped backoff. When
// a batch keeps failing while MongoDB answers pings, the batch is split to
// isolate the record that breaks it, which is dead-lettered as unwritable.
// It returns the records it isolated but could not judge: no other write
// succeeded since the batch began failing (since, unix nanos).
func (a *Applier) write(ctx context.Context, topic string, recs []record.Record, out *Outcome, whole bool, since *int64) ([]record.Record, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	coll := a.o.Collection(topic)
	healthyFailures := 0
	splitAfter := a.o.UnwritableAfter
	if len(recs) > 1 && !whole {
		splitAfter = 2 // a half already failed UnwritableAfter times as part of its parent
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		res, err := a.w.Write(ctx, coll, recs)
		if err == nil {
			a.lastSuccess.Store(time.Now().UnixNano())
			a.o.Health(true)
			a.observe(topic, len(recs), time.Since(start), res)
			out.Written += res.Upserted
			out.Deleted += res.Deleted
			out.Skipped += res.Skipped
			for _, rj := range res.Rejected {
				if err := a.deadLetter(ctx, recs[rj.Index].Msg, rj.Err); err != nil {
					return nil, err
				}
				out.DeadLettered++
			}
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("write %s batch of %d abandoned: %w", topic, len(recs), ctx.Err())
		}
		if *since == 0 {
			*since = time.Now().UnixNano()
		}
		if a.o.Metrics != nil {
			a.o.Metrics.Retries.WithLabelValues(topic).Inc()
		}
		up := a.w.Ping(ctx) == nil
		a.o.Health(up)
		if up {
			healthyFailures++
		}
		a.o.Log.Warn("bulk write failed, will retry", zap.String("topic", topic), zap.Int("documents", len(recs)),
			zap.Int("attempt", attempt+1), zap.Bool("mongo_up", up), zap.Error(err))
		// A ping alone does not prove health: a wedged server answers pings
		// and fails every write. Dead-letter only when other writes succeed
		// meanwhile (the split's other half does when one record is bad).
		othersSucceed := a.lastSuccess.Load() > *since
		if healthyFailures >= splitAfter {
			if len(recs) == 1 && !othersSucceed {
				return recs, nil
			}
			if len(recs) == 1 {
				cause := &record.PoisonError{Class: record.ClassUnwritable,
					Err: fmt.Errorf("write failed %d times while MongoDB was healthy: %w", healthyFailures, err)}
				if err := a.deadLetter(ctx, recs[0].Msg, cause); err != nil {
					return nil, err
				}
				out.DeadLettered++
				return nil, nil
			}
			mid := len(recs) / 2
			left, err := a.write(ctx, topic, recs[:mid], out, false, since)
			if err != nil {
				return nil, err
			}
			right, err := a.write(ctx, topic, recs[mid:], out, false, since)
			return append(left, right...), err
		}
		if err := sleep(ctx, a.backoff(attempt)); err != nil {
			return nil, fmt.Errorf("write %s batch of %d abandoned: %w", topic, len(recs), err)
		}
	}
}

func (a *Applier) observe(topic string, docs int, took time.Duration, res Result) {
	m := a.o.Metrics
	if m == nil {
		return
	}
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
			if a.o.Metrics != nil {
				a.o.Metrics.DeadLettered.WithLabelValues(m.Topic, cause.Class).Inc()
			}
			a.o.Log.Warn("record dead-lettered", zap.String("topic", m.Topic), zap.Int32("partition", m.Partition),
				zap.Int64("offset", m.Offset), zap.String("class", cause.Class), zap.Error(cause.Err))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("dead-letter %s[%d]@%d abandoned: %w", m.Topic, m.Partition, m.Offset, errors.Join(ctx.Err(), err))
		}
		a.o.Log.Warn("dead-letter produce failed, will retry", zap.String("topic", m.Topic), zap.Int64("offset", m.Offset), zap.Error(err))
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

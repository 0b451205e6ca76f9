package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"

	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/record"
)

// Producer sends one message and returns once the broker has acknowledged
// it (offsets.Producer does).
type Producer interface {
	Produce(ctx context.Context, topic string, key, value []byte, headers []record.Header) error
}

// Publisher publishes dead letters (Encode) to the dead-letter topic, one
// attempt per DeadLetter call: the caller retries (sink.Applier does, until
// the letter is acknowledged or the batch is abandoned). It remembers which
// origin partitions wait for a failed publish: Blocked, for readiness.
type Publisher struct {
	P     Producer
	Topic string
	Now   func() time.Time
	Log   *zap.Logger
	// Metrics: statesync_dead_letter_blocked is 1 while Blocked is true,
	// statesync_dead_letter_failures_total counts the failed publishes.
	// nil: metrics.New(nil), recorded nowhere.
	Metrics *metrics.Metrics
	// StaleAfter: a partition whose last publish failed this long ago, with
	// no attempt since, no longer counts as waiting (it was given up, e.g.
	// revoked while its retry slept). It must exceed the caller's longest
	// retry interval; default 2 minutes.
	StaleAfter time.Duration

	mu      sync.Mutex
	waiting map[origin]failure // origin partitions whose last publish failed
}

type origin struct {
	topic     string
	partition int32
}

type failure struct {
	at  time.Time
	err error
}

func (d *Publisher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Publisher) log() *zap.Logger {
	if d.Log == nil {
		return zap.NewNop()
	}
	return d.Log
}

// Blocked reports whether records wait because their dead letters cannot
// be published (their partitions' publishes keep failing), and why: what
// readiness shows.
func (d *Publisher) Blocked() (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	stale := d.StaleAfter
	if stale <= 0 {
		stale = 2 * time.Minute
	}
	now := d.now()
	var last failure
	for o, f := range d.waiting {
		if now.Sub(f.at) > stale {
			delete(d.waiting, o)
			continue
		}
		if f.at.After(last.at) {
			last = f
		}
	}
	d.setGauge()
	if len(d.waiting) == 0 {
		return false, ""
	}
	return true, fmt.Sprintf("dead-letter topic %s does not acknowledge (partitions waiting: %d): %v", d.Topic, len(d.waiting), last.err)
}

// outcome records how a publish for o ended. It logs the changes only (the
// first failure, the recovery), not every failed retry.
func (d *Publisher) outcome(ctx context.Context, o origin, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case err == nil:
		// The topic acknowledges: the partitions waiting will pass at their
		// next retry.
		if len(d.waiting) > 0 {
			d.log().Info("the dead-letter topic acknowledges again: waiting partitions go on", zap.String("dlt_topic", d.Topic))
		}
		clear(d.waiting)
	case ctx.Err() != nil:
		delete(d.waiting, o) // abandoned (revoked, shutting down): this partition no longer waits here
	default:
		d.metrics().DeadLetterFailures.Inc()
		if d.waiting == nil {
			d.waiting = map[origin]failure{}
		}
		if len(d.waiting) == 0 {
			hint := "if the topic is missing, create it with: statesync topics create " + d.Topic
			if remake := (*offsets.RemakeError)(nil); errors.As(err, &remake) {
				hint = "the producer could not be made: see the error"
			}
			d.log().Error("cannot publish to the dead-letter topic: the partition of the record waits (nothing is skipped) and the publish is retried; "+hint,
				zap.String("dlt_topic", d.Topic), zap.String("topic", o.topic), zap.Int32("partition", o.partition), zap.Error(err))
		}
		d.waiting[o] = failure{at: d.now(), err: err}
	}
	d.setGauge()
}

// metrics is d.Metrics, made once when none was given; d.mu is held.
func (d *Publisher) metrics() *metrics.Metrics {
	if d.Metrics == nil {
		d.Metrics = metrics.New(nil)
	}
	return d.Metrics
}

func (d *Publisher) setGauge() {
	v := 0.0
	if len(d.waiting) > 0 {
		v = 1
	}
	d.metrics().DeadLetterBlocked.Set(v)
}

// DeadLetter publishes m's dead letter and waits for the acknowledgement.
// A record too large for the dead-letter topic is dead-lettered without its
// body (the error message says so; the original stays in its topic), so a
// partition never stalls on it.
func (d *Publisher) DeadLetter(ctx context.Context, m record.Message, cause *record.PoisonError) error {
	key, value, headers := Encode(m, cause, d.now())
	err := d.P.Produce(ctx, d.Topic, key, value, headers)
	var ke kafka.Error
	if errors.As(err, &ke) && (ke.Code() == kafka.ErrMsgSizeTooLarge || ke.Code() == kafka.ErrRecordListTooLarge) {
		stripped := m
		stripped.Value = []byte(fmt.Sprintf(`{"statesyncOmitted":"record of %d bytes is too large for %s; read it from %s partition %d offset %d"}`,
			len(m.Value), d.Topic, m.Topic, m.Partition, m.Offset))
		key, value, headers = Encode(stripped, cause, d.now())
		err = d.P.Produce(ctx, d.Topic, key, value, headers)
	}
	d.outcome(ctx, origin{m.Topic, m.Partition}, err)
	if err != nil {
		return fmt.Errorf("dead-letter %s[%d]@%d to %s: %w", m.Topic, m.Partition, m.Offset, d.Topic, err)
	}
	return nil
}

package offsets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"

	"github.com/codr/statesync/deadletter"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/record"
)

// Producer is an idempotent, acks=all librdkafka producer whose Produce
// returns once the broker has acknowledged the message.
type Producer struct {
	p *kafka.Producer
	w *Watch
}

// NewProducer creates a producer from the common librdkafka properties;
// role says what it is for (its client.id: statesync-<role>). Its log
// lines and client errors (authentication, fatal) go through l.
func NewProducer(props map[string]string, role string, l Logging) (*Producer, error) {
	cm := kafka.ConfigMap{}
	for k, v := range props {
		cm[k] = v
	}
	cm["enable.idempotence"] = true
	cm["acks"] = "all"
	setDefault(cm, "linger.ms", "5")
	setDefault(cm, "message.max.bytes", strconv.Itoa(32<<20))
	setDefault(cm, "compression.type", "lz4")
	Prepare(cm, role)
	// The Go client sizes these channels at a million entries each (24 MiB
	// of heap held for the process's life); Produce here passes its own
	// delivery channel, so the events channel only carries client errors.
	cm["go.produce.channel.size"] = 1000
	cm["go.events.channel.size"] = 1000
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create Kafka producer: %w", err)
	}
	w := l.Watch(role, p, p.Logs())
	go func() {
		for ev := range p.Events() { // errors not tied to a message; delivery reports use their own channel
			if e, ok := ev.(kafka.Error); ok {
				w.Event(e)
			}
		}
	}()
	return &Producer{p: p, w: w}, nil
}

// Raw is the underlying librdkafka producer.
func (p *Producer) Raw() *kafka.Producer { return p.p }

// Produce sends one message and waits for its acknowledgement.
func (p *Producer) Produce(ctx context.Context, topic string, key, value []byte, headers []record.Header) error {
	delivery := make(chan kafka.Event, 1)
	if err := p.ProduceAsync(ctx, topic, key, value, headers, delivery); err != nil {
		return err
	}
	select {
	case ev := <-delivery:
		m, ok := ev.(*kafka.Message)
		if !ok {
			return fmt.Errorf("produce to %s: unexpected delivery event %v", topic, ev)
		}
		return m.TopicPartition.Error
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ProduceAsync enqueues one message; its delivery report goes to delivery.
// A full local queue is waited out (until ctx ends) rather than reported.
func (p *Producer) ProduceAsync(ctx context.Context, topic string, key, value []byte, headers []record.Header, delivery chan kafka.Event) error {
	msg := &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key:            key,
		Value:          value,
	}
	if len(headers) > 0 {
		msg.Headers = make([]kafka.Header, len(headers))
		for i, h := range headers {
			msg.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	for {
		err := p.p.Produce(msg, delivery)
		var ke kafka.Error
		if errors.As(err, &ke) && ke.Code() == kafka.ErrQueueFull {
			if ctx.Err() != nil {
				return fmt.Errorf("produce to %s: %w", topic, ctx.Err())
			}
			p.p.Flush(100)
			continue
		}
		if err != nil {
			return fmt.Errorf("produce to %s: %w", topic, err)
		}
		return nil
	}
}

// Purge drops every message still queued or in flight: their delivery
// reports fail (ErrPurgeQueue, ErrPurgeInflight), so a caller counting
// acknowledgements learns how many were not acknowledged.
func (p *Producer) Purge() error {
	return p.p.Purge(kafka.PurgeQueue | kafka.PurgeInFlight | kafka.PurgeNonBlocking)
}

// Reachable asks the brokers for metadata, waiting at most timeout: nil, or
// an *UnreachableError naming them.
func (p *Producer) Reachable(brokers string, timeout time.Duration) error {
	start := time.Now()
	if _, err := p.p.GetMetadata(nil, false, int(timeout.Milliseconds())); err != nil {
		return &UnreachableError{Brokers: brokers, Waited: time.Since(start).Round(time.Millisecond), Err: err}
	}
	return nil
}

// Flush waits for outstanding deliveries, at most timeout.
func (p *Producer) Flush(timeout time.Duration) int { return p.p.Flush(int(timeout.Milliseconds())) }

// Close flushes for at most timeout and closes.
func (p *Producer) Close(timeout time.Duration) {
	p.p.Flush(int(timeout.Milliseconds()))
	p.w.Stop()
	p.p.Close()
}

// DeadLetters publishes dead letters in the Codr IDeadLetterMessage shape.
type DeadLetters struct {
	P     *Producer
	Topic string
	Now   func() time.Time
	Log   *zap.Logger
	// Metrics: statesync_dead_letter_blocked is 1 while Blocked is true,
	// statesync_dead_letter_failures_total counts the failed publishes.
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

func (d *DeadLetters) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *DeadLetters) log() *zap.Logger {
	if d.Log == nil {
		return zap.NewNop()
	}
	return d.Log
}

// Blocked reports whether records wait because their dead letters cannot
// be published (their partitions' publishes keep failing), and why: what
// readiness shows.
func (d *DeadLetters) Blocked() (bool, string) {
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
func (d *DeadLetters) outcome(ctx context.Context, o origin, err error) {
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
		if d.Metrics != nil {
			d.Metrics.DeadLetterFailures.Inc()
		}
		if d.waiting == nil {
			d.waiting = map[origin]failure{}
		}
		if len(d.waiting) == 0 {
			d.log().Error("cannot publish to the dead-letter topic: the partition of the record waits (nothing is skipped) and the publish is retried; "+
				"if the topic is missing, create it with: statesync topics create "+d.Topic,
				zap.String("dlt_topic", d.Topic), zap.String("topic", o.topic), zap.Int32("partition", o.partition), zap.Error(err))
		}
		d.waiting[o] = failure{at: d.now(), err: err}
	}
	d.setGauge()
}

func (d *DeadLetters) setGauge() {
	if d.Metrics == nil {
		return
	}
	v := 0.0
	if len(d.waiting) > 0 {
		v = 1
	}
	d.Metrics.DeadLetterBlocked.Set(v)
}

// DeadLetter publishes m's dead letter and waits for the acknowledgement.
// A record too large for the dead-letter topic is dead-lettered without its
// body (the error message says so; the original stays in its topic), so a
// partition never stalls on it.
func (d *DeadLetters) DeadLetter(ctx context.Context, m record.Message, cause *record.PoisonError) error {
	key, value, headers := deadletter.Encode(m, cause, d.now())
	err := d.P.Produce(ctx, d.Topic, key, value, headers)
	var ke kafka.Error
	if errors.As(err, &ke) && (ke.Code() == kafka.ErrMsgSizeTooLarge || ke.Code() == kafka.ErrRecordListTooLarge) {
		stripped := m
		stripped.Value = []byte(fmt.Sprintf(`{"statesyncOmitted":"record of %d bytes is too large for %s; read it from %s partition %d offset %d"}`,
			len(m.Value), d.Topic, m.Topic, m.Partition, m.Offset))
		key, value, headers = deadletter.Encode(stripped, cause, d.now())
		err = d.P.Produce(ctx, d.Topic, key, value, headers)
	}
	d.outcome(ctx, origin{m.Topic, m.Partition}, err)
	if err != nil {
		return fmt.Errorf("dead-letter %s[%d]@%d to %s: %w", m.Topic, m.Partition, m.Offset, d.Topic, err)
	}
	return nil
}

// ReadTopic reads a whole topic, from the start to the end offsets it has
// now, without joining a consumer group. The brokers must answer within
// wait (an *UnreachableError otherwise).
func ReadTopic(ctx context.Context, props map[string]string, topic string, wait time.Duration, l Logging) ([]record.Message, error) {
	cm := kafka.ConfigMap{}
	for k, v := range props {
		cm[k] = v
	}
	Prepare(cm, "dlt-reader")
	cm["group.id"] = "statesync-dlt-reader"
	cm["enable.auto.commit"] = false
	cm["max.partition.fetch.bytes"] = 33554432
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create Kafka consumer: %w", err)
	}
	defer c.Close()
	w := l.Watch("dlt-reader", c, c.Logs())
	defer w.Stop() // before Close
	// asked in slices of at most 2 s, so an interrupt is noticed and no
	// request is left running when the consumer is closed
	start := time.Now()
	var md *kafka.Metadata
	for {
		md, err = c.GetMetadata(&topic, false, int(min(2*time.Second, max(wait-time.Since(start), 100*time.Millisecond)).Milliseconds()))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Since(start) >= wait {
			return nil, &UnreachableError{Brokers: props["bootstrap.servers"], Waited: time.Since(start).Round(time.Millisecond), Err: err}
		}
	}
	tm, ok := md.Topics[topic]
	if !ok || tm.Error.Code() == kafka.ErrUnknownTopicOrPart || len(tm.Partitions) == 0 {
		return nil, fmt.Errorf("topic %s does not exist", topic)
	}
	ends := map[int32]int64{}
	var assign []kafka.TopicPartition
	for _, p := range tm.Partitions {
		low, high, err := c.QueryWatermarkOffsets(topic, p.ID, 10000)
		if err != nil {
			return nil, fmt.Errorf("read end offsets of %s: %w", topic, err)
		}
		if high > low {
			ends[p.ID] = high
			assign = append(assign, kafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: kafka.Offset(low)})
		}
	}
	if len(assign) == 0 {
		return nil, nil
	}
	if err := c.Assign(assign); err != nil {
		return nil, err
	}
	var out []record.Message
	for len(ends) > 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		switch ev := c.Poll(200).(type) {
		case *kafka.Message:
			out = append(out, FromKafka(ev))
			if int64(ev.TopicPartition.Offset)+1 >= ends[ev.TopicPartition.Partition] {
				delete(ends, ev.TopicPartition.Partition)
			}
		case kafka.Error:
			if w.Event(ev) {
				return nil, ev
			}
		}
	}
	return out, nil
}

package offsets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

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
	// Topics are created by `statesync topics create` with the conventions'
	// settings, never by a produce: librdkafka's producer default (true)
	// would let a broker with auto.create.topics.enable re-create a deleted
	// dead-letter topic with its defaults instead of the partition waiting.
	setDefault(cm, "allow.auto.create.topics", "false")
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

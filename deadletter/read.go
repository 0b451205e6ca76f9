package deadletter

import (
	"context"
	"fmt"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/record"
)

// ReadTopic reads a whole topic (the dead-letter topic, for a replay), from
// the start to the end offsets it has now, without joining a consumer group.
// The brokers must answer within wait (an *offsets.UnreachableError
// otherwise).
func ReadTopic(ctx context.Context, props map[string]string, topic string, wait time.Duration, l offsets.Logging) ([]record.Message, error) {
	cm := kafka.ConfigMap{}
	for k, v := range props {
		cm[k] = v
	}
	offsets.Prepare(cm, "dlt-reader")
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
			return nil, &offsets.UnreachableError{Brokers: props["bootstrap.servers"], Waited: time.Since(start).Round(time.Millisecond), Err: err}
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
			out = append(out, offsets.FromKafka(ev))
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

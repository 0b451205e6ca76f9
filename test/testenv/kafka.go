package testenv

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// admin opens an admin client on brokers and the 30s context that bounds the caller's calls; done
// cancels the context and closes the client.
func admin(brokers string) (*kafka.AdminClient, context.Context, func(), error) {
	a, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": brokers})
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	return a, ctx, func() { cancel(); a.Close() }, nil
}

// CreateTopic creates a topic with the given partitions (replication 1) and
// extra configs, and deletes it when the test ends.
func CreateTopic(t testing.TB, brokers, topic string, partitions int, configs map[string]string) {
	t.Helper()
	a, ctx, done, err := admin(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	res, err := a.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1, Config: configs}},
		kafka.SetAdminOperationTimeout(20*time.Second))
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError && r.Error.Code() != kafka.ErrTopicAlreadyExists {
			t.Fatalf("create topic %s: %v", topic, r.Error)
		}
	}
	t.Cleanup(func() { DeleteTopics(t, brokers, topic) })
}

// DeleteTopics deletes topics, ignoring ones that do not exist.
func DeleteTopics(t testing.TB, brokers string, topics ...string) {
	a, ctx, done, err := admin(brokers)
	if err != nil {
		t.Logf("delete topics: %v", err)
		return
	}
	defer done()
	if _, err := a.DeleteTopics(ctx, topics); err != nil {
		t.Logf("delete topics %v: %v", topics, err)
	}
}

// Msg is a message to produce; a nil Value is a tombstone.
type Msg struct {
	Key, Value []byte
	Headers    map[string]string
	Partition  int32 // used when Explicit
	Explicit   bool
}

// Produce sends messages in order (idempotent, acks=all) and waits for all.
func Produce(t testing.TB, brokers, topic string, msgs []Msg) {
	t.Helper()
	if err := ProducePaced(brokers, topic, msgs, 0, 0); err != nil {
		t.Fatal(err)
	}
}

// ProducePaced is Produce for a background goroutine: it returns its error,
// and with chunk > 0 sleeps pause after every chunk messages (a producer
// that keeps publishing while the consumer under test runs).
func ProducePaced(brokers, topic string, msgs []Msg, chunk int, pause time.Duration) error {
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers, "enable.idempotence": true, "acks": "all",
		"linger.ms": 5, "message.max.bytes": 32 << 20})
	if err != nil {
		return err
	}
	defer p.Close()
	delivery := make(chan kafka.Event, len(msgs))
	for i, m := range msgs {
		if chunk > 0 && i > 0 && i%chunk == 0 && pause > 0 {
			time.Sleep(pause)
		}
		km := m.kafka(topic)
		for {
			err := p.Produce(km, delivery)
			var ke kafka.Error
			if errors.As(err, &ke) && ke.Code() == kafka.ErrQueueFull {
				p.Flush(100)
				continue
			}
			if err != nil {
				return fmt.Errorf("produce: %w", err)
			}
			break
		}
	}
	for range msgs {
		select {
		case ev := <-delivery:
			if m, ok := ev.(*kafka.Message); !ok || m.TopicPartition.Error != nil {
				return fmt.Errorf("delivery: %v", ev)
			}
		case <-time.After(2 * time.Minute):
			return errors.New("no delivery report within 2 minutes")
		}
	}
	return nil
}

// kafka is m as a message to topic (headers in name order).
func (m Msg) kafka(topic string) *kafka.Message {
	km := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}, Key: m.Key, Value: m.Value}
	if m.Explicit {
		km.TopicPartition.Partition = m.Partition
	}
	keys := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		km.Headers = append(km.Headers, kafka.Header{Key: k, Value: []byte(m.Headers[k])})
	}
	return km
}

// ProduceTransactions sends each of txs in a transaction of its own, in
// order, aborting those abort says: a transactional producer, whose commit
// markers take offsets and whose aborted records a read-committed consumer
// never sees.
func ProduceTransactions(t testing.TB, brokers, topic string, txs [][]Msg, abort func(i int) bool) {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers,
		"transactional.id": fmt.Sprintf("statesync-test-%d", time.Now().UnixNano()), "linger.ms": 5})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.InitTransactions(ctx); err != nil {
		t.Fatalf("init transactions: %v", err)
	}
	for i, tx := range txs {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, m := range tx {
			if err := p.Produce(m.kafka(topic), nil); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
		end := p.CommitTransaction
		if abort(i) {
			end = p.AbortTransaction
		}
		if err := end(ctx); err != nil {
			t.Fatalf("end transaction %d: %v", i, err)
		}
	}
}

// EndOffsets returns the high watermark of every partition of topic.
func EndOffsets(t testing.TB, brokers, topic string) map[int32]int64 {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "testenv-watermarks"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	md, err := c.GetMetadata(&topic, false, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range md.Topics[topic].Partitions {
		_, high, err := c.QueryWatermarkOffsets(topic, p.ID, 10000)
		if err != nil {
			t.Fatal(err)
		}
		out[p.ID] = high
	}
	return out
}

// Committed returns the group's committed offset of every partition of
// topic (-1 where none).
func Committed(t testing.TB, brokers, group, topic string) map[int32]int64 {
	t.Helper()
	ends := EndOffsets(t, brokers, topic)
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": group})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var tps []kafka.TopicPartition
	for p := range ends {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p})
	}
	got, err := c.Committed(tps, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, tp := range got {
		out[tp.Partition] = int64(tp.Offset)
		if tp.Offset < 0 {
			out[tp.Partition] = -1
		}
	}
	return out
}

// ReadAll reads every message of topic from the beginning to the end
// offsets it has now.
func ReadAll(t testing.TB, brokers, topic string) []*kafka.Message {
	t.Helper()
	ends := EndOffsets(t, brokers, topic)
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": fmt.Sprintf("testenv-read-%d", time.Now().UnixNano()),
		"enable.auto.commit": false, "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 33554432})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var tps []kafka.TopicPartition
	for p, end := range ends {
		if end > 0 {
			tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.OffsetBeginning})
		}
	}
	if err := c.Assign(tps); err != nil {
		t.Fatal(err)
	}
	var out []*kafka.Message
	done := map[int32]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(done) < len(tps) && time.Now().Before(deadline) {
		ev := c.Poll(100)
		if m, ok := ev.(*kafka.Message); ok {
			out = append(out, m)
			if int64(m.TopicPartition.Offset)+1 >= ends[m.TopicPartition.Partition] {
				done[m.TopicPartition.Partition] = true
			}
		}
	}
	if len(done) < len(tps) {
		t.Fatalf("read %d messages of %s, partitions done %v of %d within 60s", len(out), topic, done, len(tps))
	}
	return out
}

// Eventually polls cond every 100ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ValueAt reads the value of the message at offset of a partition.
func ValueAt(t testing.TB, brokers, topic string, partition int32, offset int64) []byte {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "testenv-value-at", "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Assign([]kafka.TopicPartition{{Topic: &topic, Partition: partition, Offset: kafka.Offset(offset)}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m, ok := c.Poll(100).(*kafka.Message); ok && int64(m.TopicPartition.Offset) == offset {
			return m.Value
		}
	}
	t.Fatalf("no message at %s[%d]@%d within 30s", topic, partition, offset)
	return nil
}

package offsets

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/test/testenv"
)

// memoryWriter is a Writer that remembers which offsets it wrote, and
// stalls (as a write retrying against an unreachable database does) on
// batches covering a chosen offset while stall is set.
type memoryWriter struct {
	mu      sync.Mutex
	written map[batch.TopicPartition]map[int64]bool
	stallTP batch.TopicPartition
	stallAt int64
	stall   bool
	stalled bool // a batch is stalled right now
	batches int
	delay   time.Duration // every write takes at least this long (a slow database)
}

func newMemoryWriter() *memoryWriter {
	return &memoryWriter{written: map[batch.TopicPartition]map[int64]bool{}, stallAt: -1}
}

func (w *memoryWriter) Apply(ctx context.Context, b *batch.Batch) error {
	if w.delay > 0 {
		time.Sleep(w.delay)
	}
	for {
		w.mu.Lock()
		stall := w.stall && b.TopicPartition == w.stallTP && b.FirstOffset <= w.stallAt && w.stallAt <= b.LastOffset
		w.stalled = stall
		if !stall {
			m := w.written[b.TopicPartition]
			if m == nil {
				m = map[int64]bool{}
				w.written[b.TopicPartition] = m
			}
			for _, r := range b.Records {
				m[r.Msg.Offset] = true
			}
			for _, p := range b.Poison {
				m[p.Msg.Offset] = true
			}
			w.batches++
			w.mu.Unlock()
			return nil
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (w *memoryWriter) has(tp batch.TopicPartition, offset int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written[tp][offset]
}

func (w *memoryWriter) isStalled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stalled
}

type fixture struct {
	brokers, topic, group string
	ends                  map[int32]int64
}

// newFixture creates a topic with partitions × perPartition state records;
// collapsing is out of the way (every key distinct) so every offset is a record.
func newFixture(t *testing.T, partitions, perPartition int) *fixture {
	f := &fixture{brokers: testenv.Kafka(t)}
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	f.topic = "codr.state.offsets-" + n
	f.group = "offsets-" + n
	testenv.CreateTopic(t, f.brokers, f.topic, partitions, nil)
	var msgs []testenv.Msg
	for p := 0; p < partitions; p++ {
		for i := 0; i < perPartition; i++ {
			id := bson.NewObjectID()
			msgs = append(msgs, testenv.Msg{Key: []byte(id.Hex()), Partition: int32(p), Explicit: true,
				Value: fmt.Appendf(nil, `{"payload":{"i":%d}}`, i)})
		}
	}
	testenv.Produce(t, f.brokers, f.topic, msgs)
	f.ends = testenv.EndOffsets(t, f.brokers, f.topic)
	return f
}

func (f *fixture) consumer(t *testing.T, w Writer) *Consumer {
	c, err := New(Options{
		Kafka: map[string]string{"bootstrap.servers": f.brokers}, GroupID: f.group, Subscription: []string{f.topic},
		Batch: batch.Options{MaxDocs: 100, MaxWait: 50 * time.Millisecond}, Concurrency: 2,
		ShutdownGrace: 10 * time.Second, Log: zaptest.NewLogger(t).Named(f.group),
	}, w)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, c *Consumer) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("consumer did not stop within 30s")
			return nil
		}
	}
}

func (f *fixture) committedAll(t *testing.T) bool {
	committed := testenv.Committed(t, f.brokers, f.group, f.topic)
	for p, end := range f.ends {
		if committed[p] != end {
			return false
		}
	}
	return true
}

func TestAStalledWriteHoldsItsPartitionsCommitBehindTheRecord(t *testing.T) {
	f := newFixture(t, 3, 1000)
	w := newMemoryWriter()
	w.stallTP = batch.TopicPartition{Topic: f.topic, Partition: 1}
	w.stallAt = 500
	w.stall = true
	c := f.consumer(t, w)
	stop := run(t, c)

	testenv.Eventually(t, 60*time.Second, "partitions 0 and 2 committed to their ends", func() bool {
		c := testenv.Committed(t, f.brokers, f.group, f.topic)
		return c[0] == f.ends[0] && c[2] == f.ends[2]
	})
	testenv.Eventually(t, 30*time.Second, "the write covering offset 500 to stall", w.isStalled)
	time.Sleep(2 * time.Second) // several auto-commit intervals
	committed := testenv.Committed(t, f.brokers, f.group, f.topic)
	if committed[1] > 500 {
		t.Fatalf("partition 1 committed %d while the record at 500 is unwritten", committed[1])
	}
	if w.has(w.stallTP, 500) {
		t.Fatal("the stalled record counts as written")
	}
	if c.Status().Pauses.Load() == 0 {
		t.Error("the stalled partition was never paused: the others went on only by luck of the fetch order")
	}

	w.mu.Lock()
	w.stall = false
	w.mu.Unlock()
	testenv.Eventually(t, 60*time.Second, "every partition committed to its end", func() bool { return f.committedAll(t) })
	if !w.has(w.stallTP, 500) {
		t.Error("the record at 500 was not written after recovery")
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	for p, end := range f.ends {
		for off := int64(0); off < end; off++ {
			if !w.has(batch.TopicPartition{Topic: f.topic, Partition: p}, off) {
				t.Fatalf("partition %d offset %d never written", p, off)
			}
		}
	}
}

// A database slower than Kafka is absorbed by not polling, not by pausing:
// Pause and Resume make librdkafka drop and re-fetch, and it fetches a
// resumed partition only up to a second later, which left the database idle.
func TestASlowDatabaseThrottlesPollingWithoutPausing(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		partitions, perPartition int
	}{
		{"fewer partitions than write slots", 3, 2000},
		// 8 partitions share the 2 write slots: partitions waiting for a
		// slot must not count as stalled (400 writes of 15 ms over 2 slots
		// outlast pauseAfter).
		{"more partitions than write slots", 8, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slowDatabase(t, tc.partitions, tc.perPartition)
		})
	}
}

func slowDatabase(t *testing.T, partitions, perPartition int) {
	f := newFixture(t, partitions, perPartition)
	w := newMemoryWriter()
	w.delay = 15 * time.Millisecond
	c := f.consumer(t, w)
	stop := run(t, c)
	testenv.Eventually(t, 60*time.Second, "every partition committed to its end", func() bool { return f.committedAll(t) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := c.Status().Pauses.Load(); n != 0 {
		t.Errorf("%d partition pauses; want 0 while every write completes within %s", n, pauseAfter)
	}
	for p, end := range f.ends {
		for off := int64(0); off < end; off++ {
			if !w.has(batch.TopicPartition{Topic: f.topic, Partition: p}, off) {
				t.Fatalf("partition %d offset %d never written", p, off)
			}
		}
	}
}

func TestShutdownDrainsAndCommitsWhatWasWritten(t *testing.T) {
	f := newFixture(t, 2, 2000)
	w := newMemoryWriter()
	c := f.consumer(t, w)
	stop := run(t, c)
	testenv.Eventually(t, 60*time.Second, "some records consumed", func() bool { return c.Status().Consumed.Load() > 500 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	committed := testenv.Committed(t, f.brokers, f.group, f.topic)
	for p, off := range committed {
		tp := batch.TopicPartition{Topic: f.topic, Partition: p}
		for o := int64(0); o < off; o++ {
			if !w.has(tp, o) {
				t.Fatalf("partition %d committed %d but offset %d was never written", p, off, o)
			}
		}
	}
	// A restart continues from the commit and completes the topic.
	stop = run(t, f.consumer(t, w))
	testenv.Eventually(t, 60*time.Second, "every partition committed to its end", func() bool { return f.committedAll(t) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRevokedPartitionsAreFlushedAndCommittedBeforeTheyMove(t *testing.T) {
	f := newFixture(t, 4, 3000)
	w := newMemoryWriter()
	first := f.consumer(t, w)
	stopFirst := run(t, first)
	testenv.Eventually(t, 60*time.Second, "the first member to consume", func() bool { return first.Status().Consumed.Load() > 1000 })
	second := f.consumer(t, w)
	stopSecond := run(t, second)
	testenv.Eventually(t, 60*time.Second, "the second member to get partitions", func() bool { return second.Status().Assigned.Load() > 0 })
	if err := stopFirst(); err != nil {
		t.Errorf("first Run: %v", err)
	}
	testenv.Eventually(t, 90*time.Second, "every partition committed to its end", func() bool { return f.committedAll(t) })
	if err := stopSecond(); err != nil {
		t.Errorf("second Run: %v", err)
	}
	for p, end := range f.ends {
		for off := int64(0); off < end; off++ {
			if !w.has(batch.TopicPartition{Topic: f.topic, Partition: p}, off) {
				t.Fatalf("partition %d offset %d never written", p, off)
			}
		}
	}
}

// A regex subscription picks up a topic created after the consumer started,
// within the refresh interval, and syncs it from its first record.
func TestARegexSubscriptionPicksUpANewTopic(t *testing.T) {
	brokers := testenv.Kafka(t)
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix := "codr.state.regex" + n
	group := "regex-" + n
	msgs := func(k int) []testenv.Msg {
		var out []testenv.Msg
		for i := 0; i < k; i++ {
			out = append(out, testenv.Msg{Key: []byte(bson.NewObjectID().Hex()), Value: fmt.Appendf(nil, `{"payload":{"i":%d}}`, i)})
		}
		return out
	}
	first := prefix + "-a"
	testenv.CreateTopic(t, brokers, first, 2, nil)
	testenv.Produce(t, brokers, first, msgs(200))

	w := newMemoryWriter()
	c, err := New(Options{
		Kafka: map[string]string{"bootstrap.servers": brokers}, GroupID: group,
		Subscription:    []string{"^" + strings.ReplaceAll(prefix, ".", `\.`) + "-.*"},
		RefreshInterval: time.Second,
		Batch:           batch.Options{MaxDocs: 100, MaxWait: 50 * time.Millisecond}, Concurrency: 2,
		ShutdownGrace: 10 * time.Second, Log: zaptest.NewLogger(t).Named(group),
	}, w)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	committedTo := func(topic string) func() bool {
		ends := testenv.EndOffsets(t, brokers, topic)
		return func() bool {
			got := testenv.Committed(t, brokers, group, topic)
			for p, end := range ends {
				if got[p] != end {
					return false
				}
			}
			return true
		}
	}
	testenv.Eventually(t, 60*time.Second, "the first topic committed to its end", committedTo(first))

	second := prefix + "-b"
	testenv.CreateTopic(t, brokers, second, 2, nil)
	testenv.Produce(t, brokers, second, msgs(150))
	testenv.Eventually(t, 60*time.Second, "the topic created after the start committed to its end", committedTo(second))
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for p, end := range testenv.EndOffsets(t, brokers, second) {
		for off := int64(0); off < end; off++ {
			if !w.has(batch.TopicPartition{Topic: second, Partition: p}, off) {
				t.Fatalf("%s[%d] offset %d never written", second, p, off)
			}
		}
	}
}

// A record on a quiet partition is written as soon as the consumer has
// nothing more to add to its batch, not when the batch's max wait ends
// (with a max wait of 30 s it waited 30 s).
func TestARecordOnAQuietPartitionIsWrittenWithoutWaitingForTheMaxWait(t *testing.T) {
	f := newFixture(t, 2, 0)
	w := newMemoryWriter()
	reg := prometheus.NewRegistry()
	c, err := New(Options{
		Kafka: map[string]string{"bootstrap.servers": f.brokers}, GroupID: f.group, Subscription: []string{f.topic},
		Batch: batch.Options{MaxDocs: 100, MaxWait: 30 * time.Second}, Concurrency: 2,
		ShutdownGrace: 10 * time.Second, Log: zaptest.NewLogger(t).Named(f.group), Metrics: metrics.New(reg),
	}, w)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	testenv.Eventually(t, 60*time.Second, "both partitions assigned", func() bool { return c.Status().Assigned.Load() == 2 })
	tp := batch.TopicPartition{Topic: f.topic, Partition: 1}
	for off := int64(0); off < 3; off++ {
		start := time.Now()
		testenv.Produce(t, f.brokers, f.topic, []testenv.Msg{{Key: []byte(bson.NewObjectID().Hex()), Partition: 1, Explicit: true,
			Value: []byte(`{"payload":{}}`)}})
		testenv.Eventually(t, 5*time.Second, fmt.Sprintf("the record at offset %d written", off), func() bool { return w.has(tp, off) })
		t.Logf("offset %d written within %s of the start of its produce", off, time.Since(start).Round(time.Millisecond))
	}
	// The freshness metrics read the records' Kafka timestamps.
	testenv.Eventually(t, 5*time.Second, "3 records in statesync_produce_to_written_seconds", func() bool {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "statesync_produce_to_written_seconds" {
				h := mf.GetMetric()[0].GetHistogram()
				return h.GetSampleCount() == 3 && h.GetSampleSum() < 3*5
			}
		}
		return false
	})
	if v := metricValue(t, reg, "statesync_oldest_unwritten_seconds"); v != 0 {
		t.Errorf("statesync_oldest_unwritten_seconds = %v with every record written, want 0", v)
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

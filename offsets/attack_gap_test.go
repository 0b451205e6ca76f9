package offsets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/test/testenv"
)

// lateAckWriter acknowledges the write of the batch starting at offset
// first only once release is closed, whatever its context says: MongoDB
// acknowledged the write just as the grace period ran out (the driver had
// the reply; the completion reaches the scheduler after finish took its
// deadline branch). Every other write fails at once.
type lateAckWriter struct {
	first   int64
	started chan struct{}
	release chan struct{}
}

func (w *lateAckWriter) Apply(ctx context.Context, b *batch.Batch) error {
	if b.FirstOffset != w.first {
		return errors.New("unexpected write")
	}
	w.started <- struct{}{}
	<-w.release
	return nil
}

// An extended gap (two EOFs with records between them, while the batch
// before the first gap is still being written) whose earlier batch is
// acknowledged only as the grace period ends: finish drops the queued batch
// holding the records between the two EOFs, and settleGap then stores the
// second EOF, past records that were never written.
func TestAttackGapGraceOverStoresPastUnwrittenRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(h *schedTest, grace time.Duration) int64 // what would be committed
	}{
		{"at shutdown", func(h *schedTest, grace time.Duration) int64 {
			p := h.s.parts[tp(0)]
			h.s.closeAndFinish(grace)
			return p.stored // Consumer.shutdown commits the stored offsets
		}},
		{"on revoke", func(h *schedTest, grace time.Duration) int64 {
			ps := h.s.revoke([]batch.TopicPartition{tp(0)}, grace)
			return ps[0].stored // Consumer.release commits p.stored
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			w := &lateAckWriter{first: 0, started: make(chan struct{}, 1), release: make(chan struct{})}
			h.s.w = w
			h.batch(0, 5) // records 0-4
			h.s.dispatch()
			<-w.started
			p := h.s.parts[tp(0)]
			h.s.atEnd(p, 6, h.now) // marker 5
			h.next[0] = 6
			h.consume(0, 3)         // records 6-8, open behind the write
			p.next = h.next[0]      // as Consumer.handle does
			h.s.atEnd(p, 10, h.now) // marker 9: the gap becomes [5,10)
			grace := 50 * time.Millisecond
			go func() { time.Sleep(3 * grace); close(w.release) }()
			committed := tc.end(h, grace)
			t.Logf("stores %v; committed %d", h.k.stores(0), committed)
			if committed > 6 {
				t.Errorf("offset %d stored although records 6-8 were never written (stores %v)", committed, h.k.stores(0))
			}
		})
	}
}

// Cases that held: kept as regression tests.
func TestAttackGapHeld(t *testing.T) {
	t.Run("an extended gap waits for the records between the two ends", func(t *testing.T) {
		h := newSchedTest(t, 4, 0)
		h.batch(0, 5)
		h.s.dispatch()
		gw := h.started()
		p := h.s.parts[tp(0)]
		h.s.atEnd(p, 6, h.now)
		h.next[0] = 6
		h.consume(0, 3)
		p.next = h.next[0]
		h.s.atEnd(p, 10, h.now)
		h.settle(gw, nil)
		h.want("stores after the first batch", h.k.stores(0), []string{"5"})
		h.s.close(tp(0))
		h.s.dispatch()
		h.settle(h.started(), nil)
		h.want("stores", h.k.stores(0), []string{"5", "9", "10"})
	})
	t.Run("an extended gap whose middle batch is abandoned is forgotten", func(t *testing.T) {
		h := newSchedTest(t, 4, 0)
		h.batch(0, 5)
		h.s.dispatch()
		gw := h.started()
		p := h.s.parts[tp(0)]
		h.s.atEnd(p, 6, h.now)
		h.next[0] = 6
		h.batch(0, 3) // queued
		p.next = h.next[0]
		h.s.atEnd(p, 10, h.now)
		h.settle(gw, nil)
		h.s.dispatch()
		h.settle(h.started(), errors.New("abandoned"))
		h.want("stores", h.k.stores(0), []string{"5"})
		h.want("gap", p.gapTo, int64(-1))
		h.want("next", p.next, int64(6))
	})
	t.Run("an EOF during a refused seek back is ignored, and the seek's re-read ends the gap", func(t *testing.T) {
		h := newSchedTest(t, 4, 0)
		k := &refusingKafka{fakeKafka: h.k, refuse: 1}
		h.s.kafka = k
		h.batch(0, 5)
		h.s.dispatch()
		gw := h.started()
		p := h.s.parts[tp(0)]
		h.s.atEnd(p, 6, h.now)
		h.settle(gw, errors.New("abandoned"))
		h.want("seek pending", p.seekTo, int64(0))
		h.s.atEnd(p, 6, h.now) // an EOF of the old version, had librdkafka let it through
		h.want("stores", len(h.k.stores(0)), 0)
		h.s.retrySeeks(time.Now().Add(time.Second))
		h.want("seek done", p.seekTo, int64(-1))
		h.next[0] = 0
		h.batch(0, 5)
		h.s.dispatch()
		h.settle(h.started(), nil)
		h.s.atEnd(p, 6, h.now)
		h.want("stores", h.k.stores(0), []string{"5", "6"})
	})
	t.Run("revoking and a refused seek ignore the end", func(t *testing.T) {
		h := newSchedTest(t, 4, 0)
		p := h.s.parts[tp(0)]
		p.revoking = true
		h.s.atEnd(p, 3, h.now)
		p.revoking, p.seekTo = false, 0
		h.s.atEnd(p, 3, h.now)
		h.want("stores", len(h.k.stores(0)), 0)
	})
}

type refusingKafka struct {
	*fakeKafka
	refuse int
}

func (k *refusingKafka) Seek(tp batch.TopicPartition, offset int64) error {
	if k.refuse > 0 {
		k.refuse--
		k.calls = append(k.calls, fmt.Sprintf("refused seek %d %d", tp.Partition, offset))
		return errors.New("refused")
	}
	return k.fakeKafka.Seek(tp, offset)
}

// failOnceWriter fails the first write covering offset at (the batch is
// abandoned and read again), then writes as memoryWriter does.
type failOnceWriter struct {
	*memoryWriter
	mu     sync.Mutex
	at     int64
	failed bool
}

func (w *failOnceWriter) Apply(ctx context.Context, b *batch.Batch) error {
	w.mu.Lock()
	fail := !w.failed && b.FirstOffset <= w.at && w.at <= b.LastOffset
	if fail {
		w.failed = true
	}
	w.mu.Unlock()
	if fail {
		return errors.New("abandoned once")
	}
	return w.memoryWriter.Apply(ctx, b)
}

// Against the broker: run mode on a transactional topic, the batch of the
// second transaction abandoned once (a seek back after the first gap was
// stored): every record is written and the commit reaches the end offset
// (librdkafka reports the end again after the seek).
func TestAttackGapSeekBackAfterASettledGapOnTheBroker(t *testing.T) {
	f := newTransactionalFixture(t)
	w := &failOnceWriter{memoryWriter: newMemoryWriter(), at: 8}
	c := f.consumer(t, w)
	stop := run(t, c)
	testenv.Eventually(t, 30*time.Second, "committed to the end offset", func() bool { return f.committedAll(t) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1, 2, 3, 4, 6, 7, 8, 9, 10} {
		if !w.has(tp0(f.topic), off) {
			t.Errorf("record %d not written", off)
		}
	}
	if !w.failed {
		t.Error("the write was never abandoned")
	}
}

// Against the broker: many small transactions produced while the writes
// are slow (gaps extended over records delivered behind a write), with
// aborted transactions among them: every committed record is written,
// none aborted, and the commit reaches the end offset.
func TestAttackGapStreamOfTransactionsWithSlowWritesOnTheBroker(t *testing.T) {
	brokers := testenv.Kafka(t)
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	f := &fixture{brokers: brokers, topic: "codr.state.txatk-" + n, group: "txatk-" + n}
	testenv.CreateTopic(t, brokers, f.topic, 1, nil)
	w := newMemoryWriter()
	w.delay = 150 * time.Millisecond
	c := f.consumer(t, w)
	stop := run(t, c)
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers, "transactional.id": "statesync-atk-" + n, "linger.ms": 0})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := p.InitTransactions(ctx); err != nil {
		t.Fatal(err)
	}
	var committedVals, abortedVals []string
	for tx := 0; tx < 30; tx++ {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		abort := tx%4 == 3
		var dr chan kafka.Event
		if abort {
			dr = make(chan kafka.Event, 3)
		}
		for i := 0; i < 3; i++ {
			v := fmt.Sprintf(`{"payload":{"tx":%d,"i":%d}}`, tx, i)
			id := bson.NewObjectID()
			if err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &f.topic, Partition: 0},
				Key: []byte(id.Hex()), Value: []byte(v)}, dr); err != nil {
				t.Fatal(err)
			}
			if abort {
				abortedVals = append(abortedVals, v)
			} else {
				committedVals = append(committedVals, v)
			}
		}
		if abort {
			for i := 0; i < 3; i++ { // on the log, to be skipped by read_committed
				if m := (<-dr).(*kafka.Message); m.TopicPartition.Error != nil {
					t.Fatal(m.TopicPartition.Error)
				}
			}
			err = p.AbortTransaction(ctx)
		} else {
			err = p.CommitTransaction(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond)
	}
	// CommitTransaction returns before the markers are on the partition: wait for the last one.
	testenv.Eventually(t, 30*time.Second, "every marker written", func() bool { return testenv.EndOffsets(t, brokers, f.topic)[0] == 120 }) // 90 records, 30 markers
	f.ends = testenv.EndOffsets(t, brokers, f.topic)
	testenv.Eventually(t, 60*time.Second, "committed to the end offset", func() bool { return f.committedAll(t) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Which offsets hold committed records: read them back read_committed.
	var want []int64
	for _, m := range readCommitted(t, brokers, f.topic) {
		if slices.Contains(committedVals, string(m.Value)) {
			want = append(want, int64(m.TopicPartition.Offset))
		}
	}
	if len(want) != len(committedVals) {
		t.Fatalf("read back %d committed records, produced %d", len(want), len(committedVals))
	}
	for _, off := range want {
		if !w.has(tp0(f.topic), off) {
			t.Errorf("committed record at %d not written", off)
		}
	}
	w.mu.Lock()
	total := len(w.written[tp0(f.topic)])
	w.mu.Unlock()
	if total != len(want) {
		t.Errorf("wrote %d records, want the %d committed ones (aborted ones written?)", total, len(want))
	}
	t.Logf("end %v (now %v), committed %v, %d committed records, %d aborted", f.ends, testenv.EndOffsets(t, brokers, f.topic),
		testenv.Committed(t, brokers, f.group, f.topic), len(want), len(abortedVals))
}

// readCommitted reads partition 0 of topic read_committed up to its end
// (a PartitionEOF: testenv.ReadAll waits for a record at the end offset,
// which a topic ending with a commit marker never has).
func readCommitted(t *testing.T, brokers, topic string) []*kafka.Message {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "atk-read-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"enable.auto.commit": false, "enable.partition.eof": true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Assign([]kafka.TopicPartition{{Topic: &topic, Partition: 0, Offset: kafka.OffsetBeginning}}); err != nil {
		t.Fatal(err)
	}
	var out []*kafka.Message
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		switch e := c.Poll(100).(type) {
		case *kafka.Message:
			out = append(out, e)
		case kafka.PartitionEOF:
			return out
		}
	}
	t.Fatalf("no end of %s within 30s", topic)
	return nil
}

// Against the broker: a transaction left open (read committed: the end is
// its first offset, the LSO) with plain records produced after it. The
// commit stops at the LSO while the transaction is open, and once it
// commits every record, the transaction's and the plain ones after it, is
// written and the commit reaches the end.
func TestAttackGapOpenTransactionOnTheBroker(t *testing.T) {
	brokers := testenv.Kafka(t)
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	f := &fixture{brokers: brokers, topic: "codr.state.txopen-" + n, group: "txopen-" + n}
	testenv.CreateTopic(t, brokers, f.topic, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	produce := func(p *kafka.Producer, wait bool) {
		t.Helper()
		dr := make(chan kafka.Event, 3)
		for i := 0; i < 3; i++ {
			if err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &f.topic, Partition: 0},
				Key: []byte(bson.NewObjectID().Hex()), Value: []byte(`{"payload":{}}`)}, dr); err != nil {
				t.Fatal(err)
			}
		}
		if wait {
			for i := 0; i < 3; i++ {
				if m := (<-dr).(*kafka.Message); m.TopicPartition.Error != nil {
					t.Fatal(m.TopicPartition.Error)
				}
			}
		}
	}
	tx, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers, "transactional.id": "statesync-open-" + n})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	plain, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := tx.InitTransactions(ctx); err != nil {
		t.Fatal(err)
	}
	produce(plain, true) // 0-2
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(tx, true)    // 3-5, open
	produce(plain, true) // 6-8, after the LSO
	w := newMemoryWriter()
	c := f.consumer(t, w)
	stop := run(t, c)
	testenv.Eventually(t, 30*time.Second, "committed to the LSO", func() bool { return testenv.Committed(t, brokers, f.group, f.topic)[0] == 3 })
	time.Sleep(2 * time.Second)
	if got := testenv.Committed(t, brokers, f.group, f.topic)[0]; got != 3 {
		t.Fatalf("committed %d with a transaction open at 3", got)
	}
	if err := tx.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the marker on the partition", func() bool { return testenv.EndOffsets(t, brokers, f.topic)[0] == 10 })
	f.ends = testenv.EndOffsets(t, brokers, f.topic)
	testenv.Eventually(t, 30*time.Second, "committed to the end", func() bool { return f.committedAll(t) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < 9; off++ {
		if !w.has(tp0(f.topic), off) {
			t.Errorf("record %d not written", off)
		}
	}
}

// Against the broker: a partition of a transactional topic paused behind a
// stalled write (backpressure), with ends reported before the pause: after
// the write goes through and the partition resumes, every record is
// written and the commit reaches the end offset.
func TestAttackGapPausedBehindAStalledWriteOnTheBroker(t *testing.T) {
	brokers := testenv.Kafka(t)
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	f := &fixture{brokers: brokers, topic: "codr.state.txpause-" + n, group: "txpause-" + n}
	testenv.CreateTopic(t, brokers, f.topic, 1, nil)
	w := newMemoryWriter()
	w.stallTP, w.stallAt, w.stall = tp0(f.topic), 0, true
	c := f.consumer(t, w)
	stop := run(t, c)
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers, "transactional.id": "statesync-pause-" + n})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := p.InitTransactions(ctx); err != nil {
		t.Fatal(err)
	}
	for tx := 0; tx < 20; tx++ {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			if err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &f.topic, Partition: 0},
				Key: []byte(bson.NewObjectID().Hex()), Value: []byte(`{"payload":{}}`)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.CommitTransaction(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond)
	}
	testenv.Eventually(t, 30*time.Second, "the partition paused", func() bool { return c.Status().Pauses.Load() > 0 })
	w.mu.Lock()
	w.stall = false
	w.mu.Unlock()
	testenv.Eventually(t, 30*time.Second, "every marker on the partition", func() bool { return testenv.EndOffsets(t, brokers, f.topic)[0] == 220 })
	f.ends = testenv.EndOffsets(t, brokers, f.topic)
	testenv.Eventually(t, 30*time.Second, "committed to the end", func() bool { return f.committedAll(t) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var missing []int64
	for _, m := range readCommitted(t, brokers, f.topic) {
		if off := int64(m.TopicPartition.Offset); !w.has(tp0(f.topic), off) {
			missing = append(missing, off)
		}
	}
	if len(missing) > 0 {
		t.Errorf("records not written: %v", missing)
	}
}

// debugGap logs the partition state before the stop (racy: set it only
// without -race, to debug).
var debugGap = false

// lateAckMemoryWriter is memoryWriter, except that the write of the batch
// starting at offset 0 is acknowledged only once release is closed, whatever
// its context says (MongoDB acknowledged it as the shutdown grace ran out).
type lateAckMemoryWriter struct {
	*memoryWriter
	started chan struct{}
	release chan struct{}
}

func (w *lateAckMemoryWriter) Apply(ctx context.Context, b *batch.Batch) error {
	if b.FirstOffset == 0 {
		close(w.started)
		<-w.release
		return w.memoryWriter.Apply(context.Background(), b)
	}
	return w.memoryWriter.Apply(ctx, b)
}

// Against the broker, the finding of TestAttackGapGraceOverStoresPastUnwrittenRecords
// end to end: transaction 1 (records 0-4, marker 5) is being written when
// transaction 2 (records 6-8, marker 9) arrives and both ends are reported;
// the shutdown grace runs out, the first write is acknowledged just then,
// and offset 10 is committed although records 6-8 were never written.
func TestAttackGapShutdownCommitsPastUnwrittenRecordsOnTheBroker(t *testing.T) {
	brokers := testenv.Kafka(t)
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	f := &fixture{brokers: brokers, topic: "codr.state.txgrace-" + n, group: "txgrace-" + n}
	testenv.CreateTopic(t, brokers, f.topic, 1, nil)
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers, "transactional.id": "statesync-grace-" + n})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := p.InitTransactions(ctx); err != nil {
		t.Fatal(err)
	}
	transaction := func(records int) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < records; i++ {
			if err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &f.topic, Partition: 0},
				Key: []byte(bson.NewObjectID().Hex()), Value: []byte(`{"payload":{}}`)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.CommitTransaction(ctx); err != nil {
			t.Fatal(err)
		}
	}
	w := &lateAckMemoryWriter{memoryWriter: newMemoryWriter(), started: make(chan struct{}), release: make(chan struct{})}
	grace := 500 * time.Millisecond
	c, err := New(Options{
		Kafka: map[string]string{"bootstrap.servers": brokers}, GroupID: f.group, Subscription: []string{f.topic},
		// A batch waits long for more records: records 6-8 stay open behind the write.
		Batch: batch.Options{MaxDocs: 100, MaxWait: 20 * time.Second}, Concurrency: 2,
		ShutdownGrace: grace,
	}, w)
	if err != nil {
		t.Fatal(err)
	}
	transaction(5)
	stop := run(t, c)
	select {
	case <-w.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the first write did not start")
	}
	time.Sleep(1500 * time.Millisecond) // the end at 6 is reported (a fetch at the end waits up to fetch.wait.max.ms)
	transaction(3)
	testenv.Eventually(t, 30*time.Second, "marker 9 on the partition", func() bool { return testenv.EndOffsets(t, brokers, f.topic)[0] == 10 })
	time.Sleep(2 * time.Second) // the consumer reads 6-8 and the end at 10
	if debugGap {
		for _, pp := range c.sched.parts { // racy: debugging only, without -race
			t.Logf("next %d gap [%d,%d) stored %d writing %v queue %d", pp.next, pp.gapFrom, pp.gapTo, pp.stored, pp.writing != nil, len(pp.queue))
		}
	}
	go func() { time.Sleep(grace + 300*time.Millisecond); close(w.release) }()
	if err := stop(); err != nil {
		t.Logf("stop: %v", err)
	}
	committed := testenv.Committed(t, brokers, f.group, f.topic)[0]
	var unwritten []int64
	for _, off := range []int64{6, 7, 8} {
		if !w.has(tp0(f.topic), off) {
			unwritten = append(unwritten, off)
		}
	}
	t.Logf("committed %d; unwritten %v", committed, unwritten)
	if len(unwritten) > 0 && committed > unwritten[0] {
		t.Errorf("committed %d past records %v that were never written", committed, unwritten)
	}
}

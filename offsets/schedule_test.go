package offsets

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/record"
)

// fakeKafka is a partitionControl that records what the scheduler asked,
// as "pause 0", "resume 0", "store 0 10", "seek 0 5" (partition numbers of
// the one test topic).
type fakeKafka struct {
	calls []string
}

func (k *fakeKafka) Pause(tp batch.TopicPartition) error {
	k.calls = append(k.calls, fmt.Sprintf("pause %d", tp.Partition))
	return nil
}

func (k *fakeKafka) Resume(tp batch.TopicPartition) error {
	k.calls = append(k.calls, fmt.Sprintf("resume %d", tp.Partition))
	return nil
}

func (k *fakeKafka) StoreOffset(tp batch.TopicPartition, next int64) error {
	k.calls = append(k.calls, fmt.Sprintf("store %d %d", tp.Partition, next))
	return nil
}

func (k *fakeKafka) Seek(tp batch.TopicPartition, offset int64) error {
	k.calls = append(k.calls, fmt.Sprintf("seek %d %d", tp.Partition, offset))
	return nil
}

// stores lists the offsets stored for partition, in order.
func (k *fakeKafka) stores(partition int32) []string {
	var out []string
	for _, c := range k.calls {
		var p int32
		var off int64
		if n, _ := fmt.Sscanf(c, "store %d %d", &p, &off); n == 2 && p == partition {
			out = append(out, fmt.Sprint(off))
		}
	}
	return out
}

// gatedWriter is a Writer whose writes wait until the test settles them (or
// their context ends, as a write retrying against a database that does not
// answer does).
type gatedWriter struct {
	started chan *gatedWrite
}

type gatedWrite struct {
	b      *batch.Batch
	result chan error
}

func (w *gatedWriter) Apply(ctx context.Context, b *batch.Batch) error {
	gw := &gatedWrite{b: b, result: make(chan error, 1)}
	w.started <- gw
	select {
	case err := <-gw.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

const testTopic = "codr.state.schedule"

// schedTest drives a scheduler as the poll loop does, with a fake Kafka, a
// gated writer and a clock of its own.
type schedTest struct {
	t    *testing.T
	reg  *prometheus.Registry
	s    *scheduler
	k    *fakeKafka
	w    *gatedWriter
	now  time.Time
	next map[int32]int64 // next offset to consume, per partition
}

func newSchedTest(t *testing.T, concurrency int, partitions ...int32) *schedTest {
	h := &schedTest{t: t, reg: prometheus.NewRegistry(), k: &fakeKafka{}, w: &gatedWriter{started: make(chan *gatedWrite, 64)},
		now: time.Now(), next: map[int32]int64{}}
	acc := batch.New(batch.Options{MaxDocs: 1000, MaxWait: time.Hour})
	h.s = newScheduler(h.k, h.w, acc, concurrency, &Status{}, metrics.New(h.reg), zaptest.NewLogger(t))
	for _, p := range partitions {
		h.s.assign(tp(p), 0, -1)
	}
	t.Cleanup(func() {
		for _, p := range h.s.parts {
			p.cancel() // ends the writes left gated
		}
	})
	return h
}

func tp(partition int32) batch.TopicPartition {
	return batch.TopicPartition{Topic: testTopic, Partition: partition}
}

// consume hands n records of partition to the scheduler (a poison one
// where poison says so), as the poll loop does.
func (h *schedTest) consume(partition int32, n int, poison ...bool) {
	for i := 0; i < n; i++ {
		id := bson.NewObjectID()
		msg := record.Message{Topic: testTopic, Partition: partition, Offset: h.next[partition], Key: []byte(id.Hex()),
			Value: []byte(`{"payload":{}}`), Timestamp: h.now}
		h.next[partition]++
		p := h.s.parts[tp(partition)]
		if i < len(poison) && poison[i] {
			h.s.addPoison(p, batch.Poison{Msg: msg, Err: &record.PoisonError{Class: record.ClassInvalidJSON, Err: errors.New("bad")}}, h.now)
			continue
		}
		h.s.add(p, record.Record{Msg: msg, ID: id, Doc: bson.Raw{}}, h.now)
	}
}

// batch consumes n records of partition and closes its batch.
func (h *schedTest) batch(partition int32, n int) {
	h.consume(partition, n)
	h.s.close(tp(partition))
}

// started is the next write the scheduler started.
func (h *schedTest) started() *gatedWrite {
	h.t.Helper()
	select {
	case gw := <-h.w.started:
		return gw
	case <-time.After(10 * time.Second):
		h.t.Fatal("no write started within 10s")
		return nil
	}
}

// settle ends gw with err and lets the scheduler handle its completion.
func (h *schedTest) settle(gw *gatedWrite, err error) {
	h.t.Helper()
	gw.result <- err
	select {
	case cp := <-h.s.done:
		h.s.complete(cp, h.now)
	case <-time.After(10 * time.Second):
		h.t.Fatal("no completion within 10s")
	}
}

// oldestUnwritten scrapes statesync_oldest_unwritten_seconds of
// partition; false when it has no series.
func (h *schedTest) oldestUnwritten(partition int32) (float64, bool) {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "statesync_oldest_unwritten_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" && l.GetValue() == fmt.Sprint(partition) {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// produceToWritten is how many records statesync_produce_to_written_seconds
// observed, and the sum of their ages.
func (h *schedTest) produceToWritten() (uint64, float64) {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "statesync_produce_to_written_seconds" {
			hist := mf.GetMetric()[0].GetHistogram()
			return hist.GetSampleCount(), hist.GetSampleSum()
		}
	}
	return 0, 0
}

func span(b *batch.Batch) string {
	return fmt.Sprintf("%d[%d-%d]", b.Partition, b.FirstOffset, b.LastOffset)
}

func (h *schedTest) want(what string, got, want any) {
	h.t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		h.t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestScheduler(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a partition's batches are written one at a time, in offset order", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			h.batch(0, 10)
			h.batch(0, 10)
			h.batch(0, 10)
			h.s.dispatch()
			var order []string
			for i := 0; i < 3; i++ {
				h.want("writes in flight", h.s.inflight, 1)
				gw := h.started()
				order = append(order, span(gw.b))
				h.settle(gw, nil)
				h.s.dispatch()
			}
			h.want("write order", order, []string{"0[0-9]", "0[10-19]", "0[20-29]"})
			h.want("stored", h.k.stores(0), []string{"10", "20", "30"})
		}},
		{"at most concurrency batches are written at once; the others wait their turn in order", func(t *testing.T) {
			h := newSchedTest(t, 2, 0, 1, 2, 3)
			for _, p := range []int32{2, 0, 3, 1} {
				h.batch(p, 5)
			}
			h.s.dispatch()
			h.want("writes in flight", h.s.inflight, 2)
			first, second := h.started(), h.started()
			if first.b.Partition != 2 { // the writes run concurrently: either may start first
				first, second = second, first
			}
			h.want("first two written", []string{span(first.b), span(second.b)}, []string{"2[0-4]", "0[0-4]"})
			h.want("waiting", h.s.waiting, []batch.TopicPartition{tp(3), tp(1)})
			h.settle(second, nil)
			h.s.dispatch()
			h.want("writes in flight", h.s.inflight, 2)
			h.want("next written", span(h.started().b), "3[0-4]")
			h.want("waiting", h.s.waiting, []batch.TopicPartition{tp(1)})
		}},
		{"an offset is stored only after its write is acknowledged", func(t *testing.T) {
			h := newSchedTest(t, 1, 0)
			h.batch(0, 10)
			h.s.dispatch()
			gw := h.started()
			h.want("calls before the acknowledgement", h.k.calls, []string(nil))
			h.want("committed records", h.s.status.Committed.Load(), 0)
			h.settle(gw, nil)
			h.want("calls", h.k.calls, []string{"store 0 10"})
			h.want("committed records", h.s.status.Committed.Load(), 10)
			h.want("last progress", h.s.status.LastProgress.Load(), h.now.UnixNano())
		}},
		{"a later batch of a partition is neither written nor stored before the earlier one is acknowledged", func(t *testing.T) {
			h := newSchedTest(t, 4, 0, 1)
			h.batch(0, 10)
			h.batch(0, 10)
			h.batch(1, 3)
			h.s.dispatch()
			h.want("writes in flight", h.s.inflight, 2)
			w0, w1 := h.started(), h.started()
			if w0.b.Partition != 0 {
				w0, w1 = w1, w0
			}
			h.want("partition 0 writes", span(w0.b), "0[0-9]")
			h.want("partition 0 queued", len(h.s.parts[tp(0)].queue), 1)
			h.settle(w1, nil) // another partition's acknowledgement stores only its own offset
			h.want("partition 0 stored", h.k.stores(0), []string(nil))
			h.want("partition 1 stored", h.k.stores(1), []string{"3"})
			h.settle(w0, nil)
			h.want("partition 0 stored", h.k.stores(0), []string{"10"})
			h.s.dispatch()
			h.settle(h.started(), nil)
			h.want("partition 0 stored", h.k.stores(0), []string{"10", "20"})
		}},
		{"the completion of a write of a lost partition stores nothing, even once it is assigned again", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			h.batch(0, 10)
			h.s.dispatch()
			old := h.started()
			h.s.drop([]batch.TopicPartition{tp(0)})
			h.s.assign(tp(0), 0, -1)
			old.result <- nil // its context was cancelled: it may end either way
			h.s.complete(<-h.s.done, h.now)
			h.want("stored", h.k.stores(0), []string(nil))
			h.want("writes in flight", h.s.inflight, 0)
			h.want("stored offset of the new assignment", h.s.parts[tp(0)].stored, -1)
		}},
		{"an abandoned write stores nothing, and its partition is read again from the batch's first offset", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			h.batch(0, 10)
			h.s.dispatch()
			gw := h.started()
			h.batch(0, 10)  // queued behind it
			h.consume(0, 5) // open
			h.settle(gw, errors.New("abandoned"))
			h.want("calls", h.k.calls, []string{"pause 0", "seek 0 0", "resume 0"})
			p := h.s.parts[tp(0)]
			h.want("queued", len(p.queue), 0)
			h.want("open", h.s.acc.Pending(tp(0)), 0)
			h.want("next delivered", p.next, 0)
			h.want("stored", p.stored, -1)
		}},
		{"polling is held while a partition's next batch waits, and the partition is paused after pauseAfter without a completion", func(t *testing.T) {
			h := newSchedTest(t, 4, 0, 1)
			h.batch(0, 10)
			h.s.dispatch()
			gw := h.started()
			h.batch(0, 10)
			t0 := h.now
			h.want("held", h.s.hold(t0), true)
			h.want("held just before pauseAfter", h.s.hold(t0.Add(pauseAfter-time.Millisecond)), true)
			h.want("held at pauseAfter", h.s.hold(t0.Add(pauseAfter)), false)
			h.want("calls", h.k.calls, []string{"pause 0"})
			h.want("pauses", h.s.status.Pauses.Load(), 1)
			h.settle(gw, nil)
			h.s.dispatch() // its queued batch is on its way: the partition is read again
			h.want("calls", h.k.calls, []string{"pause 0", "store 0 10", "resume 0"})
		}},
		{"any completion restarts the blocked clock", func(t *testing.T) {
			h := newSchedTest(t, 4, 0, 1)
			h.batch(0, 10)
			h.batch(1, 10)
			h.s.dispatch()
			w0, w1 := h.started(), h.started()
			if w0.b.Partition != 0 {
				w0, w1 = w1, w0
			}
			h.batch(0, 10) // partition 0 blocks polling
			t0 := h.now
			h.want("held", h.s.hold(t0), true)
			h.settle(w1, nil) // writes are moving, though not partition 0's
			h.want("held after another partition's completion", h.s.hold(t0.Add(1900*time.Millisecond)), true)
			h.want("held pauseAfter after the first hold", h.s.hold(t0.Add(pauseAfter)), true)
			h.want("pauses", h.s.status.Pauses.Load(), 0)
			h.want("held pauseAfter after the completion", h.s.hold(t0.Add(1900*time.Millisecond+pauseAfter)), false)
			h.want("pauses", h.s.status.Pauses.Load(), 1)
		}},
		{"partitions waiting for a write slot hold polling only once as many wait as there are slots", func(t *testing.T) {
			h := newSchedTest(t, 2, 0, 1, 2, 3)
			h.batch(0, 1)
			h.batch(1, 1)
			h.s.dispatch()
			h.batch(2, 1)
			h.want("held with one waiting", h.s.hold(h.now), false)
			h.batch(3, 1)
			h.want("held with two waiting", h.s.hold(h.now), true)
		}},
		{"a revoked partition's open batch is written and its offset stored before it is given up", func(t *testing.T) {
			h := newSchedTest(t, 4, 0, 1)
			h.consume(0, 7)
			h.consume(1, 3)
			go func() { gw := <-h.w.started; gw.result <- nil }()
			ps := h.s.revoke([]batch.TopicPartition{tp(0)}, 10*time.Second)
			h.want("given up", len(ps), 1)
			h.want("stored", ps[0].stored, 7)
			h.want("calls", h.k.calls, []string{"store 0 7"})
			h.want("still assigned", len(h.s.parts), 1)
			h.want("partition 1 still open", h.s.acc.Pending(tp(1)), 3)
		}},
		{"a write still in flight when the grace ends is cancelled and stores nothing", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			h.consume(0, 7)
			start := time.Now()
			ps := h.s.revoke([]batch.TopicPartition{tp(0)}, 50*time.Millisecond)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("revoke took %s with a grace of 50ms", took)
			}
			h.want("stored", ps[0].stored, -1)
			h.want("stores", h.k.stores(0), []string(nil))
			h.want("writes in flight", h.s.inflight, 0)
			h.want("still assigned", len(h.s.parts), 0)
		}},
		{"an import is complete once every partition is stored to its end and nothing is written", func(t *testing.T) {
			h := newSchedTest(t, 4)
			h.s.assign(tp(0), 0, 10)
			h.s.assign(tp(1), 5, 5) // empty
			h.want("imported before anything was written", h.s.imported(), false)
			h.batch(0, 10)
			h.s.dispatch()
			gw := h.started()
			h.want("imported while written", h.s.imported(), false)
			h.settle(gw, nil)
			h.want("imported", h.s.imported(), true)
			h.s.assign(tp(2), 0, -1)
			h.want("imported with a partition whose end is unknown", h.s.imported(), false)
		}},
		{"dead-lettered records advance the offset like written ones", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			h.consume(0, 4, false, true, false, true)
			h.s.close(tp(0))
			h.s.dispatch()
			gw := h.started()
			h.want("poison in the batch", len(gw.b.Poison), 2)
			h.settle(gw, nil)
			h.want("stored", h.k.stores(0), []string{"4"})
			h.want("committed records", h.s.status.Committed.Load(), 4)
		}},
		{"a partition with nothing being written closes its open batch once the consumer has nothing more for it", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			h.consume(0, 3)
			h.s.closeIdle()
			h.s.dispatch()
			h.want("written", span(h.started().b), "0[0-2]")
		}},
		{"a partition being written keeps accumulating into its open batch until the write is acknowledged", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			h.batch(0, 10)
			h.s.dispatch()
			gw := h.started()
			h.consume(0, 5)
			h.s.closeIdle()
			h.want("open", h.s.acc.Pending(tp(0)), 5)
			h.want("queued", len(h.s.parts[tp(0)].queue), 0)
			h.consume(0, 5)
			h.settle(gw, nil)
			h.s.closeIdle()
			h.s.dispatch()
			h.want("next written", span(h.started().b), "0[10-19]")
		}},
		{"a partition whose closed batch waits for a write slot keeps accumulating", func(t *testing.T) {
			h := newSchedTest(t, 1, 0, 1)
			h.batch(0, 10)
			h.s.dispatch()
			h.started()
			h.batch(1, 10)
			h.consume(1, 3)
			h.s.closeIdle()
			h.want("open", h.s.acc.Pending(tp(1)), 3)
			h.want("queued", len(h.s.parts[tp(1)].queue), 1)
		}},
		{"idle batches are closed only into free write slots, oldest first", func(t *testing.T) {
			h := newSchedTest(t, 2, 0, 1, 2)
			h.batch(0, 10)
			h.s.dispatch()
			h.started()
			h.consume(1, 3)
			h.now = h.now.Add(-time.Second) // partition 2's batch opened earlier
			h.consume(2, 3)
			h.s.closeIdle()
			h.want("open", []int{h.s.acc.Pending(tp(1)), h.s.acc.Pending(tp(2))}, []int{3, 0})
			h.want("waiting", h.s.waiting, []batch.TopicPartition{tp(2)})
		}},
		{"a stuck write makes the age of the oldest unwritten record rise between two scrapes without new records", func(t *testing.T) {
			h := newSchedTest(t, 4, 0, 1)
			h.now = time.Now().Add(-time.Second) // the records' Kafka timestamp
			h.batch(0, 10)
			h.s.dispatch()
			gw := h.started()
			first, ok := h.oldestUnwritten(0)
			if !ok || first < 1 {
				t.Fatalf("first scrape: %v (series %v), want at least 1 s", first, ok)
			}
			time.Sleep(20 * time.Millisecond)
			if second, _ := h.oldestUnwritten(0); second <= first {
				t.Errorf("second scrape %v, want more than the first, %v", second, first)
			}
			h.want("partition 1, with nothing pending", fmt.Sprint(h.oldestUnwritten(1)), "0 true")
			h.settle(gw, nil)
			h.want("after the acknowledgement", fmt.Sprint(h.oldestUnwritten(0)), "0 true")
			h.s.revoke([]batch.TopicPartition{tp(0)}, time.Second)
			h.s.drop([]batch.TopicPartition{tp(1)})
			h.want("series after revoke and loss", fmt.Sprint(h.oldestUnwritten(0))+" "+fmt.Sprint(h.oldestUnwritten(1)), "0 false 0 false")
		}},
		{"the oldest unwritten record is the first one consumed after the last acknowledgement", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			start := time.Now()
			h.now = start.Add(-time.Minute)
			h.batch(0, 10)
			h.s.dispatch()
			gw := h.started()
			h.now = start.Add(-10 * time.Second)
			h.consume(0, 5) // open behind the write
			if age, _ := h.oldestUnwritten(0); age < 60 {
				t.Errorf("while the first batch is written: %v, want at least 60 s", age)
			}
			h.settle(gw, nil)
			if age, _ := h.oldestUnwritten(0); age < 10 || age >= 60 {
				t.Errorf("after it: %v, want the open batch's age, 10 s and more but not 60 s", age)
			}
		}},
		{"the produce-to-written histogram counts every record once: written, dead-lettered, and an abandoned one once it is written", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			h.now = time.Now().Add(-2 * time.Second)
			h.consume(0, 4, false, true, false, true)
			h.s.close(tp(0))
			h.s.dispatch()
			h.settle(h.started(), nil)
			n, sum := h.produceToWritten()
			h.want("records observed", n, 4)
			if sum < 4*2 {
				t.Errorf("sum of ages %v, want at least 4 × 2 s", sum)
			}
			h.batch(0, 5)
			h.s.dispatch()
			h.settle(h.started(), errors.New("abandoned"))
			n, _ = h.produceToWritten()
			h.want("records observed after an abandoned write", n, 4)
			if age, _ := h.oldestUnwritten(0); age < 2 {
				t.Errorf("oldest unwritten after the abandoned write: %v, want its records' age, at least 2 s", age)
			}
			h.next[0] = 4 // read again
			h.batch(0, 5)
			h.s.dispatch()
			h.settle(h.started(), nil)
			n, _ = h.produceToWritten()
			h.want("records observed once the batch is written", n, 9)
			h.want("oldest unwritten", fmt.Sprint(h.oldestUnwritten(0)), "0 true")
		}},
		{"a refused seek back keeps the partition paused, stores nothing, and is retried until it is done", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			k := &refusingSeeks{fakeKafka: h.k, refuse: 2}
			h.s.kafka = k
			h.batch(0, 10)
			h.s.dispatch()
			h.settle(h.started(), errors.New("abandoned"))
			h.want("calls after a refused seek", h.k.calls, []string{"pause 0", "seek 0 0 (refused)"})
			p := h.s.parts[tp(0)]
			h.want("paused, seek pending", fmt.Sprint(p.paused, p.seekTo), "true 0")
			h.s.resumeIfRoom(p)                            // nothing queued: room, but the seek is not done
			h.s.retrySeeks(time.Now())                     // too early: nothing
			h.s.retrySeeks(time.Now().Add(seekRetryEvery)) // refused again
			h.want("calls while the seek is refused", h.k.calls, []string{"pause 0", "seek 0 0 (refused)", "seek 0 0 (refused)"})
			h.s.retrySeeks(time.Now().Add(2 * seekRetryEvery))
			h.want("calls once the seek is done", h.k.calls, []string{"pause 0", "seek 0 0 (refused)", "seek 0 0 (refused)", "seek 0 0", "resume 0"})
			h.want("read again from", fmt.Sprint(p.next, p.seekTo, p.paused), "0 -1 false")
			h.want("stored", h.k.stores(0), []string(nil))
		}},
		{"a partition given up when the grace runs out is not sought back", func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			h.consume(0, 7)
			h.s.revoke([]batch.TopicPartition{tp(0)}, 50*time.Millisecond)
			h.want("calls of the revoked partition", h.k.calls, []string(nil))
		}},
	} {
		t.Run(tc.name, tc.run)
	}
}

// refusingSeeks refuses the first refuse seeks (librdkafka's Seek returns
// a state error on a partition not in an active fetch state), then seeks.
type refusingSeeks struct {
	*fakeKafka
	refuse int
}

func (k *refusingSeeks) Seek(tp batch.TopicPartition, offset int64) error {
	if k.refuse > 0 {
		k.refuse--
		k.calls = append(k.calls, fmt.Sprintf("seek %d %d (refused)", tp.Partition, offset))
		return errors.New("Local: Erroneous state")
	}
	return k.fakeKafka.Seek(tp, offset)
}

// A record without a Kafka timestamp still counts as pending for
// statesync_oldest_unwritten_seconds (aging from when it was consumed; it
// showed 0, "nothing pending", while such a record waited), and is left
// out of statesync_produce_to_written_seconds.
func TestARecordWithoutATimestampStillAgesInTheOldestUnwrittenGauge(t *testing.T) {
	h := newSchedTest(t, 4, 0)
	id := bson.NewObjectID()
	msg := record.Message{Topic: testTopic, Partition: 0, Offset: 0, Key: []byte(id.Hex()), Value: []byte(`{"payload":{}}`),
		Timestamp: time.UnixMilli(-1)} // librdkafka's "none"
	h.s.add(h.s.parts[tp(0)], record.Record{Msg: msg, ID: id, Doc: bson.Raw{}}, time.Now().Add(-2*time.Second))
	if age, ok := h.oldestUnwritten(0); !ok || age < 1.5 {
		t.Fatalf("oldest unwritten %v (series %v), want ~2 s: the record consumed 2 s ago is pending", age, ok)
	}
	h.s.close(tp(0))
	h.s.dispatch()
	h.settle(h.started(), nil)
	if age, _ := h.oldestUnwritten(0); age != 0 {
		t.Errorf("oldest unwritten %v after the write, want 0", age)
	}
	if n, _ := h.produceToWritten(); n != 0 {
		t.Errorf("the histogram observed %d records without a timestamp, want 0", n)
	}
}

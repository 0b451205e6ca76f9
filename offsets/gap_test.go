package offsets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/test/testenv"
)

// A partition's end past the last record delivered (a transaction's commit
// markers, aborted records) is stored once everything delivered is
// acknowledged: without it the last offset of a transactional topic was
// never stored (lag 1 for ever, an import that never ended).
func TestAPartitionsEndPastItsLastRecordIsStored(t *testing.T) {
	stores := func(h *schedTest) []string { return h.k.stores(0) }
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *schedTest) []string // the stores wanted
	}{
		{"nothing pending: stored at once", func(t *testing.T, h *schedTest) []string {
			h.batch(0, 5) // offsets 0-4
			h.s.dispatch()
			h.settle(h.started(), nil)
			h.s.atEnd(h.s.parts[tp(0)], 6, h.now) // a commit marker at 5
			return []string{"5", "6"}
		}},
		{"a batch being written: stored after its acknowledgement", func(t *testing.T, h *schedTest) []string {
			h.batch(0, 5)
			h.s.dispatch()
			gw := h.started()
			h.s.atEnd(h.s.parts[tp(0)], 6, h.now)
			if got := stores(h); len(got) != 0 {
				t.Fatalf("stored %v while the batch before the gap was being written", got)
			}
			h.settle(gw, nil)
			return []string{"5", "6"}
		}},
		{"an open batch: stored after it is written", func(t *testing.T, h *schedTest) []string {
			h.consume(0, 5)
			h.s.atEnd(h.s.parts[tp(0)], 6, h.now)
			if got := stores(h); len(got) != 0 {
				t.Fatalf("stored %v with the batch before the gap still open", got)
			}
			h.s.close(tp(0))
			h.s.dispatch()
			h.settle(h.started(), nil)
			return []string{"5", "6"}
		}},
		{"an abandoned batch: the gap is forgotten, the records read again", func(t *testing.T, h *schedTest) []string {
			h.batch(0, 5)
			h.s.dispatch()
			gw := h.started()
			h.s.atEnd(h.s.parts[tp(0)], 6, h.now)
			h.settle(gw, errors.New("abandoned"))
			if p := h.s.parts[tp(0)]; p.next != 0 || p.gapTo != -1 {
				t.Fatalf("after the seek back: next %d, gap to %d; want 0 and none", p.next, p.gapTo)
			}
			return nil
		}},
		{"records after the gap: their batch's store covers it", func(t *testing.T, h *schedTest) []string {
			h.batch(0, 5)
			h.s.dispatch()
			gw := h.started()
			h.s.atEnd(h.s.parts[tp(0)], 6, h.now)
			h.next[0] = 6
			h.consume(0, 3) // 6-8, open behind the write
			h.settle(gw, nil)
			h.s.close(tp(0))
			h.s.dispatch()
			h.settle(h.started(), nil)
			return []string{"5", "9"}
		}},
		{"an end at or before what was delivered changes nothing", func(t *testing.T, h *schedTest) []string {
			h.batch(0, 5)
			h.s.dispatch()
			h.settle(h.started(), nil)
			h.s.atEnd(h.s.parts[tp(0)], 5, h.now)
			h.s.atEnd(h.s.parts[tp(0)], 3, h.now)
			return []string{"5"}
		}},
		{"an end with nothing delivered: stored (the partition holds only markers after the start)", func(t *testing.T, h *schedTest) []string {
			h.s.atEnd(h.s.parts[tp(0)], 2, h.now)
			return []string{"2"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newSchedTest(t, 4, 0)
			want := tc.run(t, h)
			if got := stores(h); !slices.Equal(got, want) {
				t.Errorf("stored %v, want %v (calls %v)", got, want, h.k.calls)
			}
		})
	}
}

// newTransactionalFixture is a one-partition topic written by a
// transactional producer: two transactions of five records, each ended by a
// commit marker (offsets 0-4, marker 5, 6-10, marker 11; end offset 12).
func newTransactionalFixture(t *testing.T) *fixture {
	f := &fixture{brokers: testenv.Kafka(t)}
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	f.topic, f.group = "codr.state.tx-"+n, "tx-"+n
	testenv.CreateTopic(t, f.brokers, f.topic, 1, nil)
	var txs [][]testenv.Msg
	for tx := 0; tx < 2; tx++ {
		var msgs []testenv.Msg
		for i := 0; i < 5; i++ {
			id := bson.NewObjectID()
			msgs = append(msgs, testenv.Msg{Key: []byte(id.Hex()), Value: fmt.Appendf(nil, `{"payload":{"tx":%d,"i":%d}}`, tx, i),
				Partition: 0, Explicit: true})
		}
		txs = append(txs, msgs)
	}
	testenv.ProduceTransactions(t, f.brokers, f.topic, txs, func(int) bool { return false })
	f.ends = testenv.EndOffsets(t, f.brokers, f.topic)
	if f.ends[0] != 12 {
		t.Fatalf("end offset %d, want 12 (10 records, 2 commit markers)", f.ends[0])
	}
	return f
}

func TestATransactionalTopicIsImportedToItsEndAndCommittedPastItsMarkers(t *testing.T) {
	f := newTransactionalFixture(t)
	w := newMemoryWriter()
	c, err := New(Options{
		Kafka: map[string]string{"bootstrap.servers": f.brokers}, GroupID: f.group, Subscription: []string{f.topic},
		Batch: batch.Options{MaxDocs: 100, MaxWait: 50 * time.Millisecond}, StopAtEnd: true,
		ShutdownGrace: 10 * time.Second, Log: zaptest.NewLogger(t).Named(f.group),
	}, w)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Run(ctx); err != nil || ctx.Err() != nil { // it stood at offset 11 for ever before
		t.Fatalf("import: %v (context: %v)", err, ctx.Err())
	}
	for _, off := range []int64{0, 4, 6, 10} {
		if !w.has(tp0(f.topic), off) {
			t.Errorf("record %d not written", off)
		}
	}
	if !f.committedAll(t) {
		t.Errorf("committed %v, want the end offsets %v", testenv.Committed(t, f.brokers, f.group, f.topic), f.ends)
	}
}

func TestATransactionalTopicIsCommittedPastItsMarkersWhileRunning(t *testing.T) {
	f := newTransactionalFixture(t)
	c := f.consumer(t, newMemoryWriter())
	stop := run(t, c)
	testenv.Eventually(t, 30*time.Second, "committed to the end offset past the last commit marker", func() bool { return f.committedAll(t) })
	testenv.Eventually(t, 10*time.Second, "no lag left (readiness would call the partition stuck)", func() bool { return c.Status().Lag.Load() == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func tp0(topic string) batch.TopicPartition { return batch.TopicPartition{Topic: topic, Partition: 0} }

package offsets

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/record"
)

// TestAPollThatReturnsNothingHandlesTheWritesThatFinishedFirst: a write
// that finishes while the loop polls frees its partition before the poll's
// closeIdle looks, so the batch that accumulated behind it is closed by that
// poll, not after another poll timeout (up to 100 ms on a quiet partition).
// No broker: librdkafka is pointed at a closed port and never subscribed,
// so Poll returns nothing after its timeout.
func TestAPollThatReturnsNothingHandlesTheWritesThatFinishedFirst(t *testing.T) {
	w, c, s, p := brokerlessConsumer(t, "attack")
	add := func(off int64) {
		id := bson.NewObjectID()
		s.add(p, record.Record{Msg: record.Message{Topic: testTopic, Partition: 0, Offset: off, Key: []byte(id.Hex()),
			Value: []byte(`{}`), Timestamp: time.Now()}, ID: id, Doc: bson.Raw{}}, time.Now())
	}
	add(0)
	s.close(tp(0))
	s.dispatch()
	gw := <-w.started
	add(1) // accumulates behind the write
	c.handed = false
	gw.result <- nil // the write completes while the loop polls
	time.Sleep(5 * time.Millisecond)
	// Poll(10) until it returns nothing (librdkafka may first report the
	// closed port): the finished write is handled, then closeIdle.
	for i := 0; i < 100 && c.poll() != nil; i++ {
	}
	s.drain(time.Now())
	s.dispatch()
	select {
	case <-w.started: // dispatch starts it in a goroutine of its own
	case <-time.After(5 * time.Second): // never, without the fix: the batch's max wait is 30 s
		t.Errorf("the quiet partition's open batch was not written after the poll that found nothing: it waits another poll timeout")
	}
}

// How long a poll may wait: briefly while something needs the loop (a write
// in flight, an open batch's close, a refused seek's retry), idlePollMs
// when nothing does (an idle sidecar wakes the Go runtime less often).
func TestAPollWaitsLongOnlyWhenNothingNeedsTheLoop(t *testing.T) {
	w, c, s, p := brokerlessConsumer(t, "idle")
	if got := c.pollTimeout(); got != idlePollMs {
		t.Errorf("nothing open, written or retried: %d ms, want %d", got, idlePollMs)
	}
	id := bson.NewObjectID()
	s.add(p, record.Record{Msg: record.Message{Topic: testTopic, Partition: 0, Offset: 0, Key: []byte(id.Hex()),
		Value: []byte(`{}`), Timestamp: time.Now()}, ID: id, Doc: bson.Raw{}}, time.Now())
	if got := c.pollTimeout(); got > 100 {
		t.Errorf("an open batch: %d ms, want ≤ 100", got)
	}
	s.close(tp(0))
	s.dispatch()
	gw := <-w.started
	if got := c.pollTimeout(); got != 10 {
		t.Errorf("a write in flight: %d ms, want 10", got)
	}
	gw.result <- nil
	waitFor(t, "the write's completion handled", func() bool { s.drain(time.Now()); return s.inflight == 0 })
	if got := c.pollTimeout(); got != idlePollMs {
		t.Errorf("the write done: %d ms, want %d", got, idlePollMs)
	}
	s.seekRetryAt = time.Now().Add(100 * time.Millisecond) // a refused seek back waits for its retry
	if got := c.pollTimeout(); got != 100 {
		t.Errorf("a seek to retry: %d ms, want 100", got)
	}
}

// An import waits AssignTimeout for its first assignment, and again after
// losing its partitions: a session that timed out on a loaded machine made
// the import end at once ("no partition assigned within 1m0s") because the
// wait was counted from the subscription.
func TestAnImportThatLosesItsPartitionsWaitsForThemAgain(t *testing.T) {
	o := Options{AssignTimeout: time.Minute, GroupID: "g", Subscription: []string{"codr.state.user"}}
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var u unassignedClock
	steps := []struct {
		s, parts int
		err      string // "": no error
	}{
		{0, 0, ""}, {59, 0, ""}, // waiting for the first assignment
		{60, 4, ""}, {200, 4, ""}, // reading
		{201, 0, ""}, {260, 0, ""}, // lost at 201 (well over a minute after subscribing): waits again
		{261, 4, ""},                                                                 // assigned again
		{300, 0, ""}, {361, 0, "partitions lost and not assigned again within 1m0s"}, // lost for good
	}
	for _, st := range steps {
		err := u.check(st.parts, at(st.s), o)
		switch {
		case st.err == "" && err != nil:
			t.Fatalf("at %d s with %d partitions: %v, want none", st.s, st.parts, err)
		case st.err != "" && (err == nil || !strings.Contains(err.Error(), st.err)):
			t.Fatalf("at %d s with %d partitions: %v, want %q", st.s, st.parts, err, st.err)
		}
	}
	var first unassignedClock
	if err := first.check(0, at(0), o); err != nil {
		t.Fatal(err)
	}
	if err := first.check(0, at(61), o); err == nil || !strings.Contains(err.Error(), "no partition assigned within 1m0s: no topic matches [codr.state.user]") {
		t.Fatalf("never assigned: %v", err)
	}
}

// brokerlessConsumer is a consumer pointed at a closed port (never
// subscribed: Poll returns nothing after its timeout) writing through a
// gated writer, with partition 0 of the test topic assigned.
func brokerlessConsumer(t *testing.T, group string) (*gatedWriter, *Consumer, *scheduler, *partition) {
	w := &gatedWriter{started: make(chan *gatedWrite, 8)}
	c, err := New(Options{Kafka: map[string]string{"bootstrap.servers": "127.0.0.1:1"}, GroupID: group,
		Batch: batch.Options{MaxDocs: 1000, MaxWait: 30 * time.Second}, Log: zaptest.NewLogger(t),
		Metrics: metrics.New(prometheus.NewRegistry())}, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(5 * time.Second) })
	p := c.sched.assign(tp(0), 0, -1)
	t.Cleanup(p.cancel)
	return w, c, c.sched, p
}

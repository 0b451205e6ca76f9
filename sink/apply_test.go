package sink

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/record"
)

// fakeWriter fails writes of batches holding a poisoned id, and fails every
// write while down.
type fakeWriter struct {
	mu      sync.Mutex
	down    bool
	breaks  map[bson.ObjectID]bool // a batch holding one of these fails, as FerretDB does on Decimal128
	rejects map[bson.ObjectID]bool
	written map[bson.ObjectID]bool
	calls   int
}

func (f *fakeWriter) Write(_ context.Context, _ string, recs []record.Record) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return Result{}, &RecoverableError{Err: errors.New("connection refused")}
	}
	for _, r := range recs {
		if f.breaks[r.ID] {
			return Result{}, &RecoverableError{Err: errors.New("connection reset by peer")}
		}
	}
	var res Result
	for i, r := range recs {
		if f.rejects[r.ID] {
			res.Rejected = append(res.Rejected, Rejection{Index: i, Err: &record.PoisonError{Class: record.ClassRejected, Err: errors.New("validation")}})
			continue
		}
		f.written[r.ID] = true
		res.Upserted++
	}
	return res, nil
}

func (f *fakeWriter) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("down")
	}
	return nil
}

type fakeDLT struct {
	mu      sync.Mutex
	letters map[int64]string // offset → class
}

func (d *fakeDLT) DeadLetter(_ context.Context, m record.Message, cause *record.PoisonError) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.letters[m.Offset] = cause.Class
	return nil
}

func testBatch(n int) *batch.Batch {
	b := &batch.Batch{TopicPartition: batch.TopicPartition{Topic: "codr.state.user"}, FirstOffset: 0, LastOffset: int64(n - 1), Consumed: n}
	for i := 0; i < n; i++ {
		id := bson.NewObjectID()
		b.Records = append(b.Records, record.Record{ID: id, Msg: record.Message{Topic: "codr.state.user", Offset: int64(i)}})
	}
	return b
}

func newFakes() (*fakeWriter, *fakeDLT) {
	return &fakeWriter{breaks: map[bson.ObjectID]bool{}, rejects: map[bson.ObjectID]bool{}, written: map[bson.ObjectID]bool{}},
		&fakeDLT{letters: map[int64]string{}}
}

func fastOptions() ApplyOptions {
	return ApplyOptions{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, UnwritableAfter: 3}
}

func TestApplyIsolatesARecordThatBreaksItsBatchWhileMongoIsHealthy(t *testing.T) {
	w, d := newFakes()
	b := testBatch(37)
	w.breaks[b.Records[21].ID] = true
	out, err := NewApplier(w, d, fastOptions()).Apply(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Written != 36 || out.DeadLettered != 1 {
		t.Errorf("outcome = %+v, want 36 written and 1 dead-lettered", out)
	}
	if d.letters[21] != record.ClassUnwritable || len(d.letters) != 1 {
		t.Errorf("dead letters = %v, want offset 21 as unwritable", d.letters)
	}
	for i, r := range b.Records {
		if i != 21 && !w.written[r.ID] {
			t.Errorf("record %d not written", i)
		}
	}
}

func TestApplySendsRejectedDocumentsToTheDeadLetterTopic(t *testing.T) {
	w, d := newFakes()
	b := testBatch(5)
	w.rejects[b.Records[3].ID] = true
	b.Poison = []batch.Poison{{Msg: record.Message{Offset: 99}, Err: &record.PoisonError{Class: record.ClassInvalidJSON, Err: errors.New("x")}}}
	out, err := NewApplier(w, d, fastOptions()).Apply(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Written != 4 || out.DeadLettered != 2 || d.letters[3] != record.ClassRejected || d.letters[99] != record.ClassInvalidJSON {
		t.Errorf("outcome = %+v, letters = %v", out, d.letters)
	}
}

func TestApplyRetriesWhileMongoIsDownAndNeverDeadLetters(t *testing.T) {
	w, d := newFakes()
	w.down = true
	var ups []bool
	var mu sync.Mutex
	o := fastOptions()
	o.Health = func(up bool) { mu.Lock(); ups = append(ups, up); mu.Unlock() }
	go func() {
		time.Sleep(100 * time.Millisecond)
		w.mu.Lock()
		w.down = false
		w.mu.Unlock()
	}()
	b := testBatch(10)
	out, err := NewApplier(w, d, o).Apply(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Written != 10 || len(d.letters) != 0 {
		t.Errorf("outcome = %+v, letters = %v", out, d.letters)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ups) < 2 || ups[0] || !ups[len(ups)-1] {
		t.Errorf("health reports = %v, want down first and up last", ups)
	}
	if w.calls < 3 {
		t.Errorf("only %d write attempts", w.calls)
	}
}

func TestApplyIsAbandonedWhenItsContextEnds(t *testing.T) {
	w, d := newFakes()
	w.down = true
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := NewApplier(w, d, fastOptions()).Apply(ctx, testBatch(3))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's error", err)
	}
	if len(d.letters) != 0 {
		t.Errorf("dead letters while MongoDB was down: %v", d.letters)
	}
}

// wedgedWriter answers pings but fails every write until healed, as
// FerretDB does when its connection pool is exhausted.
type wedgedWriter struct {
	*fakeWriter
	healAfter int
}

func (w *wedgedWriter) Write(ctx context.Context, coll string, recs []record.Record) (Result, error) {
	w.mu.Lock()
	w.healAfter--
	wedged := w.healAfter > 0
	w.mu.Unlock()
	if wedged {
		return Result{}, &RecoverableError{Err: errors.New("incomplete read of message header")}
	}
	return w.fakeWriter.Write(ctx, coll, recs)
}

func TestAWedgedServerThatAnswersPingsDeadLettersNothing(t *testing.T) {
	fw, d := newFakes()
	w := &wedgedWriter{fakeWriter: fw, healAfter: 60}
	b := testBatch(8)
	out, err := NewApplier(w, d, fastOptions()).Apply(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.letters) != 0 {
		t.Errorf("dead-lettered %v while every write failed", d.letters)
	}
	if out.Written != 8 {
		t.Errorf("written %d after the server healed, want 8", out.Written)
	}
}

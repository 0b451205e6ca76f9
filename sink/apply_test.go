package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/record"
)

// fakeWriter fails writes of batches holding a poisoned id, and fails every
// write (canaries included) while down or while their collection is locked.
type fakeWriter struct {
	mu       sync.Mutex
	down     bool
	locked   map[string]bool        // collections whose writes all fail, as under LOCK TABLE
	timeout  map[bson.ObjectID]bool // a batch holding one of these times out
	canaries int
	breaks   map[bson.ObjectID]bool // a batch holding one of these fails, as FerretDB does on Decimal128
	rejects  map[bson.ObjectID]bool
	written  map[bson.ObjectID]bool
	at       map[bson.ObjectID]int64 // offset of the record last written, by key
	// by offset: a batch holding one fails (breakAt) or the record is refused (rejectAt)
	breakAt, rejectAt map[int64]bool
	calls             int
}

func (f *fakeWriter) Write(_ context.Context, coll string, recs []record.Record) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return Result{}, errors.New("connection refused")
	}
	if f.locked[coll] {
		return Result{}, errors.New("(InternalError) canceling statement due to lock timeout")
	}
	for _, r := range recs {
		if f.timeout[r.ID] {
			return Result{}, fmt.Errorf("bulk write: %w", context.DeadlineExceeded)
		}
	}
	for _, r := range recs {
		if f.breaks[r.ID] || f.breakAt[r.Msg.Offset] {
			return Result{}, errors.New("connection reset by peer")
		}
	}
	var res Result
	for i, r := range recs {
		if f.rejects[r.ID] || f.rejectAt[r.Msg.Offset] {
			res.Rejected = append(res.Rejected, Rejection{Index: i, Err: &record.PoisonError{Class: record.ClassRejected, Err: errors.New("validation")}})
			continue
		}
		f.written[r.ID] = true
		f.at[r.ID] = r.Msg.Offset
		res.Upserted++
	}
	return res, nil
}

func (f *fakeWriter) Canary(_ context.Context, coll string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canaries++
	if f.down || f.locked[coll] {
		return errors.New("canary failed")
	}
	return nil
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
	return &fakeWriter{breaks: map[bson.ObjectID]bool{}, rejects: map[bson.ObjectID]bool{}, written: map[bson.ObjectID]bool{},
			locked: map[string]bool{}, timeout: map[bson.ObjectID]bool{},
			at: map[bson.ObjectID]int64{}, breakAt: map[int64]bool{}, rejectAt: map[int64]bool{}},
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
		return Result{}, errors.New("incomplete read of message header")
	}
	return w.fakeWriter.Write(ctx, coll, recs)
}

func (w *wedgedWriter) Canary(ctx context.Context, coll string) error {
	w.mu.Lock()
	wedged := w.healAfter > 0
	w.mu.Unlock()
	if wedged {
		return errors.New("incomplete read of message header")
	}
	return w.fakeWriter.Canary(ctx, coll)
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

// Regression: a fault confined to one collection (a PostgreSQL table
// lock under FerretDB) while other collections' writes succeed dead-lettered
// every record written to the locked one.
func TestALockedCollectionDeadLettersNothingWhileOtherCollectionsAreWritten(t *testing.T) {
	w, d := newFakes()
	w.locked["codr.state.user"] = true
	a := NewApplier(w, d, fastOptions())
	done := make(chan error, 1)
	b := testBatch(8)
	go func() { _, err := a.Apply(context.Background(), b); done <- err }()
	other := testBatch(4)
	for i := range other.Records {
		other.Records[i].Msg.Topic = "codr.state.order"
	}
	other.Topic = "codr.state.order"
	for range 50 { // the other collection keeps being written meanwhile
		if _, err := a.Apply(context.Background(), other); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	w.mu.Lock()
	w.locked["codr.state.user"] = false
	w.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(d.letters) != 0 {
		t.Errorf("dead-lettered %v during a lock of their collection", d.letters)
	}
	for i, r := range b.Records {
		if !w.written[r.ID] {
			t.Errorf("record %d not written after the lock", i)
		}
	}
}

// Regression: a lone record that the server always refuses, on a quiet
// partition (nothing else writing), retried for ever.
func TestALoneBadRecordOnAQuietPartitionIsDeadLetteredInBoundedTime(t *testing.T) {
	w, d := newFakes()
	b := testBatch(1)
	w.breaks[b.Records[0].ID] = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := NewApplier(w, d, fastOptions()).Apply(ctx, b)
	if err != nil {
		t.Fatalf("not isolated within 5 s: %v", err)
	}
	if out.DeadLettered != 1 || d.letters[0] != record.ClassUnwritable {
		t.Errorf("outcome %+v, letters %v: want the record dead-lettered as unwritable", out, d.letters)
	}
	if w.canaries < fastOptions().UnwritableAfter {
		t.Errorf("%d canary writes, want one after each of %d failures", w.canaries, fastOptions().UnwritableAfter)
	}
}

func TestATimeoutIsNeverTheRecordsFault(t *testing.T) {
	w, d := newFakes()
	b := testBatch(3)
	w.timeout[b.Records[1].ID] = true
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := NewApplier(w, d, fastOptions()).Apply(ctx, b)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the batch still retrying when the context ended", err)
	}
	if len(d.letters) != 0 {
		t.Errorf("dead-lettered %v for timeouts", d.letters)
	}
	if w.calls < 5 {
		t.Errorf("only %d attempts in 300 ms", w.calls)
	}
}

func TestTheGoodRecordsOfABatchAreWrittenBeforeItsPoisonIsDeadLettered(t *testing.T) {
	w, _ := newFakes()
	b := testBatch(2)
	b.Poison = []batch.Poison{{Msg: record.Message{Offset: 2}, Err: &record.PoisonError{Class: record.ClassInvalidJSON, Err: errors.New("x")}}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := NewApplier(w, unreachableDLT{}, fastOptions()).Apply(ctx, b)
	if err == nil {
		t.Fatal("Apply returned nil with the dead-letter topic unreachable: the batch would be committed")
	}
	for i, r := range b.Records {
		if !w.written[r.ID] {
			t.Errorf("good record %d not written while the dead letter waits", i)
		}
	}
}

type unreachableDLT struct{}

func (unreachableDLT) DeadLetter(context.Context, record.Message, *record.PoisonError) error {
	return errors.New("Broker: Unknown topic or partition")
}

// Retries are not logged one by one: a MongoDB outage is one line when the
// collection's writes start failing and one when they pass again (each
// retry only at debug level).
func TestFailingWritesAreLoggedWhenTheyStartAndStopNotPerRetry(t *testing.T) {
	w, d := newFakes()
	w.down = true
	core, logs := observer.New(zapcore.InfoLevel)
	o := fastOptions()
	o.Log = zap.New(core)
	go func() {
		time.Sleep(200 * time.Millisecond)
		w.mu.Lock()
		w.down = false
		w.mu.Unlock()
	}()
	if _, err := NewApplier(w, d, o).Apply(context.Background(), testBatch(10)); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
	}
	if w.calls < 10 {
		t.Fatalf("only %d write attempts: the outage was too short to show anything", w.calls)
	}
	if len(msgs) != 2 || !strings.Contains(msgs[0], "fail; retried with backoff") || !strings.Contains(msgs[1], "succeed again") {
		t.Errorf("%d write attempts logged %d lines, want 2 (failing, succeeding again): %q", w.calls, len(msgs), msgs)
	}
}

// Regression: a later record of a key that the server refused (or that was
// proven unwritable) was dead-lettered and the key's earlier records, dropped
// by the collapse, were lost; one by one they stay written.
func TestADeadLetteredRecordLeavesWhatItsKeysOtherRecordsWouldOneByOne(t *testing.T) {
	id := bson.NewObjectID()
	day := func(d int) time.Time { return time.Date(2025, 1, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name            string
		days            []int // processedAt of offsets 0, 1, 2 (0: none)
		breakAt, reject map[int64]bool
		want            int64 // offset stored after the batch, -1: nothing
		letters         int
	}{
		{"the record before an unwritable one stays", []int{1, 2}, map[int64]bool{1: true}, nil, 0, 1},
		{"the record before a refused one stays", []int{1, 2}, nil, map[int64]bool{1: true}, 0, 1},
		{"after a refused newest record the guard picks among the others", []int{1, 3, 2}, nil, map[int64]bool{1: true}, 2, 1},
		{"an older record after the refused one loses to the one before it", []int{2, 3, 1}, nil, map[int64]bool{1: true}, 0, 1},
		{"every record refused leaves nothing", []int{1, 2}, nil, map[int64]bool{0: true, 1: true}, -1, 2},
		{"a record the collapse dropped is never sent, so never dead-lettered", []int{1, 2}, nil, map[int64]bool{0: true}, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, d := newFakes()
			for k, v := range tc.breakAt {
				w.breakAt[k] = v
			}
			for k, v := range tc.reject {
				w.rejectAt[k] = v
			}
			acc := batch.New(batch.Options{StaleGuard: true})
			for off, dd := range tc.days {
				r := record.Record{ID: id, Msg: record.Message{Topic: "codr.state.user", Offset: int64(off)}}
				if dd > 0 {
					r.ProcessedAt = day(dd)
				}
				acc.Add(r, time.Now())
			}
			b := acc.TakeAll()[0]
			out, err := NewApplier(w, d, fastOptions()).Apply(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			got := int64(-1)
			if w.written[id] {
				got = w.at[id]
			}
			if got != tc.want || len(d.letters) != tc.letters || out.DeadLettered != tc.letters {
				t.Errorf("stored offset %d, dead letters %v (%d counted), want offset %d and %d letters", got, d.letters, out.DeadLettered, tc.want, tc.letters)
			}
		})
	}
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/test/testenv"
)

// expect is the latest record of one key, as produced.
type expect struct {
	seq       int
	deleted   bool // the latest record is a tombstone
	at        time.Time
	partition int32 // -1: chosen by the producer's partitioner
}

// stream generates state records with globally increasing seq and processedAt, so the latest
// record of a key is the last one generated for it and every later record is newer.
type stream struct {
	rng  *rand.Rand
	keys []bson.ObjectID
	base time.Time
	next int
	want map[bson.ObjectID]expect
}

func newStream(seed uint64, keys int) *stream {
	s := &stream{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), want: map[bson.ObjectID]expect{},
		base: time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Millisecond)}
	s.keys = make([]bson.ObjectID, keys)
	for i := range s.keys {
		s.keys[i] = bson.NewObjectID()
	}
	return s
}

func (s *stream) at(seq int) time.Time { return s.base.Add(time.Duration(seq) * time.Millisecond) }

func traceID(seq int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", seq) }

func pad(id bson.ObjectID, seq int) string {
	return strings.Repeat(fmt.Sprintf("%s/%d;", id.Hex()[18:], seq%97), 8)
}

// record is the state message of key id at seq: about 40% carry their IMessage headers inside the
// envelope shape instead of as Kafka headers, the rest are record-only with Kafka headers.
func (s *stream) record(id bson.ObjectID, seq int) testenv.Msg {
	at := s.at(seq).Format(time.RFC3339Nano)
	payload := fmt.Sprintf(`{"_id":{"$oid":"%s"},"seq":%d,"name":"entity %s v%d","nested":{"k":%d,"tags":["a","b%d"]},"at":{"$date":"%s"},"pad":"%s"}`,
		id.Hex(), seq, id.Hex(), seq, seq%7, seq%3, at, pad(id, seq))
	if seq%5 < 2 {
		return testenv.Msg{Key: []byte(id.Hex()), Value: fmt.Appendf(nil,
			`{"headers":{"key":"%s","traceId":"%s","processedAt":"%s"},"record":{"payload":%s}}`, id.Hex(), traceID(seq), at, payload)}
	}
	return testenv.Msg{Key: []byte(id.Hex()), Value: fmt.Appendf(nil, `{"payload":%s}`, payload),
		Headers: map[string]string{"key": id.Hex(), "traceId": traceID(seq), "processedAt": at}}
}

func (s *stream) tombstone(id bson.ObjectID, seq int) testenv.Msg {
	return testenv.Msg{Key: []byte(id.Hex()), Headers: map[string]string{"key": id.Hex(), "traceId": traceID(seq),
		"processedAt": s.at(seq).Format(time.RFC3339Nano)}}
}

// gen returns n records over random keys; tombstonePct of them delete their key.
func (s *stream) gen(n int, tombstonePct int) []testenv.Msg {
	msgs := make([]testenv.Msg, 0, n)
	for range n {
		id := s.keys[s.rng.IntN(len(s.keys))]
		msgs = append(msgs, s.add(id, tombstonePct > 0 && s.rng.IntN(100) < tombstonePct))
	}
	return msgs
}

// genKeys returns one record for each of the given keys, in order.
func (s *stream) genKeys(keys []bson.ObjectID) []testenv.Msg {
	msgs := make([]testenv.Msg, 0, len(keys))
	for _, id := range keys {
		msgs = append(msgs, s.add(id, false))
	}
	return msgs
}

func (s *stream) add(id bson.ObjectID, tombstone bool) testenv.Msg {
	seq := s.next
	s.next++
	if tombstone {
		s.want[id] = expect{seq: seq, deleted: true, at: s.at(seq), partition: -1}
		return s.tombstone(id, seq)
	}
	s.want[id] = expect{seq: seq, at: s.at(seq), partition: -1}
	return s.record(id, seq)
}

// live is the number of keys whose latest record is not a tombstone.
func (s *stream) live() int {
	n := 0
	for _, e := range s.want {
		if !e.deleted {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------------------------
// producing in the background, while statesync syncs

// produceAsync produces msgs in chunks, pausing between chunks, on its own goroutine; wait
// returns the first error. The producer is idempotent with acks=all, so per-key order holds.
func produceAsync(brokers, topic string, msgs []testenv.Msg, chunk int, pause time.Duration) (wait func() error) {
	errc := make(chan error, 1)
	go func() { errc <- testenv.ProducePaced(brokers, topic, msgs, chunk, pause) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			select {
			case err = <-errc:
			case <-time.After(5 * time.Minute):
				err = errors.New("background producer did not finish within 5 minutes")
			}
		})
		return err
	}
}

// ---------------------------------------------------------------------------------------------
// checking the database against the stream

// stored is a synced document as statesync writes it.
type stored struct {
	ID     bson.ObjectID `bson:"_id"`
	Seq    int64         `bson:"seq"`
	Name   string        `bson:"name"`
	Nested struct {
		K    int64    `bson:"k"`
		Tags []string `bson:"tags"`
	} `bson:"nested"`
	At   time.Time `bson:"at"`
	Pad  string    `bson:"pad"`
	Sync struct {
		Topic       string    `bson:"topic"`
		Partition   int32     `bson:"partition"`
		Offset      int64     `bson:"offset"`
		ProcessedAt time.Time `bson:"processedAt"`
		TraceID     string    `bson:"traceId"`
	} `bson:"_sync"`
}

// readAll returns every document of the scenario's collection by _id.
func (s *scenario) readAll() (map[bson.ObjectID]stored, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cur, err := s.collection().Find(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	out := map[bson.ObjectID]stored{}
	for cur.Next(ctx) {
		var d stored
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("decode %s: %w", cur.Current, err)
		}
		if _, dup := out[d.ID]; dup {
			return nil, fmt.Errorf("_id %s returned twice", d.ID.Hex())
		}
		out[d.ID] = d
	}
	return out, cur.Err()
}

// diff is the result of comparing the database with the latest record per key.
type diff struct {
	docs, live            int
	lost, extra, diverged int
	examples              []string
}

func (d diff) ok() bool { return d.lost == 0 && d.extra == 0 && d.diverged == 0 }

func (d diff) String() string {
	return fmt.Sprintf("%d documents for %d live keys: %d lost, %d extra, %d diverged %v", d.docs, d.live, d.lost, d.extra, d.diverged, d.examples)
}

// compare checks every document against the latest record of its key: content (every payload
// field), sync metadata (topic, processedAt, traceId), no document for deleted or unknown keys.
func compare(topic string, want map[bson.ObjectID]expect, s *stream, docs map[bson.ObjectID]stored) diff {
	var d diff
	d.docs = len(docs)
	note := func(format string, args ...any) {
		if len(d.examples) < 5 {
			d.examples = append(d.examples, fmt.Sprintf(format, args...))
		}
	}
	for id, e := range want {
		doc, ok := docs[id]
		if e.deleted {
			if ok {
				d.extra++
				note("%s: deleted at seq %d but holds seq %d", id.Hex(), e.seq, doc.Seq)
			}
			continue
		}
		d.live++
		if !ok {
			d.lost++
			note("%s: missing, want seq %d", id.Hex(), e.seq)
			continue
		}
		if why := mismatch(topic, id, e, s, doc); why != "" {
			d.diverged++
			note("%s: %s", id.Hex(), why)
		}
	}
	for id, doc := range docs {
		if _, ok := want[id]; !ok {
			d.extra++
			note("%s: not produced, holds seq %d", id.Hex(), doc.Seq)
		}
	}
	return d
}

func mismatch(topic string, id bson.ObjectID, e expect, s *stream, doc stored) string {
	seq := e.seq
	switch {
	case doc.Seq != int64(seq):
		return fmt.Sprintf("seq %d, want %d", doc.Seq, seq)
	case doc.Name != fmt.Sprintf("entity %s v%d", id.Hex(), seq):
		return fmt.Sprintf("name %q", doc.Name)
	case doc.Nested.K != int64(seq%7) || len(doc.Nested.Tags) != 2 || doc.Nested.Tags[0] != "a" || doc.Nested.Tags[1] != fmt.Sprintf("b%d", seq%3):
		return fmt.Sprintf("nested %+v", doc.Nested)
	case !doc.At.Equal(s.at(seq)):
		return fmt.Sprintf("at %s, want %s", doc.At, s.at(seq))
	case doc.Pad != pad(id, seq):
		return "pad differs"
	case doc.Sync.Topic != topic:
		return fmt.Sprintf("_sync.topic %q", doc.Sync.Topic)
	case !doc.Sync.ProcessedAt.Equal(e.at):
		return fmt.Sprintf("_sync.processedAt %s, want %s", doc.Sync.ProcessedAt, e.at)
	case doc.Sync.TraceID != traceID(seq):
		return fmt.Sprintf("_sync.traceId %q", doc.Sync.TraceID)
	case e.partition >= 0 && doc.Sync.Partition != e.partition:
		return fmt.Sprintf("_sync.partition %d, want %d", doc.Sync.Partition, e.partition)
	}
	return ""
}

// waitCommitted waits until the group's committed offsets equal the topic's end offsets on every
// partition, checking that every process in procs keeps running.
func (s *scenario) waitCommitted(timeout time.Duration, procs ...*proc) map[int32]int64 {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var ends, committed map[int32]int64
	for {
		ends = testenv.EndOffsets(s.t, s.brokers, s.topic)
		committed = testenv.Committed(s.t, s.brokers, s.group, s.topic)
		if equalOffsets(ends, committed) {
			return ends
		}
		for _, p := range procs {
			if !p.running() {
				s.t.Fatalf("%s exited (%v) before the group committed the end offsets: committed %v, end %v", p.name, p.exit, committed, ends)
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("committed offsets %v did not reach the end offsets %v within %s", committed, ends, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func equalOffsets(ends, committed map[int32]int64) bool {
	if len(ends) == 0 || len(ends) != len(committed) {
		return false
	}
	for p, e := range ends {
		if committed[p] != e && !(e == 0 && committed[p] == -1) {
			return false
		}
	}
	return true
}

// checkExact compares the database with the stream; it returns the diff and reports a mismatch.
func (s *scenario) checkExact(st *stream) diff {
	s.t.Helper()
	docs, err := s.readAll()
	if err != nil {
		s.t.Fatalf("read %s.%s: %v", s.db, s.entity, err)
	}
	d := compare(s.topic, st.want, st, docs)
	if !d.ok() {
		s.t.Errorf("database differs from the latest record per key: %s", d)
	} else {
		s.t.Logf("database exact: %s", d)
	}
	return d
}

func sumOffsets(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += max(v, 0)
	}
	return n
}

// report logs a scenario's figures in one greppable line.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURES %s: %s", t.Name(), fmt.Sprintf(format, args...))
}

var _ = testing.Verbose

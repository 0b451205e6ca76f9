package e2e

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/test/testenv"
)

// foreignLetter is a dead letter written by another Codr service in the guide's IDeadLetterMessage
// shape (with the guide's spelling "partion", no recordEncoding), whose original record is valid.
func foreignLetter(origin string, m testenv.Msg, offset int, at time.Time) testenv.Msg {
	v := fmt.Appendf(nil, `{"headers":{"key":"%s","traceId":"%s","processedAt":"%s","stream":"state","topic":"%s","partion":0,"offset":%d},"record":%s}`,
		m.Headers["key"], m.Headers["traceId"], m.Headers["processedAt"], origin, offset, m.Value)
	return testenv.Msg{Key: m.Key, Value: v, Headers: map[string]string{"error.class": "rejected", "error.message": "hotfixed since",
		"error.at": at.UTC().Format(time.RFC3339Nano)}}
}

// recordOnly adds a record of id to the stream in the record-only shape (headers as Kafka headers)
// and takes it out of the stream's expectations: it reaches the database only through a replay.
func (st *stream) recordOnly(id bson.ObjectID, pending map[bson.ObjectID]expect) testenv.Msg {
	for st.next%5 < 2 {
		st.next++
	}
	m := st.add(id, false)
	pending[id] = st.want[id]
	delete(st.want, id)
	return m
}

func (s *scenario) dltReplay(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	p := s.start(name, nil, append([]string{"dlt", "replay"}, args...)...)
	code, err := p.wait(2 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	out := p.stdout()
	t.Logf("statesync dlt replay %s → exit %d: %s", strings.Join(args, " "), code, lastLine(out))
	return code, out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func countPrefix(out, prefix string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestDeadLetterReplay: `statesync dlt replay` lists with --dry-run and changes nothing; filters by
// --topic, --since and --until; re-publishes dead letters to their origin topic with the original
// key, value and IMessage headers (still-poison records come back to the DLT, valid ones — here
// dead letters written by another service in the guide's format — reach the database); replaying
// twice leaves the database the same; --to-mongo writes valid originals straight into MongoDB,
// idempotently, and fails (exit 1) on records that are still poison.
func TestDeadLetterReplay(t *testing.T) {
	start := time.Now()
	s := newScenario(t, 2, nil)
	st := newStream(9, scaled(200))
	msgs := st.gen(scaled(1000), 0)
	const poison = 4
	for i := range poison {
		id := bson.NewObjectID()
		msgs = append(msgs, testenv.Msg{Key: []byte(id.Hex()), Value: []byte(`{"payload":{"when":{"$date":"yesterday"}}}`),
			Headers: map[string]string{"key": id.Hex(), "traceId": fmt.Sprintf("badda7e0-0000-4000-8000-%012d", i), "processedAt": st.at(st.next).Format(time.RFC3339Nano)}})
	}
	testenv.Produce(t, s.brokers, s.topic, msgs)
	run := s.start("replay-run", nil, "run")
	s.waitCommitted(2*time.Minute, run)
	s.checkExact(st)
	if n := sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt)); n != poison {
		t.Fatalf("%d dead letters, want %d", n, poison)
	}

	// dead letters of valid records from another service: three recent, two from three days ago,
	// and one recent from another origin topic
	now := time.Now()
	recent, old := map[bson.ObjectID]expect{}, map[bson.ObjectID]expect{}
	var foreign []testenv.Msg
	originals := map[string]testenv.Msg{} // by traceId
	for i := range 5 {
		pending, at := recent, now.Add(-time.Minute)
		if i >= 3 {
			pending, at = old, now.Add(-72*time.Hour)
		}
		m := st.recordOnly(bson.NewObjectID(), pending)
		originals[m.Headers["traceId"]] = m
		foreign = append(foreign, foreignLetter(s.topic, m, 100+i, at))
	}
	other := st.recordOnly(bson.NewObjectID(), map[bson.ObjectID]expect{})
	foreign = append(foreign, foreignLetter("codr.state.e2e-other", other, 7, now))
	testenv.Produce(t, s.brokers, s.dlt, foreign)
	originEnd := testenv.EndOffsets(t, s.brokers, s.topic)
	docsBefore, _ := s.readAll()

	// --dry-run and the filters
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--dry-run"}, poison + 6},
		{[]string{"--dry-run", "--topic", s.topic}, poison + 5},
		{[]string{"--dry-run", "--topic", s.topic, "--since", "48h"}, poison + 3},
		{[]string{"--dry-run", "--topic", s.topic, "--until", "48h"}, 2},
		{[]string{"--dry-run", "--topic", s.topic, "--since", now.Add(-96 * time.Hour).UTC().Format(time.RFC3339), "--until", now.Add(-48 * time.Hour).UTC().Format(time.RFC3339)}, 2},
		{[]string{"--dry-run", "--topic", "codr.state.e2e-other"}, 1},
	} {
		code, out := s.dltReplay(t, "dry-run", c.args...)
		if got := countPrefix(out, "would replay "); code != 0 || got != c.want {
			t.Errorf("dlt replay %v: exit %d, %d would be replayed, want exit 0 and %d:\n%s", c.args, code, got, c.want, out)
		}
		if !strings.Contains(out, "dry run: nothing changed") {
			t.Errorf("dlt replay %v: no dry-run note in %q", c.args, lastLine(out))
		}
	}
	if got := testenv.EndOffsets(t, s.brokers, s.topic); !reflect.DeepEqual(got, originEnd) {
		t.Errorf("dry runs changed the origin topic: end offsets %v, were %v", got, originEnd)
	}
	if docs, _ := s.readAll(); !reflect.DeepEqual(docs, docsBefore) {
		t.Errorf("dry runs changed the database: %d documents, were %d", len(docs), len(docsBefore))
	}

	// re-publish the recent ones: the four still poison, the three foreign valid ones
	dltBefore := sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt))
	code, out := s.dltReplay(t, "replay-1", "--topic", s.topic, "--since", "48h")
	if code != 0 || countPrefix(out, "replay ") != poison+3 {
		t.Errorf("replay: exit %d, %d replayed, want 0 and %d:\n%s", code, countPrefix(out, "replay "), poison+3, out)
	}
	// they are back in the origin topic with the original key, value and IMessage headers
	back := 0
	for _, m := range testenv.ReadAll(t, s.brokers, s.topic) {
		if int64(m.TopicPartition.Offset) < originEnd[m.TopicPartition.Partition] {
			continue
		}
		back++
		o, ok := originals[header(m.Headers, "traceId")]
		if !ok {
			continue // a poison record
		}
		if !bytes.Equal(m.Key, o.Key) || !bytes.Equal(m.Value, o.Value) || header(m.Headers, "processedAt") != o.Headers["processedAt"] ||
			header(m.Headers, "key") != o.Headers["key"] {
			t.Errorf("replayed %s differs from its original:\n got key %s value %s headers %v\nwant key %s value %s headers %v",
				o.Headers["traceId"], m.Key, m.Value, m.Headers, o.Key, o.Value, o.Headers)
		}
	}
	if back != poison+3 {
		t.Errorf("%d records re-published to %s, want %d", back, s.topic, poison+3)
	}
	for id, e := range recent {
		st.want[id] = e
	}
	s.waitCommitted(2*time.Minute, run)
	testenv.Eventually(t, time.Minute, "the still-poison replays back in the DLT", func() bool {
		return sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt)) == dltBefore+poison
	})
	first := s.checkExact(st)

	// replaying twice leaves the database the same; the still-poison records' first dead letters
	// are superseded by the ones their replay wrote, so each record is sent once, not twice
	code, out = s.dltReplay(t, "replay-2", "--topic", s.topic, "--since", "48h")
	if code != 0 || countPrefix(out, "replay ") != poison+3 || strings.Count(out, ": superseded by the newer dead letter") != poison {
		t.Errorf("second replay: exit %d, %d replayed and %d superseded, want 0, %d and %d:\n%s", code,
			countPrefix(out, "replay "), strings.Count(out, ": superseded by the newer dead letter"), poison+3, poison, out)
	}
	s.waitCommitted(2*time.Minute, run)
	second := s.checkExact(st)

	// --to-mongo: the old valid ones go straight into MongoDB, with their original sync metadata
	code, out = s.dltReplay(t, "to-mongo-1", "--to-mongo", "--topic", s.topic, "--until", "48h")
	if code != 0 || countPrefix(out, "replay ") != 2 {
		t.Errorf("replay --to-mongo: exit %d, want 0 and 2 replayed:\n%s", code, out)
	}
	for id, e := range old {
		st.want[id] = e
	}
	s.checkExact(st)
	docs1, _ := s.readAll()
	for id := range old {
		if docs1[id].Sync.Offset < 100 || docs1[id].Sync.Offset > 104 {
			t.Errorf("%s written by --to-mongo with _sync.offset %d, want the dead letter's origin offset", id.Hex(), docs1[id].Sync.Offset)
		}
	}
	if code, _ := s.dltReplay(t, "to-mongo-2", "--to-mongo", "--topic", s.topic, "--until", "48h"); code != 0 {
		t.Errorf("second replay --to-mongo: exit %d", code)
	}
	if docs2, _ := s.readAll(); !reflect.DeepEqual(docs1, docs2) {
		t.Errorf("a second --to-mongo replay changed the database")
	}
	// --to-mongo of records that are still poison fails for them (exit 1) and writes the rest
	code, out = s.dltReplay(t, "to-mongo-poison", "--to-mongo", "--topic", s.topic, "--since", "48h")
	if failed := strings.Count(out, "FAILED: still poison"); code != 1 || failed < poison {
		t.Errorf("replay --to-mongo of poison: exit %d with %d still-poison failures, want exit 1 and at least %d:\n%s", code, failed, poison, out)
	}
	final := s.checkExact(st)
	if !run.running() {
		t.Errorf("statesync run exited: %v", run.exit)
	}
	if code, _ := run.term(30 * time.Second); code != 0 {
		t.Errorf("run: exit %d after SIGTERM", code)
	}
	report(t, "records %d good over %d keys + %d poison; foreign dead letters 6 (3 recent, 2 old, 1 other origin); dry-run filters exact; "+
		"re-published %d (poison back in the DLT: %d); database exact after replay 1/2 and --to-mongo: %v/%v/%v; duration %s",
		len(msgs)-poison, len(st.keys), poison, back, poison, first.ok(), second.ok(), final.ok(), time.Since(start).Round(time.Second))
}

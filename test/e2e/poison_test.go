package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/deadletter"
	"github.com/codr/statesync/record"
	"github.com/codr/statesync/test/testenv"
)

const twentyMiB = "20971520"

// poisonCase is one record that can never be written as it is.
type poisonCase struct {
	name    string
	key     []byte
	value   []byte
	classes []string // acceptable error.class values
}

func poisonCases() []poisonCase {
	oid := func() []byte { return []byte(bson.NewObjectID().Hex()) }
	k := oid()
	mismatch := oid()
	big := bytes.Repeat([]byte("x"), 17<<20)
	return []poisonCase{
		{"invalid JSON", oid(), []byte(`{"payload": {"a": 1}`), []string{record.ClassInvalidJSON}},
		{"key not an ObjectId", []byte("not-an-object-id"), []byte(`{"payload":{"a":1}}`), []string{record.ClassInvalidKey}},
		// a zero-length key: a compacted topic refuses a record without any key ("Broker failed to
		// validate record"), so that one cannot reach statesync from a state topic
		{"empty key", []byte{}, []byte(`{"payload":{"a":1}}`), []string{record.ClassInvalidKey}},
		{"payload _id disagrees with the key", mismatch, fmt.Appendf(nil, `{"payload":{"_id":{"$oid":"%s"},"a":1}}`, bson.NewObjectID().Hex()), []string{record.ClassIDMismatch}},
		{"document over 16 MiB", k, append(append([]byte(`{"payload":{"blob":"`), big...), `"}}`...), []string{record.ClassTooLarge}},
		{"wrong extended JSON", oid(), []byte(`{"payload":{"when":{"$date":"yesterday"}}}`), []string{record.ClassInvalidPayload}},
		{"JSON array", oid(), []byte(`[{"payload":{"a":1}}]`), []string{record.ClassInvalidJSON}},
		{"JSON scalar", oid(), []byte(`42`), []string{record.ClassInvalidJSON}},
		{"invalid UTF-8", oid(), []byte("{\"payload\":{\"s\":\"\xff\xfe\"}}"), []string{record.ClassInvalidJSON}},
		{"missing payload", oid(), []byte(`{"state":{"a":1}}`), []string{record.ClassInvalidPayload}},
		{"key starting with $", oid(), []byte(`{"payload":{"$where":"1","a":1}}`), []string{record.ClassInvalidPayload}},
	}
}

// poisonMsgs interleaves the poison cases with good records on both partitions; each poison
// record has its own traceId. Two poison keys get a good record afterwards, which must win.
func poisonMsgs(st *stream, good int, cases []poisonCase, partitions int) ([]testenv.Msg, map[string]poisonCase) {
	byTrace := map[string]poisonCase{}
	goodMsgs := st.gen(good, 2)
	every := max(1, len(goodMsgs)/(len(cases)+1))
	var msgs []testenv.Msg
	ci := 0
	for i, m := range goodMsgs {
		msgs = append(msgs, m)
		if (i+1)%every == 0 && ci < len(cases) {
			c := cases[ci]
			trace := fmt.Sprintf("deadbeef-0000-4000-8000-%012d", ci)
			byTrace[trace] = c
			msgs = append(msgs, testenv.Msg{Key: c.key, Value: c.value, Partition: int32(ci % partitions), Explicit: true,
				Headers: map[string]string{"traceId": trace, "processedAt": st.at(st.next).Format(time.RFC3339Nano)}})
			if c.name == "invalid JSON" || c.name == "payload _id disagrees with the key" {
				id, _ := bson.ObjectIDFromHex(string(c.key))
				msgs = append(msgs, st.add(id, false))
			}
			ci++
		}
	}
	return msgs, byTrace
}

func kafkaHeaders(hs []kafka.Header) []record.Header {
	out := make([]record.Header, len(hs))
	for i, h := range hs {
		out[i] = record.Header{Key: h.Key, Value: h.Value}
	}
	return out
}

func header(hs []kafka.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestPoisonRecordsAreDeadLetteredOnceAndTheConsumerKeepsGoing: eleven kinds of poison records,
// interleaved with good records on the same partitions. Each poison record is in the DLT exactly
// once, with its origin, key, traceId, processedAt and error class; every good record is written;
// `statesync run` keeps running; `statesync import` exits 3 when it dead-lettered something and 0
// with --allow-dead-letters.
func TestPoisonRecordsAreDeadLetteredOnceAndTheConsumerKeepsGoing(t *testing.T) {
	start := time.Now()
	const partitions = 2
	s := newScenario(t, partitions, map[string]string{"max.message.bytes": twentyMiB})
	st := newStream(8, scaled(500))
	cases := poisonCases()
	msgs, byTrace := poisonMsgs(st, scaled(3000), cases, partitions)
	// The 17 MiB record goes in a produce request of its own: batched with its neighbours, the
	// request can exceed the broker's 20 MiB limit and fail with MSG_SIZE_TOO_LARGE.
	from := 0
	for i, m := range msgs {
		if len(m.Value) > 1<<20 {
			testenv.Produce(t, s.brokers, s.topic, msgs[from:i])
			testenv.Produce(t, s.brokers, s.topic, msgs[i:i+1])
			from = i + 1
		}
	}
	testenv.Produce(t, s.brokers, s.topic, msgs[from:])

	p := s.start("poison-run", nil, "run")
	ends := s.waitCommitted(scaledTimeout(3*time.Minute), p)
	d := s.checkExact(st)

	// the origin messages, to check each dead letter points at its original
	origin := map[string]*kafka.Message{}
	for _, m := range testenv.ReadAll(t, s.brokers, s.topic) {
		origin[fmt.Sprintf("%d@%d", m.TopicPartition.Partition, m.TopicPartition.Offset)] = m
	}
	letters := testenv.ReadAll(t, s.brokers, s.dlt)
	seen := map[string]int{}
	classes := map[string]string{}
	omitted := 0
	for _, m := range letters {
		info, err := deadletter.Parse(m.Key, m.Value, kafkaHeaders(m.Headers))
		if err != nil {
			t.Errorf("dead letter at offset %d: %v", m.TopicPartition.Offset, err)
			continue
		}
		seen[info.TraceID]++
		c, ok := byTrace[info.TraceID]
		if !ok {
			t.Errorf("dead letter of a record that is not poison: %s[%d]@%d traceId %q class %s: %s", info.Topic, info.Partition, info.Offset, info.TraceID, info.Class, info.Message)
			continue
		}
		classes[c.name] = info.Class
		o := origin[fmt.Sprintf("%d@%d", info.Partition, info.Offset)]
		switch {
		case info.Topic != s.topic:
			t.Errorf("%s: origin topic %q, want %q", c.name, info.Topic, s.topic)
		case o == nil || header(o.Headers, "traceId") != info.TraceID:
			t.Errorf("%s: origin %d@%d is not the poison record", c.name, info.Partition, info.Offset)
		case !bytes.Equal(info.Key, c.key):
			t.Errorf("%s: key %q, want %q", c.name, info.Key, c.key)
		case info.ProcessedAt != header(o.Headers, "processedAt"):
			t.Errorf("%s: processedAt %q, want %q", c.name, info.ProcessedAt, header(o.Headers, "processedAt"))
		case header(m.Headers, "stream") != "state" || !strings.Contains(string(m.Value), `"stream":"state"`):
			t.Errorf("%s: stream header %q, want state", c.name, header(m.Headers, "stream"))
		case !contains(c.classes, info.Class) || header(m.Headers, "error.class") != info.Class:
			t.Errorf("%s: error.class %q, want one of %v (%s)", c.name, info.Class, c.classes, info.Message)
		case info.At.IsZero() || time.Since(info.At) > 10*time.Minute:
			t.Errorf("%s: error.at %s", c.name, info.At)
		}
		if !bytes.Equal(info.Original.Value, c.value) {
			if c.name == "document over 16 MiB" && bytes.Contains(info.Original.Value, []byte("statesyncOmitted")) {
				omitted++
			} else {
				t.Errorf("%s: the dead letter does not hold the original value (%d bytes, want %d)", c.name, len(info.Original.Value), len(c.value))
			}
		}
	}
	for trace, c := range byTrace {
		if seen[trace] != 1 {
			t.Errorf("%s: %d dead letters, want exactly 1", c.name, seen[trace])
		}
	}
	if !p.running() {
		t.Fatalf("statesync run exited after poison records: %v", p.exit)
	}
	deadLettered, _ := p.metric("statesync_records_dead_lettered_total", `topic="`+s.topic+`"`)
	if int(deadLettered) != len(cases) {
		t.Errorf("statesync_records_dead_lettered_total = %v, want %d", deadLettered, len(cases))
	}
	if code, _ := p.term(30 * time.Second); code != 0 {
		t.Errorf("run: exit %d after SIGTERM, want 0", code)
	}

	// the one-shot import: exit 3 when something was dead-lettered, 0 with --allow-dead-letters
	importDLT := "codr.svc." + s.entity + "-import.dlt"
	testenv.CreateTopic(t, s.brokers, importDLT, 1, map[string]string{"max.message.bytes": twentyMiB})
	imp := s.start("poison-import", map[string]string{"STATESYNC_KAFKA_GROUP_ID": s.group + "-import", "STATESYNC_DLT_TOPIC": importDLT}, "import")
	code, err := imp.wait(scaledTimeout(3 * time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Errorf("statesync import with dead letters exited %d, want 3; stdout: %s", code, imp.stdout())
	}
	if want := fmt.Sprintf("dead-lettered %d,", len(cases)); !strings.Contains(imp.stdout(), want) {
		t.Errorf("import summary %q does not say %q", imp.stdout(), want)
	}
	allow := s.start("poison-import-allow", map[string]string{"STATESYNC_KAFKA_GROUP_ID": s.group + "-import-allow", "STATESYNC_DLT_TOPIC": importDLT},
		"import", "--allow-dead-letters")
	if code, err := allow.wait(scaledTimeout(3 * time.Minute)); err != nil || code != 0 {
		t.Errorf("statesync import --allow-dead-letters: exit %d, %v; want 0; stdout: %s", code, err, allow.stdout())
	}
	d2 := s.checkExact(st)
	report(t, "records %d (%d good over %d keys, %d poison of %d kinds), partitions %d; dead letters %d (each poison exactly once), classes %v; "+
		">16 MiB body omitted from its dead letter: %v; good records lost %d, extra %d, diverged %d (after the imports: %d/%d/%d); import exit %d; duration %s",
		sumOffsets(ends), len(msgs)-len(cases), len(st.keys), len(cases), len(cases), partitions, len(letters), classes, omitted > 0,
		d.lost, d.extra, d.diverged, d2.lost, d2.extra, d2.diverged, code, time.Since(start).Round(time.Second))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codr/statesync/config"
	"github.com/codr/statesync/deadletter"
	"github.com/codr/statesync/record"
	"github.com/codr/statesync/test/testenv"
)

// pipeline is one test's topic, dead-letter topic, group and database.
type pipeline struct {
	brokers, uri     string
	topic, dlt, db   string
	group            string
	entity           string
	mongo            *mongo.Client
	extraEnvironment map[string]string
}

func newPipeline(t *testing.T, partitions int) *pipeline {
	t.Helper()
	p := &pipeline{brokers: testenv.Kafka(t), uri: testenv.Mongo(t)}
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	p.entity = "it-" + n
	p.topic = "codr.state." + p.entity
	p.dlt = "codr.svc.it-" + n + ".dlt"
	p.db = "it_" + n
	p.group = "it-" + n
	testenv.CreateTopic(t, p.brokers, p.topic, partitions, map[string]string{"cleanup.policy": "compact"})
	testenv.CreateTopic(t, p.brokers, p.dlt, 1, nil)
	p.mongo = testenv.ThrowawayDatabase(t, p.uri, p.db)
	return p
}

func (p *pipeline) config(t *testing.T) config.Config {
	t.Helper()
	environment := map[string]string{
		"STATESYNC_KAFKA_BROKERS":  p.brokers,
		"STATESYNC_KAFKA_GROUP_ID": p.group,
		"STATESYNC_TOPICS":         p.topic,
		"STATESYNC_MONGO_URI":      p.uri,
		"STATESYNC_MONGO_DATABASE": p.db,
		"STATESYNC_DLT_TOPIC":      p.dlt,
		"STATESYNC_HTTP_ADDR":      "127.0.0.1:0",
		"STATESYNC_LOG_FORMAT":     "json",
		"STATESYNC_LOG_LEVEL":      "warn",
		"STATESYNC_BATCH_MAX_WAIT": "50ms",
		// FerretDB 1.x: see sink.Options.MaxBulkOps. Harmless on MongoDB.
		"STATESYNC_MONGO_MAX_BULK_OPS": "20",
	}
	for k, v := range p.extraEnvironment {
		environment[k] = v
	}
	cfg, err := config.Parse(environment)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// importAll runs `statesync import` in-process until the end offsets.
func (p *pipeline) importAll(t *testing.T) summaryView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	sum, err := syncTopics(ctx, &env{cfg: p.config(t), stdout: io.Discard, stderr: &logs}, true)
	if err != nil {
		t.Fatalf("import: %v\nlogs:\n%s", err, logs.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("import did not finish within 3 minutes\nlogs:\n%s", logs.String())
	}
	return sum
}

func (p *pipeline) collection() *mongo.Collection {
	return p.mongo.Database(p.db).Collection(p.entity)
}

// stateRecord is a record-only state message for key with field n.
func stateRecord(id bson.ObjectID, n int, at time.Time) testenv.Msg {
	return testenv.Msg{
		Key:   []byte(id.Hex()),
		Value: fmt.Appendf(nil, `{"payload":{"_id":{"$oid":"%s"},"n":%d,"name":"entity %d","at":{"$date":"%s"}}}`, id.Hex(), n, n, at.Format(time.RFC3339Nano)),
		Headers: map[string]string{
			"key": id.Hex(), "traceId": fmt.Sprintf("00000000-0000-4000-8000-%012d", n),
			"processedAt": at.Format(time.RFC3339Nano),
		},
	}
}

func TestImportEndsWithTheLatestStatePerKeyAndCommitsTheEndOffsets(t *testing.T) {
	p := newPipeline(t, 3)
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]bson.ObjectID, 2000)
	for i := range ids {
		ids[i] = bson.NewObjectID()
	}
	want := map[bson.ObjectID]int{} // latest n per live key
	var msgs []testenv.Msg
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 10000; i++ {
		id := ids[rng.IntN(len(ids))]
		at := base.Add(time.Duration(i) * time.Millisecond)
		if rng.IntN(10) == 0 {
			msgs = append(msgs, testenv.Msg{Key: []byte(id.Hex()), Headers: map[string]string{"processedAt": at.Format(time.RFC3339Nano)}})
			delete(want, id)
			continue
		}
		msgs = append(msgs, stateRecord(id, i, at))
		want[id] = i
	}
	testenv.Produce(t, p.brokers, p.topic, msgs)

	sum := p.importAll(t)
	if sum.Consumed != 10000 || sum.DeadLettered != 0 {
		t.Errorf("summary = %+v, want 10000 consumed, none dead-lettered", sum)
	}
	assertState(t, p.collection(), want)
	ends := testenv.EndOffsets(t, p.brokers, p.topic)
	committed := testenv.Committed(t, p.brokers, p.group, p.topic)
	for part, end := range ends {
		if committed[part] != end {
			t.Errorf("partition %d committed %d, end offset %d", part, committed[part], end)
		}
	}

	t.Run("a second import of the same topic changes nothing", func(t *testing.T) {
		p.group += "-replay"
		sum := p.importAll(t)
		if sum.Consumed != 10000 {
			t.Errorf("replay consumed %d", sum.Consumed)
		}
		assertState(t, p.collection(), want)
	})
}

// assertState checks the collection holds exactly want: every key with its
// latest n, and nothing else.
func assertState(t *testing.T, c *mongo.Collection, want map[bson.ObjectID]int) {
	t.Helper()
	ctx := context.Background()
	cur, err := c.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	seen := 0
	for cur.Next(ctx) {
		var d struct {
			ID   bson.ObjectID `bson:"_id"`
			N    int           `bson:"n"`
			Sync struct {
				Topic string `bson:"topic"`
			} `bson:"_sync"`
		}
		if err := cur.Decode(&d); err != nil {
			t.Fatal(err)
		}
		seen++
		n, ok := want[d.ID]
		switch {
		case !ok:
			t.Errorf("document %s should not exist (deleted or never published)", d.ID.Hex())
		case n != d.N:
			t.Errorf("document %s has n=%d, want the latest n=%d", d.ID.Hex(), d.N, n)
		case d.Sync.Topic == "":
			t.Errorf("document %s has no sync metadata", d.ID.Hex())
		}
	}
	if seen != len(want) {
		t.Errorf("collection holds %d documents, want %d", seen, len(want))
	}
}

func TestPoisonRecordsGoToTheDeadLetterTopicAndTheRestIsWritten(t *testing.T) {
	p := newPipeline(t, 2)
	at := time.Now().UTC().Truncate(time.Millisecond)
	other := bson.NewObjectID()
	poison := []struct {
		name  string
		key   string
		value string
		class string
	}{
		{"invalid JSON", "", `{"payload": {"a": `, record.ClassInvalidJSON},
		{"a key that is not an ObjectId", "user-42", `{"payload":{"a":1}}`, record.ClassInvalidKey},
		{"an empty key", "-", `{"payload":{"a":1}}`, record.ClassInvalidKey},
		{"a payload _id that disagrees with the key", "", `{"payload":{"_id":{"$oid":"` + other.Hex() + `"}}}`, record.ClassIDMismatch},
		{"wrong extended JSON", "", `{"payload":{"born":{"$date":"yesterday"}}}`, record.ClassInvalidPayload},
		{"a JSON array", "", `[1,2,3]`, record.ClassInvalidJSON},
		{"a JSON scalar", "", `42`, record.ClassInvalidJSON},
		{"invalid UTF-8", "", "{\"payload\":{\"a\":\"\xff\xfe\"}}", record.ClassInvalidJSON},
		{"no payload", "", `{"state":{"a":1}}`, record.ClassInvalidPayload},
		{"a field starting with $", "", `{"payload":{"$set":{"a":1}}}`, record.ClassInvalidPayload},
	}
	want := map[bson.ObjectID]int{}
	var msgs []testenv.Msg
	poisonKeys := map[string]string{} // key → class
	for i := 0; i < 400; i++ {
		id := bson.NewObjectID()
		msgs = append(msgs, stateRecord(id, i, at))
		want[id] = i
		if i%40 == 7 {
			pz := poison[(i/40)%len(poison)]
			key := bson.NewObjectID().Hex()
			switch pz.key {
			case "-":
				key = ""
			case "":
			default:
				key = pz.key + strconv.Itoa(i)
			}
			m := testenv.Msg{Key: []byte(key), Value: []byte(pz.value), Headers: map[string]string{"traceId": "trace-" + strconv.Itoa(i), "processedAt": at.Format(time.RFC3339Nano)}}
			if key != "" {
				m.Headers["key"] = key
			}
			msgs = append(msgs, m)
			poisonKeys[key] = pz.class
		}
	}
	testenv.Produce(t, p.brokers, p.topic, msgs)
	sum := p.importAll(t)
	if sum.DeadLettered != int64(len(poisonKeys)) {
		t.Errorf("dead-lettered %d, want %d", sum.DeadLettered, len(poisonKeys))
	}
	assertState(t, p.collection(), want)

	letters := testenv.ReadAll(t, p.brokers, p.dlt)
	if len(letters) != len(poisonKeys) {
		t.Fatalf("%d dead letters, want %d", len(letters), len(poisonKeys))
	}
	seen := map[string]bool{}
	for _, m := range letters {
		hs := make([]record.Header, len(m.Headers))
		headers := map[string]string{}
		for i, h := range m.Headers {
			hs[i] = record.Header{Key: h.Key, Value: h.Value}
			headers[h.Key] = string(h.Value)
		}
		d, err := deadletter.Parse(m.Key, m.Value, hs)
		if err != nil {
			t.Fatalf("dead letter does not parse: %v\n%s", err, m.Value)
		}
		key := string(d.Key)
		class, ok := poisonKeys[key]
		if !ok || seen[key] {
			t.Errorf("unexpected or repeated dead letter for key %q", key)
			continue
		}
		seen[key] = true
		if d.Class != class || headers["error.class"] != class {
			t.Errorf("key %q: class %q (header %q), want %q: %s", key, d.Class, headers["error.class"], class, d.Message)
		}
		if d.Topic != p.topic || headers["topic"] != p.topic || headers["stream"] != "state" || headers["offset"] == "" || headers["partition"] == "" {
			t.Errorf("key %q: origin headers missing: %v", key, headers)
		}
		if d.TraceID == "" || d.ProcessedAt == "" || headers["error.message"] == "" || headers["error.at"] == "" {
			t.Errorf("key %q: seed headers missing: %+v %v", key, d, headers)
		}
		if got := testenv.ValueAt(t, p.brokers, p.topic, d.Partition, d.Offset); !bytes.Equal(got, d.Original.Value) {
			t.Errorf("key %q: dead letter does not hold the original record verbatim:\n got %q\nwant %q", key, d.Original.Value, got)
		}
	}
}

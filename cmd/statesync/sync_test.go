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
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codr/statesync/config"
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
	c, err := mongo.Connect(options.Client().ApplyURI(p.uri))
	if err != nil {
		t.Fatal(err)
	}
	p.mongo = c
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = c.Database(p.db).Drop(ctx)
		_ = c.Disconnect(ctx)
	})
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
		"STATESYNC_MONGO_MAX_BULK_OPS": "40",
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

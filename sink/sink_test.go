package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/codr/statesync/record"
	"github.com/codr/statesync/test/testenv"
)

func TestWriteErrorsAreClassifiedByCode(t *testing.T) {
	cases := []struct {
		name    string
		code    int
		guarded bool
		want    verdict
	}{
		{"a duplicate key under the stale guard means a newer document is stored", 11000, true, fenced},
		{"a duplicate key without the guard is an upsert race and is retried", 11000, false, retry},
		{"not writable primary is retried", 10107, false, retry},
		{"shutdown in progress is retried", 91, false, retry},
		{"document validation failure is rejected", 121, false, reject},
		{"a dollar-prefixed field is rejected", 52, false, reject},
		{"bad value is rejected", 2, true, reject},
		{"an internal error is retried (proof comes from the canary)", 1, false, retry},
		{"a lock timeout is retried", 24, false, retry},
		{"a code the sink does not know is retried, not rejected", 999999, false, retry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyWriteError(mongo.WriteError{Code: tc.code}, tc.guarded); got != tc.want {
				t.Errorf("classify(%d, guarded=%t) = %v, want %v", tc.code, tc.guarded, got, tc.want)
			}
		})
	}
}

func TestDocumentCarriesSyncMetadataAfterThePayload(t *testing.T) {
	for _, spoofed := range []bool{false, true} {
		t.Run(fmt.Sprintf("payload has its own _sync: %v", spoofed), func(t *testing.T) {
			documentCarriesSyncMetadata(t, spoofed)
		})
	}
}

func documentCarriesSyncMetadata(t *testing.T, spoofed bool) {
	s := &Sink{opts: Options{SyncField: "_sync", StaleGuard: true}}
	id := bson.NewObjectID()
	fields := bson.D{{Key: "_id", Value: id}, {Key: "name", Value: "ada"}}
	if spoofed {
		fields = append(fields, bson.E{Key: "_sync", Value: "spoofed"})
	}
	payload, _ := bson.Marshal(fields)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	r := record.Record{ID: id, Doc: payload, TraceID: "t-1", ProcessedAt: at,
		Msg: record.Message{Topic: "codr.state.user", Partition: 2, Offset: 42}}
	var got struct {
		ID   bson.ObjectID `bson:"_id"`
		Name string        `bson:"name"`
		Sync struct {
			Topic       string    `bson:"topic"`
			Partition   int32     `bson:"partition"`
			Offset      int64     `bson:"offset"`
			ProcessedAt time.Time `bson:"processedAt"`
			TraceID     string    `bson:"traceId"`
		} `bson:"_sync"`
	}
	doc := s.document(&r)
	if err := bson.Unmarshal(doc, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.Name != "ada" || got.Sync.Topic != "codr.state.user" || got.Sync.Partition != 2 ||
		got.Sync.Offset != 42 || !got.Sync.ProcessedAt.Equal(at) || got.Sync.TraceID != "t-1" {
		t.Errorf("document = %+v", got)
	}
	if n := countKeys(t, doc, "_sync"); n != 1 {
		t.Errorf("_sync appears %d times", n)
	}
	if err := bsoncore.Document(doc).Validate(); err != nil {
		t.Errorf("invalid BSON: %v", err)
	}
	if keys := countKeys(t, doc, "_id") + countKeys(t, doc, "name"); keys != 2 {
		t.Errorf("payload fields: %d of 2", keys)
	}
}

func countKeys(t *testing.T, doc bson.Raw, key string) int {
	elems, err := doc.Elements()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range elems {
		if e.Key() == key {
			n++
		}
	}
	return n
}

// integration: a real MongoDB-wire database.

func testSink(t *testing.T, guard bool) (*Sink, *mongo.Collection) {
	t.Helper()
	uri := testenv.Mongo(t)
	db := fmt.Sprintf("sinktest_%d", time.Now().UnixNano())
	s, err := Connect(uri, Options{Database: db, WriteConcern: "majority", Timeout: 20 * time.Second, SyncField: "_sync", StaleGuard: guard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.client.Database(db).Drop(ctx)
		_ = s.Close(ctx)
	})
	return s, s.client.Database(db).Collection("user")
}

func rec(t *testing.T, id bson.ObjectID, name string, at time.Time, offset int64) record.Record {
	doc, err := bson.Marshal(bson.D{{Key: "_id", Value: id}, {Key: "name", Value: name}})
	if err != nil {
		t.Fatal(err)
	}
	return record.Record{ID: id, Doc: doc, ProcessedAt: at, Msg: record.Message{Topic: "codr.state.user", Offset: offset}}
}

func tombstone(id bson.ObjectID, at time.Time) record.Record {
	return record.Record{ID: id, Tombstone: true, ProcessedAt: at, Msg: record.Message{Topic: "codr.state.user"}}
}

func nameOf(t *testing.T, c *mongo.Collection, id bson.ObjectID) (string, bool) {
	t.Helper()
	var d struct {
		Name string `bson:"name"`
	}
	err := c.FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if err == mongo.ErrNoDocuments {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.Name, true
}

func TestWriteUpsertsReplacesAndDeletes(t *testing.T) {
	s, c := testSink(t, true)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	a, b := bson.NewObjectID(), bson.NewObjectID()
	res, err := s.Write(ctx, "user", []record.Record{rec(t, a, "a1", t0, 1), rec(t, b, "b1", t0, 2)})
	if err != nil || res.Upserted != 2 {
		t.Fatalf("first write: %+v, %v", res, err)
	}
	res, err = s.Write(ctx, "user", []record.Record{rec(t, a, "a2", t0.Add(time.Second), 3), tombstone(b, t0.Add(time.Second))})
	if err != nil || res.Upserted != 1 || res.Deleted != 1 {
		t.Fatalf("second write: %+v, %v", res, err)
	}
	if n, _ := nameOf(t, c, a); n != "a2" {
		t.Errorf("a = %q, want a2", n)
	}
	if _, ok := nameOf(t, c, b); ok {
		t.Error("b still exists after its tombstone")
	}
}

func TestStaleGuardKeepsTheNewerDocument(t *testing.T) {
	s, c := testSink(t, true)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	id := bson.NewObjectID()
	if _, err := s.Write(ctx, "user", []record.Record{rec(t, id, "new", t0, 10)}); err != nil {
		t.Fatal(err)
	}
	t.Run("an older upsert is skipped, not an error", func(t *testing.T) {
		res, err := s.Write(ctx, "user", []record.Record{rec(t, id, "old", t0.Add(-time.Minute), 5)})
		if err != nil || res.Skipped != 1 || res.Upserted != 0 || len(res.Rejected) != 0 {
			t.Fatalf("res = %+v, err = %v", res, err)
		}
		if n, _ := nameOf(t, c, id); n != "new" {
			t.Errorf("name = %q, want new", n)
		}
	})
	t.Run("an older tombstone does not delete", func(t *testing.T) {
		res, err := s.Write(ctx, "user", []record.Record{tombstone(id, t0.Add(-time.Minute))})
		if err != nil || res.Deleted != 0 || res.Skipped != 1 {
			t.Fatalf("res = %+v, err = %v", res, err)
		}
		if _, ok := nameOf(t, c, id); !ok {
			t.Error("document deleted by a stale tombstone")
		}
	})
	t.Run("an equal timestamp replaces, so a replay is idempotent", func(t *testing.T) {
		res, err := s.Write(ctx, "user", []record.Record{rec(t, id, "replayed", t0, 10)})
		if err != nil || res.Upserted != 1 {
			t.Fatalf("res = %+v, err = %v", res, err)
		}
		if n, _ := nameOf(t, c, id); n != "replayed" {
			t.Errorf("name = %q, want replayed", n)
		}
	})
	t.Run("a record without processedAt always replaces", func(t *testing.T) {
		if _, err := s.Write(ctx, "user", []record.Record{rec(t, id, "unguarded", time.Time{}, 11)}); err != nil {
			t.Fatal(err)
		}
		if n, _ := nameOf(t, c, id); n != "unguarded" {
			t.Errorf("name = %q, want unguarded", n)
		}
	})
}

func TestAnUnreachableDatabaseFailsTheWholeWrite(t *testing.T) {
	s, err := Connect("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=200", Options{Database: "x", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	res, err := s.Write(context.Background(), "user", []record.Record{rec(t, bson.NewObjectID(), "x", time.Time{}, 1)})
	if err == nil || len(res.Rejected) > 0 {
		t.Fatalf("err = %v, rejected %v: want the write failed as a whole (retried), nothing rejected", err, res.Rejected)
	}
}

// A write mixing upserts, deletes and stale records applies each exactly as
// its own write would, in one bulk and split into parallel commands. FerretDB
// 1.x rolls a whole update command back on a stale record's duplicate key
// and blames the command's first operation: the sink must not believe it.
func TestAMixedWriteAppliesEveryRecordAsItsOwnWriteWould(t *testing.T) {
	for _, tc := range []struct {
		name              string
		maxOps, bulkParal int
	}{{"one bulk", 0, 1}, {"split into commands of 7, 3 at once", 7, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			mixedWrite(t, tc.maxOps, tc.bulkParal)
		})
	}
}

func mixedWrite(t *testing.T, maxOps, bulkParallel int) {
	s, c := testSink(t, true)
	s.opts.MaxBulkOps, s.opts.BulkParallel = maxOps, bulkParallel
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	var first, second []record.Record
	ids := make([]bson.ObjectID, 50)
	for i := range ids {
		ids[i] = bson.NewObjectID()
		first = append(first, rec(t, ids[i], "v1", t0, int64(i)))
	}
	res, err := s.Write(ctx, "user", first)
	if err != nil || res.Upserted != 50 {
		t.Fatalf("first write: %+v, %v", res, err)
	}
	// Every 10th record deleted, one record per command stale (older than stored).
	for i, id := range ids {
		switch {
		case i%10 == 0:
			second = append(second, tombstone(id, t0.Add(time.Second)))
		case i%7 == 3:
			second = append(second, rec(t, id, "stale", t0.Add(-time.Second), int64(100+i)))
		default:
			second = append(second, rec(t, id, "v2", t0.Add(time.Second), int64(100+i)))
		}
	}
	res, err = s.Write(ctx, "user", second)
	if err != nil {
		t.Fatal(err)
	}
	var deleted, stale int
	for i := range ids {
		switch {
		case i%10 == 0:
			deleted++
		case i%7 == 3:
			stale++
		}
	}
	if res.Deleted != deleted || res.Skipped != stale || res.Upserted != 50-deleted-stale || len(res.Rejected) != 0 {
		t.Fatalf("second write: %+v; want %d deleted, %d skipped, %d upserted", res, deleted, stale, 50-deleted-stale)
	}
	for i, id := range ids {
		name, ok := nameOf(t, c, id)
		switch {
		case i%10 == 0:
			if ok {
				t.Errorf("record %d not deleted", i)
			}
		case i%7 == 3:
			if name != "v1" {
				t.Errorf("record %d = %q, want v1 (the stale write skipped)", i, name)
			}
		default:
			if name != "v2" {
				t.Errorf("record %d = %q, want v2", i, name)
			}
		}
	}
}

// The canary passes on a collection that takes writes and leaves nothing
// behind: not its own document, not a change to any other.
func TestACanaryWriteLeavesNothingBehind(t *testing.T) {
	s, c := testSink(t, true)
	ctx := context.Background()
	if err := s.Canary(ctx, "user"); err != nil {
		t.Fatalf("canary on an empty collection: %v", err)
	}
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	id := bson.NewObjectID()
	if _, err := s.Write(ctx, "user", []record.Record{rec(t, id, "ada", t0, 7)}); err != nil {
		t.Fatal(err)
	}
	before, err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Canary(ctx, "user"); err != nil {
		t.Fatalf("canary: %v", err)
	}
	after, err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("canary changed the document:\n%s\n%s", before, after)
	}
	if n, err := c.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Errorf("collection holds %d documents (%v), want 1", n, err)
	}
}

// A canary that did not finish leaves its document; the next write that
// passes deletes it.
func TestACanaryDocumentLeftBehindIsDeletedByTheNextWrite(t *testing.T) {
	s, c := testSink(t, true)
	ctx := context.Background()
	if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: canaryID}}); err != nil {
		t.Fatal(err)
	}
	s.canaryLeft["user"] = true // as a canary that failed between its write and its delete
	if _, err := s.Write(ctx, "user", []record.Record{rec(t, bson.NewObjectID(), "ada", time.Time{}, 1)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.CountDocuments(ctx, bson.D{{Key: "_id", Value: canaryID}}); n != 0 {
		t.Errorf("the canary document is still there after a write passed")
	}
}

func TestADuplicateKeyOnAnotherUniqueIndexIsRefusedNotFenced(t *testing.T) {
	raw, _ := bson.Marshal(bson.D{{Key: "keyPattern", Value: bson.D{{Key: "email", Value: 1}}}})
	idRaw, _ := bson.Marshal(bson.D{{Key: "keyPattern", Value: bson.D{{Key: "_id", Value: 1}}}})
	cases := []struct {
		name string
		we   mongo.WriteError
		want verdict
	}{
		{"keyPattern email", mongo.WriteError{Code: 11000, Raw: raw}, reject},
		{"keyPattern _id", mongo.WriteError{Code: 11000, Raw: idRaw}, fenced},
		{"message naming another index", mongo.WriteError{Code: 11000, Message: "E11000 duplicate key error collection: db.user index: email_1 dup key: { email: \"a\" }"}, reject},
		{"message naming _id_", mongo.WriteError{Code: 11000, Message: "E11000 duplicate key error collection: db.user index: _id_ dup key: { _id: 1 }"}, fenced},
		{"a message that names no index", mongo.WriteError{Code: 11000, Message: "duplicate key"}, fenced},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyWriteError(tc.we, true); got != tc.want {
				t.Errorf("classify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPostgreSQLCancellationsAreTimeouts(t *testing.T) {
	for _, msg := range []string{
		"(InternalError) canceling statement due to statement timeout (SQLSTATE 57014)",
		"(InternalError) canceling statement due to lock timeout (SQLSTATE 55P03)",
	} {
		if !isTimeout(errors.New(msg)) {
			t.Errorf("%q is not taken as a timeout", msg)
		}
	}
	if isTimeout(errors.New("connection reset by peer")) {
		t.Error("a dropped connection is taken as a timeout")
	}
}

// Regression: the canary's document had the zero ObjectId as _id, which is a
// canonical key (24 lower-case hex): a canary deleted that entity's document.
func TestACanaryNeverTouchesAnEntitysDocument(t *testing.T) {
	s, c := testSink(t, true)
	ctx := context.Background()
	zero := bson.ObjectID{}
	if _, err := s.Write(ctx, "user", []record.Record{rec(t, zero, "zero", time.Time{}, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Canary(ctx, "user"); err != nil {
		t.Fatal(err)
	}
	if n, ok := nameOf(t, c, zero); !ok || n != "zero" {
		t.Errorf("the entity with key 000000000000000000000000 is %q (stored %v) after a canary, want zero", n, ok)
	}
}

// Package ferretdb_test checks the local test stack's MongoDB-wire server (FerretDB on
// PostgreSQL, started by scripts/stack) behaves well enough for statesync's integration and
// end-to-end tests. Its own module keeps FerretDB out of the product's go.mod.
package ferretdb_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const howToStart = `run "scripts/stack up" and eval "$(scripts/stack env)", or "make test"`

func mongoURI(t *testing.T) string {
	t.Helper()
	uri := os.Getenv("STATESYNC_TEST_MONGO_URI")
	if uri != "" {
		return uri
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("STATESYNC_TEST_MONGO_URI is not set (CI=true): %s", howToStart)
	}
	t.Skipf("STATESYNC_TEST_MONGO_URI is not set: %s", howToStart)
	return ""
}

func connect(t *testing.T) *mongo.Client {
	t.Helper()
	uri := mongoURI(t)
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatalf("connect %s: %v", uri, err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

// freshCollection returns an empty collection in a database of its own, dropped after the test.
func freshCollection(t *testing.T, client *mongo.Client) *mongo.Collection {
	t.Helper()
	db := client.Database(fmt.Sprintf("stackcheck_%d", time.Now().UnixNano()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
	})
	return db.Collection("entity")
}

// entity is a ~1 KiB document, the size of a typical Codr entity.
func entity(id bson.ObjectID, version int) bson.D {
	profile := make(bson.D, 0, 24)
	for i := range 24 {
		profile = append(profile, bson.E{Key: fmt.Sprintf("field%02d", i), Value: fmt.Sprintf("value %02d of %s", i, id.Hex())})
	}
	return bson.D{
		{Key: "_id", Value: id},
		{Key: "name", Value: "entity " + id.Hex()},
		{Key: "version", Value: version},
		{Key: "tags", Value: bson.A{"a", "b", "c"}},
		{Key: "profile", Value: profile},
		{Key: "updatedAt", Value: time.Now().UTC().Truncate(time.Millisecond)},
	}
}

func TestDocumentsRoundTripThroughReplaceUpsertAndDelete(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	coll := freshCollection(t, connect(t))

	id := bson.NewObjectID()
	upsert := options.Replace().SetUpsert(true)
	res, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, entity(id, 1), upsert)
	if err != nil {
		t.Fatalf("upsert new document: %v", err)
	}
	if res.UpsertedCount != 1 {
		t.Fatalf("upsert new document: UpsertedCount = %d, want 1", res.UpsertedCount)
	}
	if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, entity(id, 2), upsert); err != nil {
		t.Fatalf("upsert existing document: %v", err)
	}

	var got struct {
		ID      bson.ObjectID `bson:"_id"`
		Version int           `bson:"version"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&got); err != nil {
		t.Fatalf("find by _id: %v", err)
	}
	if got.ID != id || got.Version != 2 {
		t.Fatalf("find by _id = %+v, want _id %s version 2", got, id.Hex())
	}

	del, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil || del.DeletedCount != 1 {
		t.Fatalf("delete by _id: DeletedCount=%v err=%v, want 1, nil", del, err)
	}
}

// TestReplaceUpsertCostStaysFlatAsTheCollectionGrows guards the PostgreSQL settings scripts/stack
// applies (plan_cache_mode=force_custom_plan and a GIN index on (_jsonb->'_id') per collection
// table). Without them FerretDB turns every ReplaceOne-by-_id into a full table scan, and the cost
// per upsert grows with the collection (16x the documents: ~7x the cost, measured). The bound is a
// generous ratio between a small and a large collection measured in alternating rounds within the
// same seconds, so a slow or busy machine slows both sides alike and does not fail it.
func TestReplaceUpsertCostStaysFlatAsTheCollectionGrows(t *testing.T) {
	if testing.Short() {
		t.Skip("measures upserts into 8,000 documents; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := connect(t)
	smallColl := freshCollection(t, client)
	largeColl := smallColl.Database().Collection("entity_large")

	const (
		smallSize = 500
		largeSize = 8000
		rounds    = 8
		perRound  = 40
		maxRatio  = 3.0
	)
	fill := func(coll *mongo.Collection, n int) []bson.ObjectID {
		t.Helper()
		ids := make([]bson.ObjectID, 0, n)
		docs := make([]any, 0, 500)
		for len(ids) < n {
			id := bson.NewObjectID()
			ids = append(ids, id)
			docs = append(docs, entity(id, 1))
			if len(docs) == cap(docs) || len(ids) == n {
				if _, err := coll.InsertMany(ctx, docs); err != nil {
					t.Fatalf("fill %s to %d documents: %v", coll.Name(), n, err)
				}
				docs = docs[:0]
			}
		}
		return ids
	}
	smallIDs := fill(smallColl, smallSize)
	largeIDs := fill(largeColl, largeSize)

	// round replaces perRound documents spread over the collection, by _id as statesync does,
	// and returns the cost of one.
	upsert := options.Replace().SetUpsert(true)
	round := func(coll *mongo.Collection, ids []bson.ObjectID, r int) time.Duration {
		t.Helper()
		step := len(ids) / perRound
		start := time.Now()
		for i := range perRound {
			id := ids[i*step+r%step]
			if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, entity(id, 2+r), upsert); err != nil {
				t.Fatalf("upsert %s into %d documents: %v", id.Hex(), len(ids), err)
			}
		}
		return time.Since(start) / perRound
	}
	round(smallColl, smallIDs, 0) // warm up connections and plans
	round(largeColl, largeIDs, 0)

	// The fastest round of each is the one least disturbed by whatever else the machine runs.
	small, large := time.Duration(1<<62), time.Duration(1<<62)
	for r := 1; r <= rounds; r++ {
		if r%2 == 0 {
			small = min(small, round(smallColl, smallIDs, r))
			large = min(large, round(largeColl, largeIDs, r))
		} else {
			large = min(large, round(largeColl, largeIDs, r))
			small = min(small, round(smallColl, smallIDs, r))
		}
	}

	ratio := float64(large) / float64(small)
	t.Logf("ReplaceOne upsert by _id: %v each at %d documents (%.0f/s), %v each at %d documents (%.0f/s), ratio %.2f",
		small, smallSize, float64(time.Second)/float64(small), large, largeSize, float64(time.Second)/float64(large), ratio)
	if ratio > maxRatio {
		t.Fatalf("upsert cost is %.1fx higher at %d documents than at %d (bound %.1fx): the _id lookups are scanning; "+
			"check that PostgreSQL has plan_cache_mode=force_custom_plan on database ferretdb and the "+
			"statesync_ferretdb_id_index event trigger (scripts/stack pg_setup)", ratio, largeSize, smallSize, maxRatio)
	}
}

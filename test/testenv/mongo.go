package testenv

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ThrowawayDatabase connects to uri for a test whose database db is its own:
// when the test ends, db is dropped and the client disconnected.
func ThrowawayDatabase(t testing.TB, uri, db string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(30 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = c.Database(db).Drop(ctx)
		_ = c.Disconnect(ctx)
	})
	return c
}

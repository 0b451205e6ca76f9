package sink

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/record"
)

// Regression, on the real server: a PostgreSQL lock on the table of one
// FerretDB collection, while another collection is written, dead-lettered
// every record written to the locked one as unwritable. ACCESS EXCLUSIVE
// blocks the canary too; EXCLUSIVE blocks writes only, and FerretDB skips
// the canary's unchanged row, so there the writes' timeouts alone must keep
// the records out of the dead-letter topic.
func TestALockedTableDeadLettersNothingAndIsWrittenAfterTheLock(t *testing.T) {
	pg := os.Getenv("STATESYNC_TEST_POSTGRES_URL")
	if pg == "" {
		t.Skip("STATESYNC_TEST_POSTGRES_URL is not set: this test locks a FerretDB table in the local stack's PostgreSQL (eval \"$(scripts/stack env)\")")
	}
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql not installed: this test locks a FerretDB table with it")
	}
	for mode, pgMode := range map[string]string{"ACCESS EXCLUSIVE": "AccessExclusiveLock", "EXCLUSIVE": "ExclusiveLock"} {
		t.Run("under a lock in "+mode+" mode", func(t *testing.T) {
			s, c := testSink(t, true)
			s.opts.Timeout = 300 * time.Millisecond
			ctx := context.Background()
			t0 := time.Now().UTC().Truncate(time.Millisecond)
			ids := make([]bson.ObjectID, 8)
			old := make([]record.Record, len(ids))
			for i := range ids {
				ids[i] = bson.NewObjectID()
				old[i] = rec(t, ids[i], "old", t0, int64(i))
			}
			if _, err := s.Write(ctx, "user", old); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(ctx, "order", []record.Record{rec(t, bson.NewObjectID(), "o", t0, 0)}); err != nil {
				t.Fatal(err)
			}
			schema := c.Database().Name()
			table := strings.TrimSpace(psql(t, pg, fmt.Sprintf(
				`SELECT tablename FROM pg_tables WHERE schemaname = '%s' AND tablename LIKE 'user\_%%'`, schema)))
			if table == "" {
				t.Fatalf("no table for collection user in schema %s", schema)
			}
			lock := exec.Command("psql", pg, "-v", "ON_ERROR_STOP=1", "-c",
				fmt.Sprintf(`BEGIN; LOCK TABLE %q.%q IN %s MODE; SELECT pg_sleep(7); COMMIT;`, schema, table, mode))
			if err := lock.Start(); err != nil {
				t.Fatal(err)
			}
			defer lock.Wait()
			waitFor(t, 5*time.Second, func() bool {
				return strings.TrimSpace(psql(t, pg, fmt.Sprintf(
					`SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '%s' AND l.granted AND l.mode = '%s'`,
					table, pgMode))) != "0"
			})

			d := &fakeDLT{letters: map[int64]string{}}
			a := NewApplier(s, d, ApplyOptions{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, UnwritableAfter: 2})
			b := &batch.Batch{TopicPartition: batch.TopicPartition{Topic: "user"}}
			for i, id := range ids {
				b.Records = append(b.Records, rec(t, id, "new", t0.Add(time.Minute), int64(100+i)))
			}
			done := make(chan error, 1)
			go func() { _, err := a.Apply(ctx, b); done <- err }()
			other := &batch.Batch{TopicPartition: batch.TopicPartition{Topic: "order"}}
			for i := 0; ; i++ {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(200 * time.Millisecond):
					other.Records = []record.Record{rec(t, bson.NewObjectID(), "o", t0, int64(i))}
					if _, err := a.Apply(ctx, other); err != nil {
						t.Fatal(err)
					}
					continue
				}
				break
			}
			if len(d.letters) != 0 {
				t.Errorf("dead-lettered %v while their collection was locked", d.letters)
			}
			for i, id := range ids {
				if n, _ := nameOf(t, c, id); n != "new" {
					t.Errorf("record %d: stored %q after the lock, want new", i, n)
				}
			}
		})
	}
}

func psql(t *testing.T, url, query string) string {
	t.Helper()
	out, err := exec.Command("psql", url, "-Atc", query).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", query, err, out)
	}
	return string(out)
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Regression, on the real server: FerretDB 1.x drops the connection on a
// Decimal128 value, which looks transient to the driver. Alone on a quiet
// partition (no other write succeeds) it was retried for ever; it must be
// isolated and dead-lettered as unwritable in seconds. A server that stores
// Decimal128 (MongoDB) writes it.
func TestALoneRecordTheServerDropsTheConnectionForIsSettledInBoundedTime(t *testing.T) {
	s, c := testSink(t, true)
	s.opts.Timeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dec, err := bson.ParseDecimal128("1.50")
	if err != nil {
		t.Fatal(err)
	}
	id := bson.NewObjectID()
	doc, err := bson.Marshal(bson.D{{Key: "_id", Value: id}, {Key: "price", Value: dec}})
	if err != nil {
		t.Fatal(err)
	}
	b := &batch.Batch{TopicPartition: batch.TopicPartition{Topic: "quiet"}, Records: []record.Record{
		{ID: id, Doc: doc, Msg: record.Message{Topic: "quiet", Offset: 0}}}}
	d := &fakeDLT{letters: map[int64]string{}}
	start := time.Now()
	out, err := NewApplier(s, d, ApplyOptions{MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}).Apply(ctx, b)
	if err != nil {
		t.Fatalf("not settled in 20 s: %v", err)
	}
	n, _ := c.Database().Collection("quiet").CountDocuments(context.Background(), bson.D{})
	t.Logf("settled in %s: %+v, dead letters %v, stored %d", time.Since(start).Round(time.Millisecond), out, d.letters, n)
	switch {
	case out.Written == 1 && n == 1 && len(d.letters) == 0: // the server stores Decimal128
	case out.DeadLettered == 1 && d.letters[0] == record.ClassUnwritable && n == 0:
	default:
		t.Errorf("outcome %+v, letters %v, stored %d: want written, or dead-lettered as unwritable", out, d.letters, n)
	}
}

// Regression, on the real server: a fault that refuses writes but not reads
// in one collection (here a PostgreSQL trigger under FerretDB) dead-lettered
// every record as unwritable, because a canary that changed nothing was
// never a write on FerretDB. The canary now writes.
func TestACollectionThatRefusesWritesDeadLettersNothing(t *testing.T) {
	pg := os.Getenv("STATESYNC_TEST_POSTGRES_URL")
	if pg == "" {
		t.Skip("STATESYNC_TEST_POSTGRES_URL is not set: this test adds a trigger to a FerretDB table in the local stack's PostgreSQL (eval \"$(scripts/stack env)\")")
	}
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql not installed")
	}
	s, c := testSink(t, true)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	id := bson.NewObjectID()
	if _, err := s.Write(ctx, "user", []record.Record{rec(t, id, "old", t0, 0)}); err != nil {
		t.Fatal(err)
	}
	schema := c.Database().Name()
	table := strings.TrimSpace(psql(t, pg, fmt.Sprintf(`SELECT tablename FROM pg_tables WHERE schemaname = '%s' AND tablename LIKE 'user\_%%'`, schema)))
	fn := fmt.Sprintf("%q.refuse_writes", schema)
	psql(t, pg, fmt.Sprintf(`CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'writes refused by the test'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON %q.%q FOR EACH ROW EXECUTE FUNCTION %s();`, fn, schema, table, fn))
	d := &fakeDLT{letters: map[int64]string{}}
	a := NewApplier(s, d, ApplyOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, UnwritableAfter: 2})
	b := &batch.Batch{TopicPartition: batch.TopicPartition{Topic: "user"}, Records: []record.Record{rec(t, id, "new", t0.Add(time.Minute), 1)}}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := a.Apply(short, b)
	cancel()
	if err == nil || len(d.letters) != 0 {
		t.Fatalf("while writes are refused: err %v, dead letters %v; want still retrying and none", err, d.letters)
	}
	psql(t, pg, fmt.Sprintf(`DROP TRIGGER refuse ON %q.%q`, schema, table))
	if _, err := a.Apply(ctx, b); err != nil || len(d.letters) != 0 {
		t.Fatalf("after the trigger is dropped: err %v, dead letters %v", err, d.letters)
	}
	if n, _ := nameOf(t, c, id); n != "new" {
		t.Errorf("stored %q, want new", n)
	}
	if n, _ := c.CountDocuments(ctx, bson.D{{Key: "_id", Value: canaryID}}); n != 0 {
		t.Error("a canary document was left behind")
	}
}

// Regression, on the real server: a duplicate key on a unique index other
// than _id was taken for the stale guard's fence: the record vanished as
// "skipped stale". It is refused, so dead-lettered.
func TestADuplicateOnAUniqueFieldIsDeadLetteredNotSkipped(t *testing.T) {
	s, c := testSink(t, true)
	ctx := context.Background()
	if _, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	doc := func(id bson.ObjectID, email string, off int64) record.Record {
		raw, _ := bson.Marshal(bson.D{{Key: "_id", Value: id}, {Key: "email", Value: email}})
		return record.Record{ID: id, Doc: raw, ProcessedAt: t0, Msg: record.Message{Topic: "user", Offset: off}}
	}
	a, b := bson.NewObjectID(), bson.NewObjectID()
	d := &fakeDLT{letters: map[int64]string{}}
	ap := NewApplier(s, d, ApplyOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	out, err := ap.Apply(ctx, &batch.Batch{TopicPartition: batch.TopicPartition{Topic: "user"}, Records: []record.Record{doc(a, "a@x", 0)}})
	if err != nil || out.Written != 1 {
		t.Fatalf("first: %+v %v", out, err)
	}
	out, err = ap.Apply(ctx, &batch.Batch{TopicPartition: batch.TopicPartition{Topic: "user"}, Records: []record.Record{doc(b, "a@x", 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Skipped != 0 || d.letters[1] != record.ClassRejected {
		t.Errorf("outcome %+v, dead letters %v: want the record dead-lettered as rejected, not skipped", out, d.letters)
	}
}

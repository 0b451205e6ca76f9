// Package sink writes batches of decoded state records to MongoDB as one
// unordered bulk of ReplaceOne(upsert) and DeleteOne models, and classifies
// what goes wrong: an error from Write means "retry the whole batch later"
// (replaying a batch is idempotent), a Rejection means "this one record can
// never be written as it is" (it goes to the dead-letter topic). The rules
// are docs/design.md "Write semantics".
package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/codr/statesync/record"
)

// Options configures a Sink.
type Options struct {
	Database     string
	WriteConcern string        // "majority" or a number of nodes; "" is DefaultWriteConcern
	Timeout      time.Duration // of one bulk write; 0 is DefaultTimeout
	SyncField    string        // field holding sync metadata; "" writes none
	StaleGuard   bool          // never replace a document with a newer stored processedAt (needs SyncField)
	// MaxBulkOps splits a write into sequential bulk commands of at most
	// this many operations; 0 leaves splitting to the driver. FerretDB 1.x
	// holds one PostgreSQL connection per matched document until its update
	// command ends, so a bulk larger than its pool deadlocks it.
	MaxBulkOps int
	// BulkParallel is how many of one write's MaxBulkOps commands are sent
	// at once (0 or 1: one after the other). The records of a batch have
	// distinct _ids, so the commands commute.
	BulkParallel int
}

// Defaults for zero Options fields, and of STATESYNC_MONGO_WRITE_CONCERN and
// STATESYNC_MONGO_TIMEOUT (cmd/statesync tests that config's match).
const (
	DefaultWriteConcern = "majority"
	DefaultTimeout      = 30 * time.Second
)

// Sink is a MongoDB database statesync writes to.
type Sink struct {
	client *mongo.Client
	db     *mongo.Database
	opts   Options

	mu         sync.Mutex
	colls      map[string]*mongo.Collection
	canaryLeft map[string]bool // collections where a canary document may be left
}

// Connect opens a client for uri. It does not wait for the server: a
// database that is down at start is retried like any other outage.
func Connect(uri string, o Options) (*Sink, error) {
	wc, err := parseWriteConcern(o.WriteConcern)
	if err != nil {
		return nil, err
	}
	copts := options.Client().ApplyURI(uri).
		SetWriteConcern(wc).
		SetRetryWrites(true).
		SetServerSelectionTimeout(5 * time.Second).
		SetConnectTimeout(5 * time.Second)
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("connect to MongoDB: %w (check STATESYNC_MONGO_URI)", err)
	}
	return New(client, o), nil
}

// New wraps an existing client.
func New(client *mongo.Client, o Options) *Sink {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return &Sink{client: client, db: client.Database(o.Database), opts: o, colls: map[string]*mongo.Collection{}, canaryLeft: map[string]bool{}}
}

func parseWriteConcern(s string) (*writeconcern.WriteConcern, error) {
	if s == "" || s == DefaultWriteConcern {
		return writeconcern.Majority(), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("write concern %q: use majority or a number of nodes", s)
	}
	return &writeconcern.WriteConcern{W: n}, nil
}

// Client is the underlying MongoDB client.
func (s *Sink) Client() *mongo.Client { return s.client }

// Ping checks that MongoDB answers.
func (s *Sink) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
}

// Close disconnects.
func (s *Sink) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }

func (s *Sink) collection(name string) *mongo.Collection {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.colls[name]
	if !ok {
		c = s.db.Collection(name)
		s.colls[name] = c
	}
	return c
}

// Result is what one Write did.
type Result struct {
	Upserted int         // documents inserted or replaced
	Deleted  int         // documents deleted by tombstones
	Skipped  int         // writes fenced off by the stale-write guard (a newer document is stored)
	Rejected []Rejection // records MongoDB refused for good
}

// add counts part, the result of writing the records from offset on, into r.
func (r *Result) add(part Result, offset int) {
	r.Upserted += part.Upserted
	r.Deleted += part.Deleted
	r.Skipped += part.Skipped
	for _, rj := range part.Rejected {
		rj.Index += offset
		r.Rejected = append(r.Rejected, rj)
	}
}

// Rejection is a record that can never be written as it is.
type Rejection struct {
	Index int // into the records passed to Write
	Err   *record.PoisonError
}

// Write applies records (distinct IDs; the batcher collapses duplicates, as
// an unordered bulk may apply two operations on one _id in any order) to
// collection. A nil error means every record is written, skipped as stale,
// or listed in Result.Rejected. A non-nil error is a failure of the whole
// batch that may pass on retry (network, timeout, no primary, shutdown,
// write concern, a server code not known to be the document's): nothing in
// the batch may be considered written.
func (s *Sink) Write(ctx context.Context, collection string, recs []record.Record) (Result, error) {
	chunk := len(recs)
	if s.opts.MaxBulkOps > 0 && chunk > s.opts.MaxBulkOps {
		chunk = s.opts.MaxBulkOps
	}
	n := (len(recs) + chunk - 1) / chunk
	parts := make([]Result, n)
	errs := make([]error, n)
	parallel := min(max(s.opts.BulkParallel, 1), n)
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					errs[i] = ctx.Err()
					continue
				}
				start := i * chunk
				parts[i], errs[i] = s.write(ctx, collection, recs[start:min(start+chunk, len(recs))])
			}
		}()
	}
	wg.Wait()
	var res Result
	for i, part := range parts {
		if errs[i] != nil {
			return Result{}, errs[i]
		}
		res.add(part, i*chunk)
	}
	return res, nil
}

func (s *Sink) write(ctx context.Context, collection string, recs []record.Record) (Result, error) {
	var res Result
	if len(recs) == 0 {
		return res, nil
	}
	models := make([]mongo.WriteModel, len(recs))
	for i := range recs {
		models[i] = s.model(&recs[i])
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	br, err := s.collection(collection).BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if br != nil {
		res.Upserted = int(br.UpsertedCount + br.MatchedCount)
		res.Deleted = int(br.DeletedCount)
	}
	if err == nil {
		res.Skipped = s.countFencedDeletes(recs, res.Deleted)
		s.deleteCanaryLeft(ctx, collection)
		return res, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) {
		return Result{}, fmt.Errorf("bulk write of %d to %s: %w", len(recs), collection, err)
	}
	if bwe.WriteConcernError != nil {
		return Result{}, fmt.Errorf("bulk write of %d to %s: %w", len(recs), collection, err)
	}
	replaces, replaceErrs := 0, 0
	for i := range recs {
		if !recs[i].Tombstone {
			replaces++
		}
	}
	for _, we := range bwe.WriteErrors {
		if !recs[we.Index].Tombstone {
			replaceErrs++
		}
	}
	if len(recs) > 1 && (br == nil || res.Upserted < replaces-replaceErrs) {
		// An unordered bulk goes on past a failed operation and reports each
		// failure at its index. Some servers do neither (FerretDB 1.x rolls
		// the whole update command back, reports the first operation as the
		// failed one, and no counts), so a failure cannot be attributed:
		// write the upserts again one at a time, where it can.
		return s.writeEach(ctx, collection, recs, bwe, res.Deleted)
	}
	if err := s.tally(ctx, &res, collection, recs, bwe, func(int) bool { return true }); err != nil {
		return Result{}, err
	}
	res.Skipped += s.countFencedDeletes(recs, res.Deleted)
	return res, nil
}

// tally adds the write errors of the records keep selects to res: fenced
// ones as skipped, refused ones as rejections; a transient one fails the write.
func (s *Sink) tally(ctx context.Context, res *Result, collection string, recs []record.Record, bwe mongo.BulkWriteException, keep func(i int) bool) error {
	for _, we := range bwe.WriteErrors {
		if !keep(we.Index) {
			continue
		}
		v := classifyWriteError(we.WriteError, s.guarded(&recs[we.Index]))
		if _, known := duplicateIndex(we.WriteError); v == fenced && !known {
			// The server did not say which unique index refused the
			// upsert (FerretDB 1.x): look at what is stored under the _id.
			stored, newer, err := s.storedUnder(ctx, collection, &recs[we.Index])
			switch {
			case err != nil:
				return fmt.Errorf("bulk write of %d to %s: checking a duplicate key: %w", len(recs), collection, err)
			case !stored:
				v = reject // no document of this _id: another unique index
			case !newer:
				v = retry // an upsert of this _id raced ours: the retry matches it
			}
		}
		switch v {
		case fenced:
			res.Skipped++
		case retry:
			return fmt.Errorf("bulk write of %d to %s: %w", len(recs), collection, bwe)
		case reject:
			res.Rejected = append(res.Rejected, rejection(we.Index, we.WriteError))
		}
	}
	return nil
}

// writeEach is write for a server whose bulk results cannot be trusted: the
// deletes' outcome stands (deleted counts them, errs lists their failures),
// and every upsert is written again on its own.
func (s *Sink) writeEach(ctx context.Context, collection string, recs []record.Record, errs mongo.BulkWriteException, deleted int) (Result, error) {
	res := Result{Deleted: deleted, Skipped: s.countFencedDeletes(recs, deleted)}
	if err := s.tally(ctx, &res, collection, recs, errs, func(i int) bool { return recs[i].Tombstone }); err != nil {
		return Result{}, err
	}
	for i := range recs {
		if recs[i].Tombstone {
			continue
		}
		one, err := s.write(ctx, collection, recs[i:i+1])
		if err != nil {
			return Result{}, err
		}
		res.add(one, i)
	}
	return res, nil
}

func rejection(index int, we mongo.WriteError) Rejection {
	return Rejection{Index: index, Err: &record.PoisonError{
		Class: record.ClassRejected,
		Err:   fmt.Errorf("MongoDB refused the document (code %d): %s", we.Code, we.Message),
	}}
}

// countFencedDeletes: a guarded delete that matched nothing was either
// fenced by a newer document or found nothing to delete; both leave the
// database as the topic says, so they count as skipped.
func (s *Sink) countFencedDeletes(recs []record.Record, deleted int) int {
	n := 0
	for i := range recs {
		if recs[i].Tombstone {
			n++
		}
	}
	if n > deleted {
		return n - deleted
	}
	return 0
}

func (s *Sink) guarded(r *record.Record) bool {
	return s.opts.StaleGuard && s.opts.SyncField != "" && !r.GuardAt().IsZero()
}

func (s *Sink) filter(r *record.Record) bson.D {
	f := bson.D{{Key: "_id", Value: r.ID}}
	if s.guarded(r) {
		// $not/$gt also matches documents without the field (written before
		// the guard, or by something else): only a stored newer time fences.
		f = append(f, bson.E{Key: s.opts.SyncField + ".processedAt", Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$gt", Value: bson.NewDateTimeFromTime(r.GuardAt())}}}}})
	}
	return f
}

func (s *Sink) model(r *record.Record) mongo.WriteModel {
	if r.Tombstone {
		return mongo.NewDeleteOneModel().SetFilter(s.filter(r))
	}
	return mongo.NewReplaceOneModel().SetFilter(s.filter(r)).SetReplacement(s.document(r)).SetUpsert(true)
}

// document is the document s writes for r.
func (s *Sink) document(r *record.Record) bson.Raw { return Document(r, s.opts.SyncField) }

// Document is the document statesync writes for r (not a tombstone): its
// payload and, unless syncField is "", the sync metadata under syncField
// (topic, partition, offset, and processedAt and traceId when r has them),
// which replaces a payload field of that name (docs/design.md "Write
// semantics").
func Document(r *record.Record, syncField string) bson.Raw {
	if syncField == "" {
		return r.Doc
	}
	doc := bsoncore.Document(r.Doc)
	var out []byte
	var idx int32
	if _, err := doc.LookupErr(syncField); err != nil {
		// The usual case: the payload's elements as they are, in one copy.
		out = append(make([]byte, 0, len(doc)+len(r.Msg.Topic)+len(r.TraceID)+128), doc[:len(doc)-1]...)
	} else {
		idx, out = bsoncore.AppendDocumentStart(make([]byte, 0, len(doc)+128))
		elems, _ := doc.Elements()
		for _, e := range elems {
			if e.Key() == syncField {
				continue // ours wins over a payload field of the same name
			}
			out = append(out, e...)
		}
	}
	mi, out := bsoncore.AppendDocumentElementStart(out, syncField)
	out = bsoncore.AppendStringElement(out, "topic", r.Msg.Topic)
	out = bsoncore.AppendInt32Element(out, "partition", r.Msg.Partition)
	out = bsoncore.AppendInt64Element(out, "offset", r.Msg.Offset)
	if !r.ProcessedAt.IsZero() {
		out = bsoncore.AppendDateTimeElement(out, "processedAt", r.ProcessedAt.UnixMilli())
	}
	if r.TraceID != "" {
		out = bsoncore.AppendStringElement(out, "traceId", r.TraceID)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, mi)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return bson.Raw(out)
}

type verdict int

const (
	reject verdict = iota
	retry
	fenced
)

// MongoDB server error codes statesync tells apart, by the server's names
// for them (error_codes.yml), except the last: an assertion location code
// the server gives no name.
const (
	codeBadValue                  = 2
	codeFailedToParse             = 9
	codeTypeMismatch              = 14
	codeOverflow                  = 15
	codeInvalidLength             = 17
	codeInvalidBSON               = 22
	codeLockTimeout               = 24
	codePathNotViable             = 28
	codeInvalidPath               = 30
	codeMaxTimeMSExpired          = 50
	codeDollarPrefixedFieldName   = 52
	codeInvalidDBRef              = 55
	codeEmptyFieldName            = 56
	codeDottedFieldName           = 57
	codeImmutableField            = 66
	codeDocumentValidationFailure = 121
	codeExceededTimeLimit         = 262
	codeBSONObjectTooLarge        = 10334
	codeDuplicateKey              = 11000
	codeKeyTooLong                = 17280
	codeUpdatedDocumentTooLarge   = 17419 // the document an update leaves is over 16 MiB
)

// Server error codes that say the document itself can never be written as
// it is. Any other code (InternalError, LockTimeout, codes this list does not
// know) is retried, and a record that keeps failing with one is dead-lettered
// as unwritable only on a canary's proof (Applier.write).
var documentCodes = map[int]bool{
	codeBadValue:                  true,
	codeFailedToParse:             true,
	codeTypeMismatch:              true,
	codeOverflow:                  true,
	codeInvalidLength:             true,
	codeInvalidBSON:               true,
	codePathNotViable:             true,
	codeInvalidPath:               true,
	codeDollarPrefixedFieldName:   true,
	codeInvalidDBRef:              true,
	codeEmptyFieldName:            true,
	codeDottedFieldName:           true,
	codeImmutableField:            true,
	codeDocumentValidationFailure: true,
	codeBSONObjectTooLarge:        true,
	codeKeyTooLong:                true,
	codeUpdatedDocumentTooLarge:   true,
}

// Server error codes of a write that ran out of time: never the record's fault.
var timeoutCodes = []int{codeLockTimeout, codeMaxTimeMSExpired, codeExceededTimeLimit}

func classifyWriteError(we mongo.WriteError, guarded bool) verdict {
	switch {
	case we.Code == codeDuplicateKey && !onIDIndex(we):
		// Another document holds the value of a unique field of this one:
		// the server refuses the document as it is.
		return reject
	case we.Code == codeDuplicateKey && guarded:
		// The guarded filter did not match an existing _id, so the upsert
		// tried to insert it: the stored document is newer.
		return fenced
	case documentCodes[we.Code]:
		return reject
	default:
		// Two upserts of one new _id raced (duplicate key, unguarded: the
		// retry matches it), or the server could not do it now.
		return retry
	}
}

// onIDIndex reports whether a duplicate-key error is on the _id index, as
// far as the error says (see duplicateIndex); one that does not say is
// taken as _id's, and its caller checks.
func onIDIndex(we mongo.WriteError) bool {
	name, known := duplicateIndex(we)
	return !known || name == "_id"
}

// duplicateIndex names the unique index of a duplicate-key error by its
// keyPattern (MongoDB 4.4+: "_id" for the _id index) or by the index its
// message names ("index: _id_"); known is false when the error says neither.
func duplicateIndex(we mongo.WriteError) (name string, known bool) {
	if kp, ok := we.Raw.Lookup("keyPattern").DocumentOK(); ok {
		elems, err := kp.Elements()
		if err == nil && len(elems) == 1 && elems[0].Key() == "_id" {
			return "_id", true
		}
		return kp.String(), true
	}
	_, after, ok := strings.Cut(we.Message, "index: ")
	if !ok {
		return "", false
	}
	name, _, _ = strings.Cut(after, " ")
	if name == "_id_" {
		return "_id", true
	}
	return name, true
}

// storedUnder reports whether collection holds r's _id, and whether with a
// processedAt after r's guard (the stale guard's fence).
func (s *Sink) storedUnder(ctx context.Context, collection string, r *record.Record) (stored, newer bool, err error) {
	raw, err := s.collection(collection).FindOne(ctx, bson.D{{Key: "_id", Value: r.ID}},
		options.FindOne().SetProjection(bson.D{{Key: s.opts.SyncField + ".processedAt", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	at, ok := raw.Lookup(s.opts.SyncField, "processedAt").DateTimeOK()
	return true, ok && at > r.GuardAt().UnixMilli(), nil
}

// isTimeout reports whether err is a write that ran out of time, on the
// client or on the server, including a PostgreSQL lock timeout relayed by
// FerretDB. A timeout never proves a record bad: its collection may be
// locked or slow.
func isTimeout(err error) bool {
	if mongo.IsTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		for _, c := range timeoutCodes {
			if se.HasErrorCode(c) {
				return true
			}
		}
	}
	// PostgreSQL under FerretDB: lock_timeout, statement_timeout and other
	// cancellations (SQLSTATE 55P03, 57014).
	msg := err.Error()
	return strings.Contains(msg, "lock timeout") || strings.Contains(msg, "canceling statement")
}

// canaryID is the _id of the document a canary writes and deletes at once:
// a string, where every entity's _id is an ObjectId (any 24-hex key, the
// zero one included, is an entity's), so it can never be an entity's.
const canaryID = "statesync-canary"

// Canary writes to collection a document of its own, then deletes it: an
// insert (or replace) and a delete that go through the server's whole write
// path for the collection, a document no record can make fail. A write that
// changes nothing would not do: FerretDB 1.x skips a row an update leaves
// unchanged, so such a canary passes where every write fails (a lock that
// blocks writes, a read-only server, a trigger refusing them). A refusal
// for the canary document's own content (a validator, a unique index) also
// proves the write path works. Between the two commands the document
// exists; if the delete does not happen (a crash, a failure), the next
// successful write to the collection deletes it.
func (s *Sink) Canary(ctx context.Context, collection string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	c := s.collection(collection)
	s.mu.Lock()
	s.canaryLeft[collection] = true
	s.mu.Unlock()
	doc := bson.D{{Key: "_id", Value: canaryID}, {Key: "statesync", Value: "canary: written and deleted at once to test that the collection takes writes; safe to delete"}}
	if _, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: canaryID}}, doc, options.Replace().SetUpsert(true)); err != nil && !refusedForItsContent(err) {
		return fmt.Errorf("canary write to %s: %w", collection, err)
	}
	if _, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: canaryID}}); err != nil {
		return fmt.Errorf("canary delete in %s: %w", collection, err)
	}
	s.mu.Lock()
	delete(s.canaryLeft, collection)
	s.mu.Unlock()
	return nil
}

// refusedForItsContent reports whether every write error of err is the
// server refusing the document for what it holds.
func refusedForItsContent(err error) bool {
	var we mongo.WriteException
	if !errors.As(err, &we) || len(we.WriteErrors) == 0 || we.WriteConcernError != nil {
		return false
	}
	for _, e := range we.WriteErrors {
		if e.Code != codeDuplicateKey && !documentCodes[e.Code] {
			return false
		}
	}
	return true
}

// deleteCanaryLeft deletes a canary document a failed canary may have left
// in collection, once a write there passed.
func (s *Sink) deleteCanaryLeft(ctx context.Context, collection string) {
	s.mu.Lock()
	left := s.canaryLeft[collection]
	s.mu.Unlock()
	if !left {
		return
	}
	if _, err := s.collection(collection).DeleteOne(ctx, bson.D{{Key: "_id", Value: canaryID}}); err == nil {
		s.mu.Lock()
		delete(s.canaryLeft, collection)
		s.mu.Unlock()
	}
}

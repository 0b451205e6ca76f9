// Package record turns Kafka state messages (codr.state.<entity>) into BSON
// documents ready for MongoDB (docs/design.md "Wire format"); one that can
// never be written is a *PoisonError, whose dead letter package deadletter
// builds. It is pure: no network, no clock of its own.
package record

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Header is one Kafka message header.
type Header struct {
	Key   string
	Value []byte
}

// Message is a Kafka message as statesync sees it, independent of the client
// library that fetched it.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte // nil for a tombstone
	Headers   []Header
	Timestamp time.Time
}

// Record is a decoded state message.
type Record struct {
	Msg         Message       // the original message, kept for the dead-letter path
	ID          bson.ObjectID // from the Kafka key; the document's _id
	Tombstone   bool          // null value: delete the document
	Doc         bson.Raw      // payload with _id = ID; nil for a tombstone
	TraceID     string        // IMessage header traceId, "" when absent
	ProcessedAt time.Time     // IMessage header processedAt, zero when absent

	// guard overrides ProcessedAt as the stale-write guard's threshold when
	// guardSet (a batch's collapse of several records of one key; see batch).
	guard    time.Time
	guardSet bool
}

// GuardAt is the stale-write guard's threshold for writing r: the write
// applies only over a stored document whose processedAt is not after it.
// Zero means unguarded: the write applies whatever is stored. It is
// ProcessedAt unless SetGuard changed it.
func (r *Record) GuardAt() time.Time {
	if r.guardSet {
		return r.guard
	}
	return r.ProcessedAt
}

// SetGuard sets the threshold GuardAt returns (zero: unguarded).
func (r *Record) SetGuard(t time.Time) { r.guard, r.guardSet = t, true }

// Error classes of records that can never be written as they are. They are
// the error.class header of a dead letter.
const (
	ClassInvalidJSON    = "invalid-json"    // value is not a JSON object / not UTF-8
	ClassInvalidKey     = "invalid-key"     // key missing or not a 24-hex ObjectId
	ClassIDMismatch     = "id-mismatch"     // payload _id/id disagrees with the key
	ClassInvalidPayload = "invalid-payload" // no payload, bad extended JSON, $-prefixed key
	ClassTooLarge       = "too-large"       // BSON document over 16 MiB
	ClassRejected       = "rejected"        // MongoDB refused the document (validation etc.)
	ClassUnwritable     = "unwritable"      // kept failing while MongoDB was healthy
)

// PoisonError is a permanent, per-record failure: the record goes to the
// dead-letter topic and the partition moves on.
type PoisonError struct {
	Class string
	Err   error
}

func (e *PoisonError) Error() string { return e.Class + ": " + e.Err.Error() }
func (e *PoisonError) Unwrap() error { return e.Err }

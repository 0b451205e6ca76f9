package record

import "time"

// DeadLetterInfo and ParseDeadLetter are the old names of deadletter.Letter
// and deadletter.Parse, kept only for the one caller not moved yet
// (test/e2e/model_test.go). Package deadletter imports record, so record
// cannot call it: ParseDeadLetter is nil unless the caller's package sets it
// (test/e2e does, to deadletter.Parse).
//
// Deprecated: use package deadletter; delete this file once nothing uses it.
type DeadLetterInfo struct {
	Topic       string
	Partition   int32
	Offset      int64
	Key         []byte
	TraceID     string
	ProcessedAt string
	Class       string
	Message     string
	At          time.Time
	Original    Message
}

// ParseDeadLetter is deadletter.Parse under its old name, when set.
//
// Deprecated: use deadletter.Parse.
var ParseDeadLetter func(key, value []byte, headers []Header) (DeadLetterInfo, error)

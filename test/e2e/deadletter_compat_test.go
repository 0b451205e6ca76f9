package e2e

import (
	"github.com/codr/statesync/deadletter"
	"github.com/codr/statesync/record"
)

// The model checker still calls the old name record.ParseDeadLetter; it is
// deadletter.Parse. Delete this file (and record/deadletter_compat.go) once
// model_test.go calls deadletter.Parse.
func init() {
	record.ParseDeadLetter = func(key, value []byte, headers []record.Header) (record.DeadLetterInfo, error) {
		l, err := deadletter.Parse(key, value, headers)
		return record.DeadLetterInfo(l), err
	}
}

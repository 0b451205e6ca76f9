package statelog

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// An outage with a retry every 50 ms for 20 s is two lines: failing, and
// recovered (with how long and how many attempts), plus a reminder every
// Every while it lasts.
func TestAConditionIsLoggedWhenItChangesNotPerAttempt(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	now := time.Unix(0, 0)
	var changes []bool
	c := &Condition{Log: zap.New(core), Failing: "MongoDB db:27017 unreachable", Recovered: "MongoDB db:27017 reachable again",
		Every: 8 * time.Second, Now: func() time.Time { return now }, OnChange: func(ok bool) { changes = append(changes, ok) }}
	c.OK() // the start: nothing to say
	for i := 0; i < 400; i++ {
		c.Failed(errors.New("connection refused"))
		now = now.Add(50 * time.Millisecond)
	}
	c.OK()
	c.OK()
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
	}
	want := []string{"MongoDB db:27017 unreachable", "still: MongoDB db:27017 unreachable", "still: MongoDB db:27017 unreachable", "MongoDB db:27017 reachable again"}
	if len(msgs) != len(want) {
		t.Fatalf("logged %d lines, want %d: %q", len(msgs), len(want), msgs)
	}
	for i := range want {
		if msgs[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, msgs[i], want[i])
		}
	}
	last := logs.All()[3].ContextMap()
	if last["failed_attempts"] != int64(400) || last["down_for"] != 20*time.Second {
		t.Errorf("recovery line fields = %v, want 400 attempts over 20s", last)
	}
	if len(changes) != 3 || changes[0] != true || changes[1] != false || changes[2] != true {
		t.Errorf("OnChange calls = %v, want [true false true]", changes)
	}
}

// With Settle, a service that answers once while starting up and refuses
// again is not logged as back (and down again): it is back once it has
// answered for Settle with no failure in between.
func TestASettlingConditionIsOkOnlyAfterAnsweringForSettle(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	now := time.Unix(0, 0)
	c := &Condition{Log: zap.New(core), Failing: "down", Recovered: "back", Settle: 5 * time.Second, Now: func() time.Time { return now }}
	step := func(ok bool) {
		if ok {
			c.OK()
		} else {
			c.Failed(errors.New("refused"))
		}
		now = now.Add(2 * time.Second)
	}
	for _, ok := range []bool{false, false, true, false, false, true, true, true, true} {
		step(ok)
	}
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
	}
	if len(msgs) != 2 || msgs[0] != "down" || msgs[1] != "back" {
		t.Errorf("lines = %q, want [down back]", msgs)
	}
	if c.IsFailed() {
		t.Error("still failed after answering for longer than Settle")
	}
}

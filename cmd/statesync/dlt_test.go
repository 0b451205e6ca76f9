package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/codr/statesync/deadletter"
	"github.com/codr/statesync/record"
)

// replay applies the newest letter of each key, prints one line per letter
// read, and counts an unreadable letter and a failed apply as failed.
func TestReplayAppliesTheNewestLetterOfEachKeyAndCountsTheRest(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	dlt := func(offset int64) record.Message {
		return record.Message{Topic: "codr.svc.mongo.dlt", Offset: offset}
	}
	letter := func(key string) deadletter.Letter {
		return deadletter.Letter{Topic: "codr.state.user", Key: []byte(key), Class: "invalid-json", At: at}
	}
	newer := dlt(2)
	sel := deadletter.Selection{
		Matched: []deadletter.Candidate{
			{Msg: dlt(1), Letter: letter("a"), SupersededBy: &newer},
			{Msg: dlt(2), Letter: letter("a")},
			{Msg: dlt(3), Letter: letter("b")},
		},
		Unreadable: []deadletter.Unreadable{{Msg: dlt(0), Err: errors.New("no error.class")}},
	}
	for _, dryRun := range []bool{false, true} {
		var out bytes.Buffer
		var applied []string
		apply := func(_ context.Context, d deadletter.Letter) error {
			applied = append(applied, string(d.Key))
			if string(d.Key) == "b" {
				return errors.New("still poison")
			}
			return nil
		}
		replayed, superseded, failed := replay(context.Background(), &out, sel, apply, dryRun)
		if replayed != 1 || superseded != 1 || failed != 2 || strings.Join(applied, ",") != "a,b" {
			t.Errorf("dry run %t: replayed %d, superseded %d, failed %d, applied %q; want 1, 1, 2 and a,b", dryRun, replayed, superseded, failed, applied)
		}
		verb := map[bool]string{false: "replay", true: "would replay"}[dryRun]
		want := "skip codr.svc.mongo.dlt[0]@0: not a dead letter statesync can read: no error.class\n" +
			"skip codr.svc.mongo.dlt[0]@1: superseded by the newer dead letter codr.svc.mongo.dlt[0]@2 of key a\n" +
			verb + " codr.svc.mongo.dlt[0]@2 → codr.state.user key=a class=invalid-json at=2026-11-25T10:00:00Z\n" +
			verb + " codr.svc.mongo.dlt[0]@3 → codr.state.user key=b class=invalid-json at=2026-11-25T10:00:00Z: FAILED: still poison\n"
		if out.String() != want {
			t.Errorf("dry run %t: printed\n%s\nwant\n%s", dryRun, out.String(), want)
		}
	}
}

package topics

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/test/testenv"
)

func TestCheckAndCreateAgainstARealBroker(t *testing.T) {
	brokers := testenv.Kafka(t)
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	state := "codr.state.topics-" + n
	dlt := "codr.svc.topics-" + n + ".dlt"
	badName := "Topics_" + n
	badState := "codr.state.topics-bad-" + n
	testenv.CreateTopic(t, brokers, badName, 2, nil)
	testenv.CreateTopic(t, brokers, badState, 1, map[string]string{"cleanup.policy": "delete"})
	t.Cleanup(func() { testenv.DeleteTopics(t, brokers, state, dlt) })

	a, err := NewAdmin(map[string]string{"bootstrap.servers": brokers}, offsets.Logging{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	report, err := a.Ensure(ctx, []string{state, dlt}, 3, 1, false)
	if err != nil {
		t.Fatalf("Ensure: %v (%v)", err, report)
	}
	var created []Topic
	testenv.Eventually(t, 30*time.Second, "created topics to be described", func() bool {
		created, err = a.Describe(ctx, state, dlt)
		return err == nil && len(created) == 2 && created[0].Config != nil && created[1].Config != nil
	})
	for _, tp := range created {
		if v := Check(tp, 3); len(v) != 0 {
			t.Errorf("created topic %s breaks the conventions: %v", tp.Name, v)
		}
		if tp.Partitions != 3 {
			t.Errorf("%s has %d partitions, want 3 (one per replica)", tp.Name, tp.Partitions)
		}
	}

	all, err := a.Describe(ctx, badName, badState, state)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]map[string]bool{}
	for _, tp := range all {
		for _, v := range Check(tp, 3) {
			if rules[v.Topic] == nil {
				rules[v.Topic] = map[string]bool{}
			}
			rules[v.Topic][v.Rule] = true
		}
	}
	if !rules[badName]["name"] {
		t.Errorf("bad name not reported: %v", rules)
	}
	for _, r := range []string{"partitions", "cleanup.policy", "min.compaction.lag.ms"} { // segment.ms defaults to 7 days on the broker
		if !rules[badState][r] {
			t.Errorf("%s: violation %s not reported: %v", badState, r, rules[badState])
		}
	}
	if len(rules[state]) != 0 {
		t.Errorf("compliant topic reported: %v", rules[state])
	}

	t.Run("create leaves an existing topic alone without --fix and fixes it with", func(t *testing.T) {
		if _, err := a.Ensure(ctx, []string{badState}, 3, 1, false); err != nil {
			t.Fatal(err)
		}
		got, _ := a.Describe(ctx, badState)
		if len(got) != 1 || len(Check(got[0], 3)) == 0 {
			t.Fatalf("topic changed without --fix: %+v", got)
		}
		if _, err := a.Ensure(ctx, []string{badState}, 3, 1, true); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "the fixed topic to follow the conventions", func() bool {
			got, err := a.Describe(ctx, badState)
			return err == nil && len(got) == 1 && len(Check(got[0], 3)) == 0
		})
	})
}

package topics

import (
	"strings"
	"testing"
)

func TestClassifyFollowsTheCodrNamingConvention(t *testing.T) {
	cases := []struct {
		topic string
		want  Kind
	}{
		{"codr.state.user", State},
		{"codr.state.user-preference", State},
		{"codr.event.organization", Event},
		{"codr.workflow.user.send-welcome-email", Workflow},
		{"codr.svc.mongo.dlt", DLT},
		{"codr.svc.organization.dlt", DLT},
		{"codr.state.User", Unknown},
		{"codr.state.user_preference", Unknown},
		{"codr.state.user preference", Unknown},
		{"codr.state.", Unknown},
		{"codr.state.-user", Unknown},
		{"codr.state.user--pref", Unknown},
		{"codr.workflow.user", Unknown},
		{"codr.svc.mongo", Unknown},
		{"orders", Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.topic, func(t *testing.T) {
			if got := Classify(tc.topic); got != tc.want {
				t.Errorf("Classify(%q) = %q, want %q", tc.topic, got, tc.want)
			}
		})
	}
}

func TestCheckReportsEachViolation(t *testing.T) {
	good := Topic{Name: "codr.state.user", Partitions: 3, Config: Want(State)}
	if v := Check(good, 2); len(v) != 0 {
		t.Errorf("compliant topic has violations: %v", v)
	}
	bad := Topic{Name: "codr.state.user", Partitions: 1, Config: map[string]string{"cleanup.policy": "delete", "segment.ms": "604800000"}}
	v := Check(bad, 4)
	rules := map[string]bool{}
	for _, x := range v {
		rules[x.Rule] = true
	}
	for _, want := range []string{"partitions", "cleanup.policy", "min.compaction.lag.ms"} {
		if !rules[want] {
			t.Errorf("missing violation %q in %v", want, v)
		}
	}
	if rules["segment.ms"] {
		t.Errorf("segment.ms is right but reported: %v", v)
	}
	dlt := Topic{Name: "codr.svc.mongo.dlt", Partitions: 2, Config: map[string]string{"cleanup.policy": "delete", "retention.ms": "604800000"}}
	if v := Check(dlt, 2); len(v) != 1 || v[0].Rule != "retention.ms" || v[0].Want != "1209600000" {
		t.Errorf("DLT retention violation = %v", v)
	}
	if v := Check(Topic{Name: "Orders", Partitions: 8}, 2); len(v) != 1 || v[0].Rule != "name" || !strings.Contains(v[0].Want, "codr.svc.{service}.dlt") {
		t.Errorf("bad name violation = %v", v)
	}
}

func TestPartitionsAreOnePerReplicaAndAtLeastTwo(t *testing.T) {
	for replicas, want := range map[int]int{0: 2, 1: 2, 2: 2, 8: 8} {
		if got := Partitions(replicas); got != want {
			t.Errorf("Partitions(%d) = %d, want %d", replicas, got, want)
		}
	}
}

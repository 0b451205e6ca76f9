package main

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codr/statesync/config"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/offsets"
)

// The readiness rules, state by state: ready only once MongoDB and the
// brokers answered and the group was joined (an assignment received,
// possibly empty), while dead letters can be published and progress is made.
// Time since start plays no part.
func TestReadinessRules(t *testing.T) {
	type state struct {
		mongo, kafka, subscribed, joined bool
		assigned                         int64
		dltBlocked                       string
		lag                              int64
		lastProgress                     time.Duration // ago; 0: none yet
	}
	healthy := state{mongo: true, kafka: true, subscribed: true, joined: true, assigned: 3}
	with := func(f func(*state)) state { s := healthy; f(&s); return s }
	cases := []struct {
		name  string
		s     state
		ready bool
		why   string // fragment of the reason
	}{
		{"every partition assigned", healthy, true, "ready"},
		{"joined with no partition: a standby when members outnumber partitions",
			with(func(s *state) { s.assigned = 0 }), true, "no partition assigned"},
		{"MongoDB unreachable", with(func(s *state) { s.mongo = false }), false, "MongoDB unreachable"},
		{"brokers never answered (the unreachable-broker case)",
			with(func(s *state) { s.kafka, s.subscribed, s.joined, s.assigned = false, false, false, 0 }), false, "127.0.0.1:1 have not answered"},
		{"subscribed, no assignment received, however long ago the start was",
			with(func(s *state) { s.joined, s.assigned = false, 0 }), false, "joining consumer group g"},
		{"the dead-letter topic does not acknowledge",
			with(func(s *state) {
				s.dltBlocked = "dead-letter topic codr.svc.x.dlt does not acknowledge: Local: Unknown topic"
			}), false, "codr.svc.x.dlt does not acknowledge"},
		{"no progress for longer than STUCK_AFTER with lag",
			with(func(s *state) { s.lag, s.lastProgress = 10, 2*time.Minute }), false, "stuck"},
		{"no progress with no lag is idle, not stuck",
			with(func(s *state) { s.lag, s.lastProgress = 0, 2*time.Minute }), true, "ready"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New(prometheus.NewRegistry())
			h := newHealth(config.Config{StuckAfter: time.Minute, KafkaBrokers: "127.0.0.1:1", KafkaGroupID: "g"}, m)
			h.mongoUp.Store(tc.s.mongo)
			h.kafkaUp.Store(tc.s.kafka)
			st := &offsets.Status{}
			st.Subscribed.Store(tc.s.subscribed)
			st.Joined.Store(tc.s.joined)
			st.Assigned.Store(tc.s.assigned)
			st.Lag.Store(tc.s.lag)
			if tc.s.lastProgress > 0 {
				st.LastProgress.Store(time.Now().Add(-tc.s.lastProgress).UnixNano())
			}
			h.status.Store(st)
			dltBlocked := tc.s.dltBlocked != ""
			h.setDeadLetters(func() (bool, string) { return dltBlocked, tc.s.dltBlocked })
			ok, why := h.ready()
			if ok != tc.ready || !strings.Contains(why, tc.why) {
				t.Errorf("ready = %t %q, want %t with %q", ok, why, tc.ready, tc.why)
			}
			if dltBlocked {
				dltBlocked = false
				if ok, why := h.ready(); !ok {
					t.Errorf("not ready (%q) after the dead-letter topic acknowledged again", why)
				}
			}
		})
	}

	t.Run("no consumer yet", func(t *testing.T) {
		h := newHealth(config.Config{}, metrics.New(nil))
		h.mongoUp.Store(true)
		h.kafkaUp.Store(true)
		if ok, why := h.ready(); ok {
			t.Errorf("ready (%q) before the consumer exists", why)
		}
	})
}

package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/codr/statesync/config"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/statelog"
)

// The readiness rules, state by state, each with the exact reason /readyz
// answers: ready only once MongoDB and the brokers answered and the group
// was joined (an assignment received, possibly empty), while dead letters
// can be published and progress is made. The rules are checked in that
// order: the first one broken is the reason. Time since start plays no part.
func TestReadinessRules(t *testing.T) {
	type state struct {
		mongo, kafka       bool
		noConsumer         bool // the consumer does not exist yet (no status)
		subscribed, joined bool
		assigned           int64
		noDeadLetters      bool   // no dead-letter report given to readiness
		dltBlocked         string // why, when blocked
		lag                int64
		lastProgress       time.Duration // ago; 0: none yet
	}
	healthy := state{mongo: true, kafka: true, subscribed: true, joined: true, assigned: 3}
	with := func(f func(*state)) state { s := healthy; f(&s); return s }
	const (
		ready      = "ready"
		standby    = "ready: group joined, no partition assigned"
		mongoDown  = "MongoDB unreachable"
		noBrokers  = "Kafka brokers 127.0.0.1:1 have not answered yet"
		notSubbed  = "not subscribed yet"
		joining    = "joining consumer group g: no assignment received yet"
		dltWhy     = "dead-letter topic codr.svc.x.dlt does not acknowledge: Local: Unknown topic"
		dltBlocked = dltWhy + "; those partitions wait, nothing is skipped"
		stuck      = "stuck: no progress for 1m0s with lag 10"
	)
	cases := []struct {
		name  string
		s     state
		ready bool
		why   string // the whole reason
		acked string // the reason once the dead-letter topic acknowledges again
	}{
		{"every partition assigned", healthy, true, ready, ""},
		{"joined with no partition: a standby when members outnumber partitions",
			with(func(s *state) { s.assigned = 0 }), true, standby, ""},
		{"a standby stays ready however long it has had no partition",
			with(func(s *state) { s.assigned, s.lastProgress = 0, 24*time.Hour }), true, standby, ""},
		{"MongoDB unreachable", with(func(s *state) { s.mongo = false }), false, mongoDown, ""},
		{"MongoDB is said first when the brokers have not answered either",
			with(func(s *state) { s.mongo, s.kafka = false, false }), false, mongoDown, ""},
		{"brokers never answered (the unreachable-broker case)",
			with(func(s *state) { s.kafka, s.subscribed, s.joined, s.assigned = false, false, false, 0 }), false, noBrokers, ""},
		{"the brokers answered, the consumer does not exist yet",
			with(func(s *state) { s.noConsumer = true }), false, notSubbed, ""},
		{"the brokers answered, the consumer has not subscribed yet",
			with(func(s *state) { s.subscribed, s.joined, s.assigned = false, false, 0 }), false, notSubbed, ""},
		{"subscribed, no assignment received, however long ago the start was",
			with(func(s *state) { s.joined, s.assigned = false, 0 }), false, joining, ""},
		{"the dead-letter topic does not acknowledge",
			with(func(s *state) { s.dltBlocked = dltWhy }), false, dltBlocked, ready},
		{"a standby is not ready while the dead-letter topic does not acknowledge",
			with(func(s *state) { s.assigned, s.dltBlocked = 0, dltWhy }), false, dltBlocked, standby},
		{"blocked dead letters are the reason, not the lack of progress they cause",
			with(func(s *state) { s.dltBlocked, s.lag, s.lastProgress = dltWhy, 10, 2*time.Minute }), false, dltBlocked, stuck},
		{"no dead-letter report given: nothing blocks",
			with(func(s *state) { s.noDeadLetters = true }), true, ready, ""},
		{"no progress for longer than STUCK_AFTER with lag",
			with(func(s *state) { s.lag, s.lastProgress = 10, 2*time.Minute }), false, stuck, ""},
		{"no progress with no lag is idle, not stuck",
			with(func(s *state) { s.lag, s.lastProgress = 0, 2*time.Minute }), true, ready, ""},
		{"lag with progress within STUCK_AFTER is catching up, not stuck",
			with(func(s *state) { s.lag, s.lastProgress = 10, 10*time.Second }), true, ready, ""},
		{"lag before the first progress is starting, not stuck",
			with(func(s *state) { s.lag, s.lastProgress = 10, 0 }), true, ready, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := metrics.New(reg)
			h := newHealth(config.Config{StuckAfter: time.Minute, KafkaBrokers: "127.0.0.1:1", KafkaGroupID: "g"}, m)
			h.mongoUp.Store(tc.s.mongo)
			h.kafkaUp.Store(tc.s.kafka)
			if !tc.s.noConsumer {
				st := &offsets.Status{}
				st.Subscribed.Store(tc.s.subscribed)
				st.Joined.Store(tc.s.joined)
				st.Assigned.Store(tc.s.assigned)
				st.Lag.Store(tc.s.lag)
				if tc.s.lastProgress > 0 {
					st.LastProgress.Store(time.Now().Add(-tc.s.lastProgress).UnixNano())
				}
				h.status.Store(st)
			}
			var blocked atomic.Bool
			blocked.Store(tc.s.dltBlocked != "")
			if !tc.s.noDeadLetters {
				h.setDeadLetters(func() (bool, string) {
					if blocked.Load() {
						return true, tc.s.dltBlocked
					}
					return false, ""
				})
			}
			m.Ready.Set(b2f(!tc.ready)) // ready must set it
			ok, why := h.ready()
			if ok != tc.ready || why != tc.why {
				t.Errorf("ready = %t %q, want %t %q", ok, why, tc.ready, tc.why)
			}
			if got := gauge(t, reg, "statesync_ready"); got != b2f(tc.ready) {
				t.Errorf("statesync_ready = %v, want %v", got, b2f(tc.ready))
			}
			if tc.acked != "" {
				blocked.Store(false)
				if _, why := h.ready(); why != tc.acked {
					t.Errorf("%q once the dead-letter topic acknowledged again, want %q", why, tc.acked)
				}
			}
		})
	}
}

// pings is a MongoDB whose pings answer what err holds.
type pings struct{ err atomic.Pointer[error] }

func (p *pings) set(err error)                  { p.err.Store(&err) }
func (p *pings) Ping(ctx context.Context) error { return *p.err.Load() }

// watchMongo keeps the MongoDB rule current where nothing probes /readyz:
// readiness, statesync_mongo_up and statesync_ready follow the pings, and
// the outage and the recovery are each logged once.
func TestWatchMongoFollowsThePings(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	h := newHealth(config.Config{StuckAfter: time.Minute, KafkaBrokers: "k:9092", KafkaGroupID: "g"}, m)
	h.pingEvery = 5 * time.Millisecond
	h.kafkaUp.Store(true)
	st := &offsets.Status{}
	st.Subscribed.Store(true)
	st.Joined.Store(true)
	h.status.Store(st)
	core, logs := observer.New(zapcore.InfoLevel)
	cond := &statelog.Condition{Log: zap.New(core), Failing: "MongoDB unreachable (m:27017)", Recovered: "MongoDB reachable again (m:27017)"}
	db := &pings{}
	db.set(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.watchMongo(ctx, db, cond) }()
	defer func() { cancel(); <-done }()

	wait := func(what string, want float64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for gauge(t, reg, "statesync_mongo_up") != want || gauge(t, reg, "statesync_ready") != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: statesync_mongo_up %v, statesync_ready %v, want %v", what,
					gauge(t, reg, "statesync_mongo_up"), gauge(t, reg, "statesync_ready"), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	wait("MongoDB answers", 1)
	db.set(errors.New("connection refused"))
	wait("MongoDB stops answering", 0)
	if ok, why := h.ready(); ok || why != "MongoDB unreachable" {
		t.Errorf("ready = %t %q with MongoDB down, want not ready: MongoDB unreachable", ok, why)
	}
	db.set(nil)
	wait("MongoDB answers again", 1)
	cancel()
	<-done
	for _, msg := range []string{"MongoDB unreachable (m:27017)", "MongoDB reachable again (m:27017)"} {
		if n := logs.FilterMessageSnippet(msg).Len(); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%v", msg, n, logs.All())
		}
	}
}

// The applier reports MongoDB's condition through setMongo: readiness and
// statesync_mongo_up follow it.
func TestSetMongoIsTheMongoRule(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	h := newHealth(config.Config{}, m)
	for _, up := range []bool{true, false, true} {
		h.setMongo(up)
		if got := gauge(t, reg, "statesync_mongo_up"); got != b2f(up) {
			t.Errorf("setMongo(%t): statesync_mongo_up = %v", up, got)
		}
		if _, why := h.ready(); (why == "MongoDB unreachable") == up {
			t.Errorf("setMongo(%t): ready says %q", up, why)
		}
	}
}

// gauge is the value of the gauge name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, err := metrics.Sum(reg, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

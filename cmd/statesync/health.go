package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/codr/statesync/config"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/statelog"
)

// health answers /healthz and /readyz.
type health struct {
	mongoUp    atomic.Bool
	kafkaUp    atomic.Bool                           // the brokers answered the start check
	dltBlocked atomic.Pointer[func() (bool, string)] // whether records wait for their dead letters, and why
	status     atomic.Pointer[offsets.Status]        // set once the consumer exists
	metrics    *metrics.Metrics                      // never nil
	stuckAfter time.Duration
	pingEvery  time.Duration // watchMongo's interval
	brokers    string
	group      string
}

// newHealth is readiness for the pipeline cfg describes: not ready until
// MongoDB and the brokers answer and the group is joined.
func newHealth(cfg config.Config, m *metrics.Metrics) *health {
	return &health{stuckAfter: cfg.StuckAfter, pingEvery: 2 * time.Second, metrics: m, brokers: cfg.KafkaBrokers, group: cfg.KafkaGroupID}
}

// setDeadLetters gives readiness the dead-letter publisher's report
// (deadletter.Publisher.Blocked).
func (h *health) setDeadLetters(blocked func() (bool, string)) { h.dltBlocked.Store(&blocked) }

func (h *health) setMongo(up bool) {
	h.mongoUp.Store(up)
	h.metrics.MongoUp.Set(b2f(up))
}

// pinger is what watchMongo needs of the sink.
type pinger interface {
	Ping(ctx context.Context) error
}

// watchMongo pings MongoDB every pingEvery (2 s): readiness, statesync_mongo_up, and
// the log lines when it becomes unreachable, stays so, and answers again.
func (h *health) watchMongo(ctx context.Context, db pinger, cond *statelog.Condition) {
	t := time.NewTicker(h.pingEvery)
	defer t.Stop()
	for {
		err := db.Ping(ctx)
		if ctx.Err() != nil {
			return
		}
		h.setMongo(err == nil)
		if err == nil {
			cond.OK()
		} else {
			cond.Failed(err)
		}
		h.ready() // keeps statesync_ready current where nothing probes /readyz (the sidecar)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ready: MongoDB answers, the brokers answered and the group was joined
// (an assignment received, possibly empty), dead letters can be published,
// and it is not stuck.
func (h *health) ready() (bool, string) {
	ok, why := h.check()
	h.metrics.Ready.Set(b2f(ok))
	return ok, why
}

func (h *health) check() (bool, string) {
	if !h.mongoUp.Load() {
		return false, "MongoDB unreachable"
	}
	if !h.kafkaUp.Load() {
		if msg, refused := kafkaRefused(); refused {
			return false, msg
		}
		return false, fmt.Sprintf("Kafka brokers %s have not answered yet", h.brokers)
	}
	st := h.status.Load()
	if st == nil || !st.Subscribed.Load() {
		return false, "not subscribed yet"
	}
	if !st.Joined.Load() {
		return false, fmt.Sprintf("joining consumer group %s: no assignment received yet", h.group)
	}
	if f := h.dltBlocked.Load(); f != nil {
		if blocked, why := (*f)(); blocked {
			return false, why + "; those partitions wait, nothing is skipped"
		}
	}
	if last := st.LastProgress.Load(); st.Lag.Load() > 0 && last > 0 &&
		time.Since(time.Unix(0, last)) > h.stuckAfter {
		return false, fmt.Sprintf("stuck: no progress for %s with lag %d", h.stuckAfter, st.Lag.Load())
	}
	if st.Assigned.Load() == 0 {
		// A standby (more members than partitions, or no topic matches
		// yet): it is in the group and takes partitions at the next rebalance.
		return true, "ready: group joined, no partition assigned"
	}
	return true, "ready"
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

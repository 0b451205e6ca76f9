// Package statelog logs a condition when it changes — a service becomes
// unreachable, is still unreachable every few minutes, answers again —
// instead of on every failed attempt, so an outage reads as a handful of
// lines whatever the retry rate.
package statelog

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// DefaultEvery is how often a condition that stays failed is logged again.
const DefaultEvery = 5 * time.Minute

// Condition is one thing that works or fails: "Kafka brokers kafka:9092",
// "MongoDB db:27017", "bulk writes to collection user". Failed and OK are
// called after every attempt, from any goroutine; only the changes are
// logged. The zero state is unknown: a first OK logs nothing, a first
// Failed logs the failure.
type Condition struct {
	Log *zap.Logger
	// Failing and Recovered are the messages of the two changes, e.g.
	// "Kafka brokers kafka:9092 unreachable; retrying" and "Kafka brokers
	// kafka:9092 reachable again". The reminder is Failing with "still: ".
	Failing, Recovered string
	// Every: the reminder interval while failed; DefaultEvery when 0.
	Every time.Duration
	// Settle: a failed condition is ok again only once OK has been called
	// for this long with no Failed in between (a service starting up may
	// answer once and refuse again); 0: at the first OK.
	Settle time.Duration
	// OnChange, when set, is told each change (not the unknown → ok start).
	OnChange func(ok bool)
	Fields   []zap.Field // added to every line (addresses, collection)
	Now      func() time.Time

	mu       sync.Mutex
	state    int // unknown, ok, failed
	since    time.Time
	okSince  time.Time // failed, but OK since then (settling)
	lastLog  time.Time
	failures int
}

const (
	unknown = iota
	ok
	failed
)

func (c *Condition) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Condition) log() *zap.Logger {
	if c.Log == nil {
		return zap.NewNop()
	}
	return c.Log
}

// Failed records a failed attempt: logged when the condition was not failed
// already, or as a reminder once Every has passed since the last line.
func (c *Condition) Failed(err error, fields ...zap.Field) {
	c.mu.Lock()
	now := c.now()
	c.failures++
	c.okSince = time.Time{}
	var line string
	changed := false
	switch {
	case c.state != failed:
		c.state, c.since, c.failures = failed, now, 1
		line, changed = c.Failing, true
	case now.Sub(c.lastLog) >= c.every():
		line = "still: " + c.Failing
	}
	n, since := c.failures, c.since
	if line != "" {
		c.lastLog = now
	}
	c.mu.Unlock()
	if line != "" {
		f := append(append([]zap.Field{}, c.Fields...), fields...)
		if !changed {
			f = append(f, zap.Duration("for", now.Sub(since).Round(time.Second)), zap.Int("failed_attempts", n))
		}
		c.log().Warn(line, append(f, zap.Error(err))...)
	}
	if changed && c.OnChange != nil {
		c.OnChange(false)
	}
}

// OK records a successful attempt: logged when the condition was failed
// (once it has settled).
func (c *Condition) OK() {
	c.mu.Lock()
	if c.state == failed && c.Settle > 0 {
		now := c.now()
		if c.okSince.IsZero() {
			c.okSince = now
		}
		if now.Sub(c.okSince) < c.Settle {
			c.mu.Unlock()
			return
		}
	}
	c.okSince = time.Time{}
	was := c.state
	n, since := c.failures, c.since
	c.state, c.failures = ok, 0
	c.mu.Unlock()
	if was == failed {
		f := append(append([]zap.Field{}, c.Fields...),
			zap.Duration("down_for", c.now().Sub(since).Round(time.Millisecond)), zap.Int("failed_attempts", n))
		c.log().Info(c.Recovered, f...)
	}
	if was != ok && c.OnChange != nil {
		c.OnChange(true)
	}
}

// IsFailed reports whether the last attempt failed.
func (c *Condition) IsFailed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == failed
}

func (c *Condition) every() time.Duration {
	if c.Every > 0 {
		return c.Every
	}
	return DefaultEvery
}

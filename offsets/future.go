package offsets

import (
	"time"

	"go.uber.org/zap"

	"github.com/codr/statesync/record"
)

const (
	// futureWindow: a key whose records come from the future is logged at
	// most once per window.
	futureWindow = 10 * time.Minute
	// futureMaxLines bounds the lines (and the keys remembered) per window:
	// a producer with a wrong clock sends every key from the future.
	futureMaxLines = 100
)

// futureWatch remembers which keys were logged as coming from the future in
// the current window. Only the poll goroutine uses it.
type futureWatch struct {
	skew       time.Duration
	start      time.Time           // of the current window
	logged     map[string]struct{} // topic/key logged in this window, at most futureMaxLines
	suppressed int                 // records from the future not logged in this window
}

func newFutureWatch(skew time.Duration) futureWatch {
	return futureWatch{skew: skew, logged: map[string]struct{}{}}
}

// note records that key sent a record from the future at now. It reports
// whether to log it, and how many were left unlogged in the window that now
// ended (0 while it goes on).
func (w *futureWatch) note(key string, now time.Time) (log bool, unlogged int) {
	if now.Sub(w.start) >= futureWindow {
		unlogged = w.suppressed
		w.start, w.suppressed = now, 0
		clear(w.logged)
	}
	if _, ok := w.logged[key]; ok {
		return false, unlogged
	}
	if len(w.logged) >= futureMaxLines {
		w.suppressed++
		return false, unlogged
	}
	w.logged[key] = struct{}{}
	return true, unlogged
}

// fromTheFuture counts and (rate-limited) logs a record whose processedAt is
// further ahead of the local clock than the skew allows: under the
// stale-write guard, its document refuses every update stamped before that
// time, so the key looks frozen until the clock catches up.
func (c *Consumer) fromTheFuture(rec *record.Record, now time.Time) {
	topic := rec.Msg.Topic
	c.o.Metrics.Future.WithLabelValues(topic).Inc()
	log, unlogged := c.future.note(topic+"/"+string(rec.Msg.Key), now)
	if unlogged > 0 {
		c.log.Warn("more records with processedAt in the future were not logged (see statesync_records_future_total)",
			zap.Int("records", unlogged), zap.Duration("window", futureWindow))
	}
	if !log {
		return
	}
	c.log.Warn("record processedAt is in the future: under the stale-write guard its document refuses every update stamped earlier, until the clock gets there; check the producer's clock",
		zap.String("topic", topic), zap.Int32("partition", rec.Msg.Partition), zap.Int64("offset", rec.Msg.Offset),
		zap.ByteString("key", rec.Msg.Key), zap.Time("processedAt", rec.ProcessedAt),
		zap.Duration("ahead", rec.ProcessedAt.Sub(now).Round(time.Second)), zap.Duration("skew", c.future.skew))
}

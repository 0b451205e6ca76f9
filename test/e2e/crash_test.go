package e2e

import (
	"math/rand/v2"
	"testing"
	"time"
)

// fastRejoin: a killed or stopped member leaves the group after 6 s (the broker's minimum)
// instead of 10 s, so restarts do not wait long for it.
const fastRejoin = "session.timeout.ms=6000;heartbeat.interval.ms=500"

// TestCrashKill9FiveTimesLosesNothing: records are produced while statesync syncs them, and the
// process is killed with SIGKILL five times at random points, restarted each time. At the end
// every key holds its latest payload and the group committed the end offsets.
func TestCrashKill9FiveTimesLosesNothing(t *testing.T) {
	start := time.Now()
	s := newScenario(t, 4, nil)
	records, keys := scaled(50000), scaled(5000)
	st := newStream(1, keys)
	msgs := st.gen(records, 3)
	extra := map[string]string{"STATESYNC_KAFKA_PROPERTIES": fastRejoin}

	// about 8 s of producing, concurrently with the first runs
	wait := produceAsync(s.brokers, s.topic, msgs, 2500, 400*time.Millisecond)
	rng := rand.New(rand.NewPCG(7, 7))
	var written float64
	for i := range 5 {
		p := s.start("crash-"+string(rune('a'+i)), extra, "run")
		// kill at a random point after it started writing: 0.2–3 s into its writes
		p.waitMetric(60*time.Second, "statesync_records_written_total", 1)
		time.Sleep(time.Duration(200+rng.IntN(2800)) * time.Millisecond)
		if v, ok := p.metric("statesync_records_written_total"); ok {
			written += v
		}
		p.kill9()
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	final := s.start("crash-final", extra, "run")
	ends := s.waitCommitted(scaledTimeout(4*time.Minute), final)
	d := s.checkExact(st)
	finalWritten, _ := final.metric("statesync_records_written_total")
	if code, took := final.term(20 * time.Second); code != 0 {
		t.Errorf("final run exited %d after SIGTERM (%s), want 0", code, took)
	}
	if got := sumOffsets(ends); got != int64(records) {
		t.Errorf("end offsets sum to %d, want %d records", got, records)
	}
	report(t, "records %d, keys %d (%d live), partitions 4, faults 5×kill -9 during concurrent produce, lost %d, extra %d, diverged %d, "+
		"upserts %.0f before the last kill (approx.) + %.0f by the final run, duration %s",
		records, keys, d.live, d.lost, d.extra, d.diverged, written, finalWritten, time.Since(start).Round(time.Second))
}

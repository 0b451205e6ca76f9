package e2e

import (
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/codr/statesync/test/testenv"
)

// TestGracefulStopDrainsCommitsAndRestartRewritesAtMostABatch: SIGTERM mid-stream makes the
// process drain, commit and exit 0 within the shutdown grace; everything it committed is in the
// database, and what it wrote past its committed offsets (what a restart writes again) is at most
// one batch per partition. The restart completes the database exactly.
func TestGracefulStopDrainsCommitsAndRestartRewritesAtMostABatch(t *testing.T) {
	start := time.Now()
	const partitions, maxDocs, grace = 4, 250, 10 * time.Second
	s := newScenario(t, partitions, nil)
	records, keys := scaled(20000), scaled(2000)
	st := newStream(2, keys)
	testenv.Produce(t, s.brokers, s.topic, st.gen(records, 0))
	extra := map[string]string{"STATESYNC_BATCH_MAX_DOCS": strconv.Itoa(maxDocs), "STATESYNC_SHUTDOWN_GRACE": grace.String()}

	first := s.start("graceful-first", extra, "run")
	first.waitMetric(2*time.Minute, "statesync_records_written_total", float64(scaled(3000)))
	firstWritten, _ := first.metric("statesync_records_written_total")
	code, took := first.term(grace + 10*time.Second)
	if code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if took > grace {
		t.Errorf("exit took %s after SIGTERM, want within the %s grace", took, grace)
	}
	if first.logCount(`"msg":"committed; closing consumer"`) != 1 {
		t.Errorf("no \"committed; closing consumer\" log line after SIGTERM")
	}

	// What the first process committed vs. the highest offset it wrote, per partition.
	committed := testenv.Committed(t, s.brokers, s.group, s.topic)
	ends := testenv.EndOffsets(t, s.brokers, s.topic)
	docs, err := s.readAll()
	if err != nil {
		t.Fatal(err)
	}
	highest := map[int32]int64{}
	for p := range ends {
		highest[p] = -1
	}
	for _, d := range docs {
		highest[d.Sync.Partition] = max(highest[d.Sync.Partition], d.Sync.Offset)
	}
	var rewritten, unwrittenCommitted int64
	for p, c := range committed {
		if c < 0 {
			c = 0
		}
		if highest[p]+1 < c {
			unwrittenCommitted += c - (highest[p] + 1)
			t.Errorf("partition %d: committed offset %d but the highest offset written is %d: committed before written", p, c, highest[p])
		}
		if r := highest[p] + 1 - c; r > 0 {
			rewritten += r
			if r > maxDocs*3 {
				t.Errorf("partition %d: %d records written past the committed offset %d", p, r, c)
			}
		}
	}
	if rewritten > partitions*maxDocs {
		t.Errorf("%d records written past the committed offsets, want at most partitions × BATCH_MAX_DOCS = %d", rewritten, partitions*maxDocs)
	}
	if sumOffsets(committed) >= sumOffsets(ends) {
		t.Logf("note: the first process had committed everything (%v) before SIGTERM: the stop was not mid-stream", committed)
	}
	t.Logf("after SIGTERM: committed %v, highest written %v, end %v", committed, highest, ends)

	second := s.start("graceful-second", extra, "run")
	s.waitCommitted(scaledTimeout(3*time.Minute), second)
	d := s.checkExact(st)
	secondWritten, _ := second.metric("statesync_records_written_total")
	second.signal(syscall.SIGTERM)
	if code, err := second.wait(grace + 10*time.Second); err != nil || code != 0 {
		t.Errorf("second run: exit %d, %v; want 0", code, err)
	}
	report(t, "records %d, keys %d, partitions %d, BATCH_MAX_DOCS %d, fault SIGTERM after %.0f upserts (committed %d of %d records), "+
		"exit 0 in %s (grace %s), re-written %d records (bound %d), committed-but-unwritten %d, second run %.0f upserts, lost %d, extra %d, diverged %d, duration %s",
		records, keys, partitions, maxDocs, firstWritten, sumOffsets(committed), sumOffsets(ends), took.Round(time.Millisecond), grace,
		rewritten, partitions*maxDocs, unwrittenCommitted, secondWritten, d.lost, d.extra, d.diverged, time.Since(start).Round(time.Second))
}

// TestRebalanceTwoReplicasJoinLeaveAndReturn: replica A syncs alone, B joins mid-stream, A is
// stopped with SIGTERM mid-stream (B takes every partition), A starts again; records are produced
// all along. The database ends exact and the group committed the end of every partition.
func TestRebalanceTwoReplicasJoinLeaveAndReturn(t *testing.T) {
	start := time.Now()
	s := newScenario(t, 4, nil)
	records, keys := scaled(30000), scaled(3000)
	st := newStream(3, keys)
	msgs := st.gen(records, 3)
	// two thirds while A alone, then B, syncs (~10 s); the last third once A is back
	split := len(msgs) * 2 / 3
	wait := produceAsync(s.brokers, s.topic, msgs[:split], 1000, 500*time.Millisecond)

	a := s.start("replica-a", nil, "run")
	a.waitMetric(time.Minute, "statesync_records_written_total", 1000)
	b := s.start("replica-b", nil, "run")
	b.waitMetric(time.Minute, "statesync_records_written_total", 500)
	code, took := a.term(30 * time.Second)
	if code != 0 {
		t.Errorf("replica A: exit %d after SIGTERM during the stream, want 0", code)
	}
	aWritten := loggedWritten(a)
	bBefore, _ := b.metric("statesync_records_written_total")
	b.waitMetric(time.Minute, "statesync_records_written_total", bBefore+500)
	a2 := s.start("replica-a-again", nil, "run")
	testenv.Eventually(t, time.Minute, "replica A (again) to be assigned partitions", func() bool {
		return a2.logCount(`"msg":"partitions assigned"`) > 0
	})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wait = produceAsync(s.brokers, s.topic, msgs[split:], 1000, 200*time.Millisecond)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	ends := s.waitCommitted(scaledTimeout(3*time.Minute), b, a2)
	d := s.checkExact(st)
	bConsumed, _ := b.metric("statesync_records_consumed_total")
	a2Consumed, _ := a2.metric("statesync_records_consumed_total")
	for _, p := range []*proc{b, a2} {
		if !p.running() {
			t.Errorf("%s exited: %v", p.name, p.exit)
		}
	}
	if got := sumOffsets(ends); got != int64(records) {
		t.Errorf("end offsets sum to %d, want %d", got, records)
	}
	if bConsumed == 0 || a2Consumed == 0 {
		t.Errorf("both replicas should have consumed after the last rebalance: B %.0f, A again %.0f", bConsumed, a2Consumed)
	}
	for _, p := range []*proc{a2, b} {
		if code, _ := p.term(30 * time.Second); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM, want 0", p.name, code)
		}
	}
	report(t, "records %d, keys %d (%d live), partitions 4, faults: B joins, A leaves (SIGTERM, exit %d in %s), A rejoins, produce throughout; "+
		"A wrote %s before it left; consumed: B %.0f, A again %.0f; lost %d, extra %d, diverged %d, duration %s",
		records, keys, d.live, code, took.Round(time.Millisecond), aWritten, bConsumed, a2Consumed, d.lost, d.extra, d.diverged, time.Since(start).Round(time.Second))
}

// loggedWritten: a stopped process has no /metrics; its last log line says what it wrote.
func loggedWritten(p *proc) string {
	if m := regexp.MustCompile(`"msg":"stopped cleanly".*"written":(\d+)`).FindStringSubmatch(p.stderr()); m != nil {
		return m[1]
	}
	return "?"
}

package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/codr/statesync/test/testenv"
)

// TestZombieWriterCannotOverwriteNewerDocuments: replica A is frozen (SIGSTOP) mid-write for longer
// than the session timeout; replica B takes its partitions over and writes newer records of the
// same keys; then A is thawed (SIGCONT) and finishes what it had in flight. The stale-write guard
// (documents carry _sync.processedAt) keeps B's newer documents, A's late offset commits are
// refused without harm, and the database ends exact with the end offsets committed.
func TestZombieWriterCannotOverwriteNewerDocuments(t *testing.T) {
	start := time.Now()
	s := newScenario(t, 2, nil)
	keys := scaled(4000)
	st := newStream(4, keys)
	phase1 := st.gen(scaled(16000), 0)
	testenv.Produce(t, s.brokers, s.topic, phase1)
	extra := map[string]string{"STATESYNC_KAFKA_PROPERTIES": fastRejoin, "STATESYNC_BATCH_MAX_DOCS": "1000"}

	a := s.start("zombie-a", extra, "run")
	// A batch of 1,000 documents goes out as 25 bulk commands of 40 (about a second on FerretDB):
	// freezing A a moment after a batch completed catches it in the middle of the next one, so
	// that its remaining commands are sent after the thaw, when B has written newer documents.
	a.waitMetric(time.Minute, "statesync_records_written_total", 1000)
	time.Sleep(300 * time.Millisecond)
	a.signal(syscall.SIGSTOP)
	frozen := time.Now()
	t.Logf("zombie-a: SIGSTOP")
	// A's last view of itself, for the figures: /metrics cannot answer while it is stopped.
	b := s.start("zombie-b", extra, "run")
	testenv.Eventually(t, time.Minute, "replica B to take partitions over", func() bool {
		return b.logCount(`"msg":"partitions assigned"`) > 0
	})
	b.waitMetric(time.Minute, "statesync_records_written_total", 1)
	// newer records for the same keys, written by B only
	phase2 := st.genKeys(st.keys)
	testenv.Produce(t, s.brokers, s.topic, phase2)
	s.waitCommitted(scaledTimeout(3*time.Minute), b)
	beforeThaw := s.checkExact(st)
	bWritten, _ := b.metric("statesync_records_written_total")

	a.signal(syscall.SIGCONT)
	t.Logf("zombie-a: SIGCONT after %s frozen", time.Since(frozen).Round(time.Millisecond))
	testenv.Eventually(t, time.Minute, "replica A to notice it lost its partitions and rejoin", func() bool {
		return a.logCount(`"msg":"partitions assigned"`) >= 2 || a.logCount(`"lost":true`) > 0
	})
	// let whatever A had in flight land (or be refused)
	time.Sleep(3 * time.Second)
	if !a.running() || !b.running() {
		t.Fatalf("a replica exited: A %v, B %v", a.exit, b.exit)
	}
	stale, _ := a.metric("statesync_records_skipped_total", `reason="stale"`)
	aWritten, _ := a.metric("statesync_records_written_total")
	refused := a.logCount(`"msg":"store offset refused"`) + a.logCount(`"msg":"offset commits fail`) + a.logCount(`"msg":"commit on revoke failed"`)
	abandoned := a.logCount(`"msg":"batch abandoned`)
	ends := s.waitCommitted(time.Minute, a, b)
	d := s.checkExact(st)
	for _, p := range []*proc{a, b} {
		if code, _ := p.term(30 * time.Second); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM, want 0", p.name, code)
		}
	}
	report(t, "records %d (phase 2: %d newer, by B), keys %d, partitions 2, fault SIGSTOP A %s (session timeout 6s) while B took over, "+
		"then SIGCONT; A: %.0f upserts in all, %.0f stale writes fenced, %d refused offset stores/commits, %d abandoned batches; B %.0f upserts; "+
		"exact before thaw %v; lost %d, extra %d, diverged %d; committed = end %v; duration %s",
		sumOffsets(ends), len(phase2), keys, time.Since(frozen).Round(time.Second), aWritten, stale, refused, abandoned, bWritten,
		beforeThaw.ok(), d.lost, d.extra, d.diverged, ends, time.Since(start).Round(time.Second))
}

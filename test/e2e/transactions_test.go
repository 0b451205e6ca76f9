package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/codr/statesync/test/testenv"
)

// TestATransactionalTopicIsSyncedAndCommittedToItsEnd: a service publishing its state with a
// transactional producer (commit markers take offsets; an aborted transaction's records are never
// read). `statesync import` ends (it stood one offset short of the end for ever before) with the
// database exact and the group committed to the end offsets; `statesync run` commits to the end
// offsets, shows no lag and stays ready. The aborted records are newer versions of live keys: had
// one been written, the database would differ.
func TestATransactionalTopicIsSyncedAndCommittedToItsEnd(t *testing.T) {
	start := time.Now()
	s := newScenario(t, 2, nil)
	st := newStream(11, scaled(300))
	var txs [][]testenv.Msg
	for range 10 {
		txs = append(txs, st.gen(scaled(100), 3))
	}
	// the aborted transaction: records newer than any other of their keys, never in st.want
	var aborted []testenv.Msg
	for i, id := range st.keys[:20] {
		aborted = append(aborted, st.record(id, 1_000_000+i))
	}
	txs = append(txs[:5], append([][]testenv.Msg{aborted}, txs[5:]...)...)
	testenv.ProduceTransactions(t, s.brokers, s.topic, txs, func(i int) bool { return i == 5 })
	ends := testenv.EndOffsets(t, s.brokers, s.topic)
	t.Logf("end offsets %v for %d records in %d transactions (one aborted)", ends, st.next, len(txs))

	imp := s.start("tx-import", nil, "import")
	if code, err := imp.wait(2 * time.Minute); err != nil || code != 0 {
		imp.dumpTail(30)
		t.Fatalf("import: exit %d, %v; want 0 within 2 minutes", code, err)
	}
	if committed := testenv.Committed(t, s.brokers, s.group, s.topic); !equalOffsets(ends, committed) {
		t.Errorf("import committed %v, want the end offsets %v", committed, ends)
	}
	d := s.checkExact(st)

	s.group += "-run" // a second group reads the same topic with `run`
	run := s.start("tx-run", map[string]string{"STATESYNC_KAFKA_GROUP_ID": s.group}, "run")
	s.waitCommitted(time.Minute, run)
	testenv.Eventually(t, 30*time.Second, "statesync_consumer_lag 0 on every partition (it stayed 1 behind a commit marker)", func() bool {
		code, body := run.get("/metrics")
		return code == http.StatusOK && strings.Count(body, "\nstatesync_consumer_lag{") == len(ends) &&
			parseMetric(body, "statesync_consumer_lag") == 0
	})
	if code, body := run.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d %q after syncing a transactional topic, want 200", code, body)
	}
	if code, _ := run.term(20 * time.Second); code != 0 {
		t.Errorf("run: exit %d after SIGTERM, want 0", code)
	}
	s.checkExact(st)
	report(t, "records %d, transactions %d (1 aborted, %d records), %s, took %s", st.next, len(txs), len(aborted), d, time.Since(start).Round(time.Second))
}

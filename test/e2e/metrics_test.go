package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/test/testenv"
)

// TestMetricsCountWhatWasWrittenAndDeadLettered scrapes /metrics during and after a run and checks
// the record counters against what the test produced and what the database and the DLT hold:
// consumed = records produced; written + collapsed + stale = good records; dead-lettered = DLT
// messages = poison records; written ≥ documents in the database.
func TestMetricsCountWhatWasWrittenAndDeadLettered(t *testing.T) {
	start := time.Now()
	s := newScenario(t, 2, nil)
	st := newStream(10, scaled(1000))
	good := st.gen(scaled(4000), 0)
	const poison = 7
	var msgs []testenv.Msg
	for i, m := range good {
		msgs = append(msgs, m)
		if i%(len(good)/poison) == 0 && i/(len(good)/poison) < poison {
			id := bson.NewObjectID().Hex()
			msgs = append(msgs, testenv.Msg{Key: []byte(id), Value: []byte(fmt.Sprintf(`{"payload":{"_id":"%s"}}`, bson.NewObjectID().Hex()))})
		}
	}
	// the first half before the process starts, the rest while it runs
	half := len(msgs) / 2
	testenv.Produce(t, s.brokers, s.topic, msgs[:half])
	p := s.start("metrics", nil, "run")
	during := p.waitMetric(time.Minute, "statesync_records_consumed_total", 1, `topic="`+s.topic+`"`)
	testenv.Produce(t, s.brokers, s.topic, msgs[half:])
	s.waitCommitted(scaledTimeout(2*time.Minute), p)
	d := s.checkExact(st)

	topic := `topic="` + s.topic + `"`
	code, body := p.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	consumed := parseMetric(body, "statesync_records_consumed_total", topic)
	written := parseMetric(body, "statesync_records_written_total", topic)
	collapsed := parseMetric(body, "statesync_records_skipped_total", topic, `reason="collapsed"`)
	stale := parseMetric(body, "statesync_records_skipped_total", topic, `reason="stale"`)
	deadLettered := parseMetric(body, "statesync_records_dead_lettered_total", topic)
	dlt := sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt))
	if int(consumed) != len(msgs) {
		t.Errorf("statesync_records_consumed_total = %v, want %d records produced", consumed, len(msgs))
	}
	if int(deadLettered) != poison || dlt != poison {
		t.Errorf("statesync_records_dead_lettered_total = %v, DLT holds %d, want %d", deadLettered, dlt, poison)
	}
	if int(written+collapsed+stale) != len(good) {
		t.Errorf("written %v + collapsed %v + stale %v = %v, want the %d good records", written, collapsed, stale, written+collapsed+stale, len(good))
	}
	if int(written) < d.docs || stale != 0 {
		t.Errorf("written %v < %d documents, or stale %v ≠ 0 with increasing processedAt", written, d.docs, stale)
	}
	if int(parseMetric(body, "statesync_records_dead_lettered_total", topic, `class="id-mismatch"`)) != poison {
		t.Errorf("dead letters are not all counted under class=\"id-mismatch\":\n%s", grepLines(body, "statesync_records_dead_lettered_total"))
	}
	if lag := parseMetric(body, "statesync_consumer_lag", topic); lag != 0 {
		t.Errorf("statesync_consumer_lag = %v after everything was committed, want 0", lag)
	}
	if code, _ := p.term(30 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	report(t, "records %d (%d good over %d keys, %d poison); /metrics during the run: consumed %.0f; after: consumed %.0f, written %.0f, "+
		"collapsed %.0f, stale %.0f, dead-lettered %.0f (DLT %d); %d documents, lost %d, extra %d, diverged %d; duration %s",
		len(msgs), len(good), len(st.keys), poison, during, consumed, written, collapsed, stale, deadLettered, dlt, d.docs, d.lost, d.extra, d.diverged,
		time.Since(start).Round(time.Second))
}

func grepLines(body, prefix string) string {
	out := ""
	for _, l := range splitNonEmpty(body) {
		if len(l) >= len(prefix) && l[:len(prefix)] == prefix {
			out += l + "\n"
		}
	}
	return out
}

func splitNonEmpty(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

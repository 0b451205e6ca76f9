package e2e

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/codr/statesync/test/testenv"
)

// poisonRecord is a record that is dead-lettered as invalid-key; its dead letter, if consumed,
// would be poison again (same key), and so on forever.
func poisonRecord(st *stream) testenv.Msg {
	return testenv.Msg{Key: []byte("not-an-object-id"), Value: []byte(`{"payload":{"a":1}}`),
		Headers: map[string]string{"processedAt": st.at(st.next).Format(time.RFC3339Nano)}}
}

// TestTheServiceNeverConsumesItsOwnDeadLetters: a regex subscription that matches the dead-letter
// topic too (STATESYNC_TOPICS='^codr\.(state\.X|svc\.X\.dlt)$') consumed the dead letters, and
// every poison record looped through the DLT forever. The DLT must hold each poison record once,
// and nothing of the DLT is consumed.
func TestTheServiceNeverConsumesItsOwnDeadLetters(t *testing.T) {
	start := time.Now()
	s := newScenario(t, 2, nil)
	st := newStream(21, scaled(200))
	var msgs []testenv.Msg
	const poison = 3
	for i, m := range st.gen(scaled(600), 0) {
		msgs = append(msgs, m)
		if i%200 == 100 {
			msgs = append(msgs, poisonRecord(st))
		}
	}
	testenv.Produce(t, s.brokers, s.topic, msgs)
	regex := `^codr\.(` + regexp.QuoteMeta(strings.TrimPrefix(s.topic, "codr.")) + `|` + regexp.QuoteMeta(strings.TrimPrefix(s.dlt, "codr.")) + `)$`
	p := s.start("dlt-regex", map[string]string{"STATESYNC_TOPICS": regex}, "run")
	s.waitCommitted(scaledTimeout(2*time.Minute), p)
	d := s.checkExact(st)
	testenv.Eventually(t, 30*time.Second, "the dead letters acknowledged", func() bool {
		return sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt)) >= poison
	})
	time.Sleep(5 * time.Second) // a loop would dead-letter the dead letters again meanwhile
	letters := sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt))
	consumedDLT, _ := p.metric("statesync_records_consumed_total", `topic="`+s.dlt+`"`)
	if letters != poison || consumedDLT != 0 {
		t.Errorf("the DLT holds %d dead letters, want %d; %v of its records consumed, want 0", letters, poison, consumedDLT)
	}
	if p.logCount("not consuming the dead-letter topic") == 0 {
		t.Error("no log line says the dead-letter topic the regex matches is skipped")
	}
	if code, _ := p.term(30 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	report(t, "records %d (%d poison); dead letters %d; DLT records consumed %.0f; lost %d, extra %d, diverged %d; duration %s",
		len(msgs), poison, letters, consumedDLT, d.lost, d.extra, d.diverged, time.Since(start).Round(time.Second))
}

// TestADeadLetterTopicDeletedWhileRunningHoldsItsPartitionVisibly: the DLT disappears while
// statesync runs and a poison record arrives. Nothing is lost: the partition's commit stays before
// the poison record while the dead letter cannot be published, and it is visible: /readyz 503
// naming the dead-letter topic, statesync_dead_letter_blocked 1, one log line saying how to
// create the topic (not one per retry). Once the topic is back, the dead letter is published,
// the partition goes on to its end, and the process is ready again.
func TestADeadLetterTopicDeletedWhileRunningHoldsItsPartitionVisibly(t *testing.T) {
	start := time.Now()
	s := newScenario(t, 1, nil)
	st := newStream(22, scaled(100))
	testenv.Produce(t, s.brokers, s.topic, st.gen(scaled(300), 0))
	p := s.start("dlt-gone", map[string]string{"STATESYNC_RETRY_MAX_BACKOFF": "2s"}, "run")
	s.waitCommitted(time.Minute, p)
	testenv.Eventually(t, time.Minute, "/readyz 200", func() bool { c, _ := p.get("/readyz"); return c == http.StatusOK })

	testenv.DeleteTopics(t, s.brokers, s.dlt)
	poisonAt := testenv.EndOffsets(t, s.brokers, s.topic)[0]
	after := append([]testenv.Msg{poisonRecord(st)}, st.gen(scaled(100), 0)...)
	testenv.Produce(t, s.brokers, s.topic, after)

	var body string
	testenv.Eventually(t, 2*time.Minute, "/readyz 503 naming the dead-letter topic", func() bool {
		var code int
		code, body = p.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, s.dlt)
	})
	blockedAfter := time.Since(start)
	if v, _ := p.metric("statesync_dead_letter_blocked"); v != 1 {
		t.Errorf("statesync_dead_letter_blocked = %v while /readyz says %q", v, strings.TrimSpace(body))
	}
	time.Sleep(3 * time.Second) // a few retries
	if c := testenv.Committed(t, s.brokers, s.group, s.topic)[0]; c > poisonAt {
		t.Errorf("committed %d past the poison record at %d while its dead letter is not published", c, poisonAt)
	}

	testenv.CreateTopic(t, s.brokers, s.dlt, 1, nil)
	s.waitCommitted(2*time.Minute, p)
	d := s.checkExact(st)
	if n := sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt)); n != 1 {
		t.Errorf("the recreated DLT holds %d dead letters, want the 1 poison record", n)
	}
	testenv.Eventually(t, 30*time.Second, "/readyz 200 again", func() bool { c, _ := p.get("/readyz"); return c == http.StatusOK })
	if v, _ := p.metric("statesync_dead_letter_blocked"); v != 0 {
		t.Errorf("statesync_dead_letter_blocked = %v after the dead letter was published", v)
	}
	failures, _ := p.metric("statesync_dead_letter_failures_total")
	if n := p.logCount("cannot publish to the dead-letter topic", "statesync topics create "+s.dlt); n != 1 {
		t.Errorf("%d log lines say the dead-letter topic cannot be published to, want 1 (%v failed attempts)", n, failures)
	}
	if code, _ := p.term(30 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	report(t, "blocked seen after %s; %.0f failed dead-letter publishes, 1 log line; lost %d, extra %d, diverged %d; duration %s",
		blockedAfter.Round(time.Second), failures, d.lost, d.extra, d.diverged, time.Since(start).Round(time.Second))
}

// TestNotReadyWhileTheBrokersDoNotAnswer: with STATESYNC_KAFKA_BROKERS pointing nowhere, /readyz
// answered 200 and statesync_ready was 1 once 30 s had passed, though no broker ever answered and
// nothing was assigned. Readiness needs the brokers to answer and the group to be joined.
func TestNotReadyWhileTheBrokersDoNotAnswer(t *testing.T) {
	s := newScenario(t, 1, nil)
	p := s.start("no-brokers", map[string]string{"STATESYNC_KAFKA_BROKERS": "127.0.0.1:1"}, "run")
	deadline := time.Now().Add(40 * time.Second)
	polls, notReady := 0, 0
	var body string
	for time.Now().Before(deadline) {
		if !p.running() {
			t.Fatalf("exited (%v): run waits for the brokers", p.exit)
		}
		code, b := p.get("/readyz")
		if code != 0 {
			polls++
			body = strings.TrimSpace(b)
		}
		switch code {
		case http.StatusServiceUnavailable:
			notReady++
		case http.StatusOK:
			t.Fatalf("/readyz 200 after %s with unreachable brokers", time.Since(p.started).Round(time.Second))
		}
		time.Sleep(time.Second)
	}
	if polls == 0 || notReady != polls {
		t.Errorf("%d of %d /readyz polls 503", notReady, polls)
	}
	if !strings.Contains(body, "127.0.0.1:1") {
		t.Errorf("/readyz says %q, want the unreachable brokers named", body)
	}
	if v, ok := p.metric("statesync_ready"); !ok || v != 0 {
		t.Errorf("statesync_ready = %v (scraped %t), want 0", v, ok)
	}
	if code, took := p.term(30 * time.Second); code != 0 || took > 20*time.Second {
		t.Errorf("SIGTERM: exit %d after %s, want 0 promptly", code, took)
	}
	report(t, "%d /readyz polls over 40 s, all 503: %q", polls, body)
}

package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/codr/statesync/test/testenv"
)

// Outage tests stop and start the shared servers with scripts/stack: they never run in parallel
// with anything (no test in this package calls t.Parallel).

// TestMongoOutageRetriesWithoutDeadLetters: FerretDB is stopped for 30 s mid-stream, with records
// still arriving. statesync keeps running, reports not-ready (/readyz 503, statesync_mongo_up 0),
// dead-letters nothing, and once MongoDB is back it is ready again and ends exact.
func TestMongoOutageRetriesWithoutDeadLetters(t *testing.T) {
	start := time.Now()
	stk := controllableStack(t)
	s := newScenario(t, 4, nil)
	st := newStream(5, scaled(2000))
	phase1 := st.gen(scaled(20000), 2)
	testenv.Produce(t, s.brokers, s.topic, phase1)
	extra := map[string]string{"STATESYNC_RETRY_MAX_BACKOFF": "2s"}

	p := s.start("mongo-outage", extra, "run")
	testenv.Eventually(t, time.Minute, "/readyz 200 before the outage", func() bool { c, _ := p.get("/readyz"); return c == http.StatusOK })
	p.waitMetric(time.Minute, "statesync_records_written_total", float64(scaled(2000)))

	const outage = 30 * time.Second
	down := time.Now() // the stop itself takes a few seconds (SIGTERM, wait for the exit)
	stk.stop("mongo")
	var notReadyAfter time.Duration
	testenv.Eventually(t, 20*time.Second, "/readyz 503 while MongoDB is down", func() bool {
		c, _ := p.get("/readyz")
		return c == http.StatusServiceUnavailable
	})
	notReadyAfter = time.Since(down)
	testenv.Eventually(t, 20*time.Second, "statesync_mongo_up 0 while MongoDB is down", func() bool {
		v, ok := p.metric("statesync_mongo_up")
		return ok && v == 0
	})
	phase2 := st.gen(scaled(10000), 2)
	testenv.Produce(t, s.brokers, s.topic, phase2) // Kafka is up: records keep arriving
	var polls, ready200 int
	for time.Since(down) < outage {
		if !p.running() {
			t.Fatalf("statesync exited during the MongoDB outage: %v", p.exit)
		}
		c, body := p.get("/readyz")
		polls++
		if c != http.StatusServiceUnavailable {
			ready200++
			t.Errorf("/readyz answered %d %q during the MongoDB outage, want 503", c, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	retries, _ := p.metric("statesync_write_retries_total")
	up := time.Now()
	stk.start("mongo")
	testenv.Eventually(t, time.Minute, "/readyz 200 after MongoDB is back", func() bool { c, _ := p.get("/readyz"); return c == http.StatusOK })
	readyAfter := time.Since(up)
	if v, _ := p.metric("statesync_mongo_up"); v != 1 {
		t.Errorf("statesync_mongo_up = %v after the outage, want 1", v)
	}
	ends := s.waitCommitted(scaledTimeout(3*time.Minute), p)
	d := s.checkExact(st)
	dlt := testenv.EndOffsets(t, s.brokers, s.dlt)
	if n := sumOffsets(dlt); n != 0 {
		t.Errorf("%d records went to the dead-letter topic during a MongoDB outage, want none", n)
	}
	deadLettered, _ := p.metric("statesync_records_dead_lettered_total")
	if deadLettered != 0 {
		t.Errorf("statesync_records_dead_lettered_total = %v, want 0", deadLettered)
	}
	if code, _ := p.term(30 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	// Logged when it changes, not per ping or per retry.
	if n := p.logCount("MongoDB unreachable"); n != 1 {
		t.Errorf("%d lines say MongoDB is unreachable, want 1", n)
	}
	if n := p.logCount("MongoDB reachable again"); n != 1 {
		t.Errorf("%d lines say MongoDB is reachable again, want 1", n)
	}
	if n := p.logCount("bulk writes to collection", "fail; retried"); n > 4 {
		t.Errorf("%d lines say bulk writes fail during one outage, want one per collection and start of failure", n)
	}
	report(t, "records %d, keys %d (%d live), partitions 4, fault FerretDB stopped %s mid-stream (records produced during it); "+
		"/readyz 503 %s after `stack stop` began, %d/%d polls 503 during the outage, 200 again %s after `stack start` began; %.0f write retries; dead letters %d; "+
		"lost %d, extra %d, diverged %d; duration %s",
		sumOffsets(ends), len(st.keys), d.live, outage, notReadyAfter.Round(time.Millisecond), polls-ready200, polls,
		readyAfter.Round(time.Millisecond), retries, sumOffsets(dlt), d.lost, d.extra, d.diverged, time.Since(start).Round(time.Second))
}

// TestKafkaOutageRecoversOnItsOwn: the broker is stopped for 20 s mid-stream and started again;
// statesync keeps running, reconnects by itself, syncs what is produced afterwards and ends exact.
// Its log stays one stream of JSON lines (librdkafka's own lines go through zap) and the outage
// is a handful of lines: the brokers unreachable once, reachable again once, not a line per
// reconnect attempt (the old binary wrote 390 "All broker connections are down" lines in 20 s).
func TestKafkaOutageRecoversOnItsOwn(t *testing.T) {
	start := time.Now()
	stk := controllableStack(t)
	s := newScenario(t, 4, nil)
	st := newStream(6, scaled(2000))
	testenv.Produce(t, s.brokers, s.topic, st.gen(scaled(20000), 2))
	extra := map[string]string{"STATESYNC_RETRY_MAX_BACKOFF": "2s"}

	p := s.start("kafka-outage", extra, "run")
	p.waitMetric(time.Minute, "statesync_records_written_total", float64(scaled(2000)))
	before, _ := p.metric("statesync_records_written_total")

	const outage = 20 * time.Second
	linesBefore := len(logLines(p.stderr()))
	down := time.Now()
	stk.stop("kafka")
	for time.Since(down) < outage {
		if !p.running() {
			t.Fatalf("statesync exited during the Kafka outage: %v", p.exit)
		}
		time.Sleep(500 * time.Millisecond)
	}
	during, _ := p.metric("statesync_records_written_total")
	if v, ok := p.metric("statesync_kafka_up"); !ok || v != 0 {
		t.Errorf("statesync_kafka_up = %v during the outage, want 0", v)
	}
	outageLines := logLines(p.stderr())[linesBefore:]
	stk.start("kafka")
	downFor := time.Since(down)
	phase2 := st.gen(scaled(10000), 2)
	testenv.Produce(t, s.brokers, s.topic, phase2)
	ends := s.waitCommitted(scaledTimeout(3*time.Minute), p)
	recovered := time.Since(down) - downFor
	d := s.checkExact(st)
	if n := sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt)); n != 0 {
		t.Errorf("%d dead letters after a Kafka outage, want none", n)
	}
	if v, _ := p.metric("statesync_kafka_up"); v != 1 {
		t.Errorf("statesync_kafka_up = %v after the outage, want 1", v)
	}
	if code, _ := p.term(30 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	all := logLines(p.stderr())
	for _, l := range all {
		if !json.Valid([]byte(l)) {
			t.Errorf("a log line is not JSON (a raw librdkafka line?): %s", l)
		}
	}
	if len(outageLines) > 8 {
		t.Errorf("%d log lines during a %s Kafka outage, want a handful:\n%s", len(outageLines), outage, strings.Join(outageLines, "\n"))
	}
	if n := p.logCount("Kafka brokers unreachable"); n != 1 {
		t.Errorf("%d lines say the brokers are unreachable, want 1", n)
	}
	if n := p.logCount("Kafka brokers reachable again"); n != 1 {
		t.Errorf("%d lines say the brokers are reachable again, want 1", n)
	}
	sample := ""
	if len(outageLines) > 0 {
		sample = outageLines[0]
	}
	report(t, "records %d, keys %d (%d live), partitions 4, fault broker stopped %s (down %s incl. restart) mid-stream; "+
		"upserts %.0f at the stop, %.0f when the broker came back (buffered records kept being written); "+
		"committed = end %s after the broker was back; lost %d, extra %d, diverged %d; %d log lines during the outage, all JSON (first: %s); duration %s",
		sumOffsets(ends), len(st.keys), d.live, outage, downFor.Round(time.Second), before, during, recovered.Round(time.Second),
		d.lost, d.extra, d.diverged, len(outageLines), sample, time.Since(start).Round(time.Second))
}

// logLines are the non-empty lines of a log.
func logLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

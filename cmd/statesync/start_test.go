package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codr/statesync/test/testenv"
)

// cliWith runs the statesync command line with the given STATESYNC_*
// variables (and no others) and returns its exit code, stderr and duration.
func cliWith(t *testing.T, timeout time.Duration, vars map[string]string, args ...string) (int, string, time.Duration) {
	t.Helper()
	for _, name := range []string{"KAFKA_BROKERS", "KAFKA_GROUP_ID", "TOPICS", "MONGO_URI", "MONGO_DATABASE", "DLT_TOPIC", "HTTP_ADDR", "LOG_FORMAT", "LOG_LEVEL"} {
		t.Setenv("STATESYNC_"+name, vars["STATESYNC_"+name])
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := cli(ctx, args, &stdout, &stderr)
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("statesync %s did not end within %s\nstderr:\n%s", strings.Join(args, " "), timeout, tail(stderr.String()))
	}
	return code, stderr.String(), took
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

func (p *pipeline) vars() map[string]string {
	return map[string]string{
		"STATESYNC_KAFKA_BROKERS":  p.brokers,
		"STATESYNC_KAFKA_GROUP_ID": p.group,
		"STATESYNC_TOPICS":         p.topic,
		"STATESYNC_MONGO_URI":      p.uri,
		"STATESYNC_MONGO_DATABASE": p.db,
		"STATESYNC_DLT_TOPIC":      p.dlt,
		"STATESYNC_HTTP_ADDR":      "off",
		"STATESYNC_LOG_FORMAT":     "json",
		"STATESYNC_LOG_LEVEL":      "warn",
	}
}

// run and import check at start that the dead-letter topic exists (a poison
// record would otherwise hold its partition forever, and import never end)
// and say how to create it.
func TestRunAndImportRefuseToStartWithoutTheDeadLetterTopic(t *testing.T) {
	p := newPipeline(t, 1)
	testenv.Produce(t, p.brokers, p.topic, []testenv.Msg{{Key: []byte("not-an-object-id"), Value: []byte(`{"payload":{}}`)}})
	vars := p.vars()
	missing := "codr.svc.missing-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".dlt"
	vars["STATESYNC_DLT_TOPIC"] = missing
	for _, cmd := range []string{"run", "import"} {
		code, stderr, took := cliWith(t, 2*time.Minute, vars, cmd)
		if code != exitNoDLT {
			t.Errorf("%s: exit %d, want %d\n%s", cmd, code, exitNoDLT, tail(stderr))
		}
		if want := "statesync topics create " + missing; !strings.Contains(stderr, want) || !strings.Contains(stderr, "STATESYNC_DLT_TOPIC") {
			t.Errorf("%s: stderr does not say %q:\n%s", cmd, want, tail(stderr))
		}
		if took > 30*time.Second {
			t.Errorf("%s: took %s to find the topic missing", cmd, took)
		}
	}
	if c := testenv.Committed(t, p.brokers, p.group, p.topic); c[0] > 0 {
		t.Errorf("committed %d: the poison record was passed without a dead-letter topic", c[0])
	}
}

// import against brokers that do not answer fails within the start check's
// bound with its own exit code, naming the brokers (not the group's members).
func TestImportFromUnreachableBrokersNamesThem(t *testing.T) {
	defer func(d time.Duration) { brokerWait = d }(brokerWait)
	brokerWait = 3 * time.Second
	vars := map[string]string{
		"STATESYNC_KAFKA_BROKERS":  "127.0.0.1:1",
		"STATESYNC_MONGO_URI":      testenv.Mongo(t),
		"STATESYNC_MONGO_DATABASE": "unreachable",
		"STATESYNC_HTTP_ADDR":      "off",
		"STATESYNC_LOG_LEVEL":      "error",
	}
	code, stderr, took := cliWith(t, 2*time.Minute, vars, "import")
	if code != exitUnreachable {
		t.Errorf("exit %d, want %d", code, exitUnreachable)
	}
	if !strings.Contains(stderr, "127.0.0.1:1 (STATESYNC_KAFKA_BROKERS) are unreachable") || strings.Contains(stderr, "members") {
		t.Errorf("stderr does not name the unreachable brokers:\n%s", tail(stderr))
	}
	if took > 20*time.Second {
		t.Errorf("took %s", took)
	}
}

// A topic list naming the dead-letter topic is a configuration error.
func TestATopicListWithTheDeadLetterTopicIsAConfigurationError(t *testing.T) {
	vars := map[string]string{
		"STATESYNC_KAFKA_BROKERS":  "127.0.0.1:1",
		"STATESYNC_MONGO_URI":      "mongodb://127.0.0.1:1",
		"STATESYNC_MONGO_DATABASE": "x",
		"STATESYNC_TOPICS":         "codr.state.loop,codr.svc.advloop.dlt",
		"STATESYNC_DLT_TOPIC":      "codr.svc.advloop.dlt",
	}
	code, stderr, _ := cliWith(t, time.Minute, vars, "run")
	if code != exitUsage || !strings.Contains(stderr, "remove it from STATESYNC_TOPICS") {
		t.Errorf("exit %d, want %d with what to change:\n%s", code, exitUsage, stderr)
	}
}

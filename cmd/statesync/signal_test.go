package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/test/testenv"
)

// The test binary doubles as the statesync binary: with
// STATESYNC_TEST_MAIN set it runs main with the arguments it holds
// (space-separated), so a test can signal a real process.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("STATESYNC_TEST_MAIN"); ok {
		os.Args = append([]string{"statesync"}, strings.Fields(args)...)
		main()
		return
	}
	os.Exit(m.Run())
}

// process is statesync running as a child process.
type process struct {
	cmd    *exec.Cmd
	stderr string // path of its stderr
	done   chan struct{}
	code   int
}

func startProcess(t *testing.T, vars map[string]string, args ...string) *process {
	t.Helper()
	env := []string{"STATESYNC_TEST_MAIN=" + strings.Join(args, " ")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STATESYNC_") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	p := &process{stderr: filepath.Join(t.TempDir(), "stderr"), done: make(chan struct{})}
	f, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = env
	p.cmd.Stderr = f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		f.Close()
		p.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) log() string {
	b, _ := os.ReadFile(p.stderr)
	return string(b)
}

func (p *process) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

// waitExit waits for the exit and returns how long it took.
func (p *process) waitExit(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-p.done:
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("still running %s later\n%s", within, tail(p.log()))
		return 0
	}
}

func (p *process) waitLog(t *testing.T, within time.Duration, fragment string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.log(), fragment) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q logged within %s:\n%s", fragment, within, tail(p.log()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jsonLines checks that every line of a log is a JSON object (no raw
// librdkafka line) and returns them.
func jsonLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("not a JSON log line (a raw librdkafka line?): %s", sc.Text())
			continue
		}
		out = append(out, m)
	}
	return out
}

// The first SIGTERM starts the clean shutdown, which waits up to the grace
// period for the writes in flight (MongoDB is down here, so they never
// finish); a second SIGTERM exits at once with 128+15.
func TestASecondSignalExitsAtOnce(t *testing.T) {
	p := newPipeline(t, 1)
	var msgs []testenv.Msg
	for i := 0; i < 20; i++ {
		msgs = append(msgs, stateRecord(bson.NewObjectID(), i, time.Now()))
	}
	testenv.Produce(t, p.brokers, p.topic, msgs)
	vars := p.vars()
	vars["STATESYNC_MONGO_URI"] = "mongodb://127.0.0.1:1/"
	vars["STATESYNC_SHUTDOWN_GRACE"] = "60s"
	vars["STATESYNC_RETRY_MAX_BACKOFF"] = "1s"
	vars["STATESYNC_LOG_LEVEL"] = "info"
	proc := startProcess(t, vars, "run")
	proc.waitLog(t, time.Minute, "bulk writes to collection "+p.entity+" fail")

	proc.signal(t, syscall.SIGTERM)
	proc.waitLog(t, 10*time.Second, "received SIGTERM: stopping cleanly (send it again to exit at once)")
	time.Sleep(2 * time.Second)
	select {
	case <-proc.done:
		t.Fatalf("exited (%d) on the first SIGTERM with a write in flight and 60 s of grace:\n%s", proc.code, tail(proc.log()))
	default:
	}
	proc.signal(t, syscall.SIGTERM)
	took := proc.waitExit(t, 5*time.Second)
	if proc.code != exitSignal+int(syscall.SIGTERM) {
		t.Errorf("exit %d after the second SIGTERM, want %d", proc.code, exitSignal+int(syscall.SIGTERM))
	}
	if !strings.Contains(proc.log(), "received a second SIGTERM: exiting at once") {
		t.Errorf("the second signal is not logged:\n%s", tail(proc.log()))
	}
	jsonLines(t, proc.log())
	t.Logf("second SIGTERM → exit %d after %s", proc.code, took.Round(time.Millisecond))
}

// With the brokers unreachable, run logs through zap only (no raw
// librdkafka line) and says it once, not once per reconnect attempt; the
// first SIGINT stops it cleanly (exit 0), closing what it built in reverse
// order, each step logged.
func TestUnreachableBrokersAreOneJSONLineNotOnePerRetry(t *testing.T) {
	proc := startProcess(t, map[string]string{
		"STATESYNC_KAFKA_BROKERS":  "127.0.0.1:1",
		"STATESYNC_MONGO_URI":      testenv.Mongo(t),
		"STATESYNC_MONGO_DATABASE": "unreachable_brokers",
		"STATESYNC_HTTP_ADDR":      "off",
		"STATESYNC_LOG_FORMAT":     "json",
	}, "run")
	time.Sleep(8 * time.Second)
	proc.signal(t, syscall.SIGINT)
	took := proc.waitExit(t, 10*time.Second)
	if proc.code != 0 {
		t.Errorf("exit %d after SIGINT, want 0", proc.code)
	}
	lines := jsonLines(t, proc.log())
	before := slices.IndexFunc(lines, func(l map[string]any) bool { return strings.HasPrefix(l["msg"].(string), "received SIGINT") })
	if before < 0 {
		t.Fatalf("the SIGINT is not logged:\n%s", proc.log())
	}
	unreachable := 0
	var closing []string // the shutdown's steps
	for _, l := range lines {
		msg := l["msg"].(string)
		if strings.Contains(msg, "Kafka brokers unreachable (127.0.0.1:1)") {
			unreachable++
		}
		if strings.HasPrefix(msg, "closing ") || strings.HasPrefix(msg, "closed ") {
			closing = append(closing, msg)
		}
	}
	if unreachable != 1 || before > 10 {
		t.Errorf("%d lines in 8 s, %d saying the brokers are unreachable, want a handful and 1:\n%s", before, unreachable, proc.log())
	}
	want := []string{"closing MongoDB ping", "closed MongoDB ping", "closing consumer", "closed consumer",
		"closing dead-letter producer", "closed dead-letter producer", "closing MongoDB client", "closed MongoDB client"}
	if !slices.Equal(closing, want) {
		t.Errorf("shutdown logged %q, want %q", closing, want)
	}
	t.Logf("%d log lines in 8 s with unreachable brokers; SIGINT → exit %d after %s", before, proc.code, took.Round(time.Millisecond))
}

// publish to brokers that do not answer: SIGINT during the start check
// ends it at once, saying nothing was published.
func TestPublishToADeadBrokerStopsWhenInterrupted(t *testing.T) {
	proc := startProcess(t, map[string]string{"STATESYNC_KAFKA_BROKERS": "127.0.0.1:1"}, "publish", "--entity", "user", "--generate", "1000")
	time.Sleep(time.Second)
	proc.signal(t, syscall.SIGINT)
	took := proc.waitExit(t, 5*time.Second)
	if proc.code != exitFailure || !strings.Contains(proc.log(), "interrupted before the brokers answered: nothing published") {
		t.Errorf("exit %d, want %d saying nothing was published:\n%s", proc.code, exitFailure, proc.log())
	}
	t.Logf("publish to a dead broker: SIGINT → exit %d after %s", proc.code, took.Round(time.Millisecond))
}

// Records publish could not deliver are purged when it is interrupted: it
// returns at once and counts them (the old one waited message.timeout.ms,
// 5 minutes, and said "context canceled").
func TestAnInterruptedPublishPurgesAndCountsWhatWasNotAcknowledged(t *testing.T) {
	prod, err := offsets.NewProducer(map[string]string{"bootstrap.servers": "127.0.0.1:1"}, "publish", offsets.Logging{})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	res, err := publish(ctx, prod, "codr.state.user", generated(1, 3000, 0), func(int64, float64, bool) {})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !res.interrupted || res.published != 0 || res.sent == 0 || res.notAcked != res.sent {
		t.Errorf("result = %+v, want interrupted with every record sent not acknowledged", res)
	}
	if took > 3*time.Second {
		t.Errorf("took %s after the interrupt at 1 s", took)
	}
}

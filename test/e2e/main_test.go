// Package e2e runs the built statesync binary as a separate process against the real Kafka broker
// and MongoDB-wire server of the local stack (scripts/stack), injects faults (kill -9, SIGTERM,
// SIGSTOP, a second replica, MongoDB and Kafka outages, poison input) and checks that the final
// database holds, document by document, the latest record of every key and that the committed
// offsets reached the end offsets. docs/guarantees.md maps each guarantee to the test proving it.
//
//	scripts/stack up && eval "$(scripts/stack env)"
//	go test -race -count=1 -timeout 20m ./test/e2e/ -v
//
// STATESYNC_E2E_SCALE (float, default 1) multiplies record and key counts for soak runs;
// STATESYNC_E2E_RACE=1 builds the binary under test with -race.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codr/statesync/test/testenv"
)

var (
	repoRoot string // the module root, where scripts/stack lives
	binary   string // the statesync binary built once for the whole run
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s is not the module root (run the tests from test/e2e): %v\n", root, err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "statesync-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "statesync")
	args := []string{"build", "-o", binary}
	if os.Getenv("STATESYNC_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/statesync")
	start := time.Now()
	build := exec.Command("go", args...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", binary, time.Since(start).Round(time.Millisecond))
	code := m.Run()
	testenv.Terminate()
	return code
}

// scale is STATESYNC_E2E_SCALE: record and key counts are multiplied by it.
func scale() float64 {
	if v := os.Getenv("STATESYNC_E2E_SCALE"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
			return f
		}
	}
	return 1
}

func scaled(n int) int { return max(1, int(float64(n)*scale())) }

// scaledTimeout grows a wait with the data volume.
func scaledTimeout(d time.Duration) time.Duration {
	return time.Duration(float64(d) * max(1, scale()))
}

// ---------------------------------------------------------------------------------------------
// scenario: one test's topics, group and database

var seq atomic.Int64

type scenario struct {
	t          *testing.T
	brokers    string
	uri        string
	entity     string // e2e-<n>
	topic      string // codr.state.e2e-<n>
	dlt        string // codr.svc.e2e-<n>.dlt
	db         string
	group      string
	partitions int
	mongo      *mongo.Client
	env        map[string]string // STATESYNC_* for every process of the scenario
}

func newScenario(t *testing.T, partitions int, topicConfig map[string]string) *scenario {
	t.Helper()
	s := &scenario{t: t, brokers: testenv.Kafka(t), uri: testenv.Mongo(t), partitions: partitions}
	n := strconv.FormatInt(time.Now().UnixNano()/1e6, 36) + strconv.FormatInt(seq.Add(1), 36)
	s.entity = "e2e-" + n
	s.topic = "codr.state." + s.entity
	s.dlt = "codr.svc." + s.entity + ".dlt"
	s.db = "e2e_" + n
	s.group = "e2e-" + n
	cfg := map[string]string{"cleanup.policy": "compact"}
	for k, v := range topicConfig {
		cfg[k] = v
	}
	testenv.CreateTopic(t, s.brokers, s.topic, partitions, cfg)
	dltCfg := map[string]string{}
	if v, ok := topicConfig["max.message.bytes"]; ok {
		dltCfg["max.message.bytes"] = v
	}
	testenv.CreateTopic(t, s.brokers, s.dlt, 1, dltCfg)
	s.mongo = testenv.ThrowawayDatabase(t, s.uri, s.db)
	s.env = map[string]string{
		"STATESYNC_KAFKA_BROKERS":  s.brokers,
		"STATESYNC_KAFKA_GROUP_ID": s.group,
		"STATESYNC_TOPICS":         s.topic,
		"STATESYNC_MONGO_URI":      s.uri,
		"STATESYNC_MONGO_DATABASE": s.db,
		"STATESYNC_DLT_TOPIC":      s.dlt,
		"STATESYNC_LOG_FORMAT":     "json",
		"STATESYNC_LOG_LEVEL":      "info",
		"STATESYNC_BATCH_MAX_WAIT": "100ms",
		"STATESYNC_SHUTDOWN_GRACE": "10s",
		// FerretDB 1.x deadlocks on bulks larger than its connection pool: see sink.Options.MaxBulkOps.
		"STATESYNC_MONGO_MAX_BULK_OPS": "20",
	}
	t.Logf("scenario: topic %s (%d partitions), dlt %s, group %s, database %s", s.topic, partitions, s.dlt, s.group, s.db)
	return s
}

func (s *scenario) collection() *mongo.Collection {
	return s.mongo.Database(s.db).Collection(s.entity)
}

// ---------------------------------------------------------------------------------------------
// proc: one statesync process

type proc struct {
	t        *testing.T
	name     string
	cmd      *exec.Cmd
	logPath  string // stderr: the JSON log
	outPath  string // stdout
	httpAddr string
	started  time.Time
	done     chan struct{}
	exit     *os.ProcessState
	waitErr  error
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs `statesync args...` with the scenario's environment plus extra.
func (s *scenario) start(name string, extra map[string]string, args ...string) *proc {
	s.t.Helper()
	t := s.t
	dir := t.TempDir()
	p := &proc{t: t, name: name, logPath: filepath.Join(dir, name+".stderr.log"), outPath: filepath.Join(dir, name+".stdout.log"),
		done: make(chan struct{})}
	p.httpAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STATESYNC_") {
			env = append(env, kv)
		}
	}
	vars := map[string]string{"STATESYNC_HTTP_ADDR": p.httpAddr}
	for k, v := range s.env {
		vars[k] = v
	}
	for k, v := range extra {
		vars[k] = v
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	stderr, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := os.Create(p.outPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.exit = p.cmd.ProcessState
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.dumpTail(60)
		}
	})
	t.Logf("%s: started pid %d: statesync %s (http %s)", name, p.cmd.Process.Pid, strings.Join(args, " "), p.httpAddr)
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) dumpTail(n int) {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	p.t.Logf("---- %s: last %d lines of stderr (%s) ----\n%s", p.name, len(lines), p.logPath, strings.Join(lines, "\n"))
	if out, _ := os.ReadFile(p.outPath); len(out) > 0 {
		p.t.Logf("---- %s: stdout ----\n%s", p.name, tail(string(out), 4000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: signal %v: %v", p.name, sig, err)
	}
}

// kill9 is a crash: SIGKILL, nothing is flushed or committed.
func (p *proc) kill9() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	<-p.done
	p.t.Logf("%s: killed -9 after %s", p.name, time.Since(p.started).Round(time.Millisecond))
}

// wait waits for the exit and returns the exit code (-1: killed by a signal).
func (p *proc) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.exit.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s did not exit within %s", p.name, timeout)
	}
}

// term sends SIGTERM and waits; it returns the exit code and how long the exit took.
func (p *proc) term(timeout time.Duration) (int, time.Duration) {
	p.t.Helper()
	start := time.Now()
	p.signal(syscall.SIGTERM)
	code, err := p.wait(timeout)
	if err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	took := time.Since(start)
	p.t.Logf("%s: SIGTERM → exit %d after %s", p.name, code, took.Round(time.Millisecond))
	return code, took
}

func (p *proc) stdout() string {
	b, _ := os.ReadFile(p.outPath)
	return string(b)
}

func (p *proc) stderr() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

// get returns the status and body of an HTTP endpoint of the process (status 0: no answer).
func (p *proc) get(path string) (int, string) {
	resp, err := httpClient.Get("http://" + p.httpAddr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric sums the samples of a metric whose label set contains every one of labels
// (`topic="..."` style fragments); ok is false when /metrics did not answer.
func (p *proc) metric(name string, labels ...string) (float64, bool) {
	code, body := p.get("/metrics")
	if code != http.StatusOK {
		return 0, false
	}
	return parseMetric(body, name, labels...), true
}

func parseMetric(body, name string, labels ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(rest)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// waitMetric waits until the metric reaches at least min (the process must keep running).
func (p *proc) waitMetric(timeout time.Duration, name string, min float64, labels ...string) float64 {
	p.t.Helper()
	var v float64
	deadline := time.Now().Add(timeout)
	for {
		if !p.running() {
			p.t.Fatalf("%s exited (%v) while waiting for %s ≥ %v", p.name, p.exit, name, min)
		}
		got, ok := p.metric(name, labels...)
		if ok {
			v = got
			if v >= min {
				return v
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s = %v after %s, want ≥ %v", p.name, name, v, timeout, min)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logCount counts JSON log lines of the process containing every fragment.
func (p *proc) logCount(fragments ...string) int {
	n := 0
	for _, line := range strings.Split(p.stderr(), "\n") {
		ok := line != ""
		for _, f := range fragments {
			if !strings.Contains(line, f) {
				ok = false
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------------------------
// the local stack, for outage tests

type stack struct {
	t *testing.T
}

// controllableStack returns the stack the endpoints come from, when this run can stop and start
// its services with scripts/stack. Otherwise the test skips (fails with CI=true).
func controllableStack(t *testing.T) *stack {
	t.Helper()
	brokers, uri := testenv.Kafka(t), testenv.Mongo(t)
	why := ""
	out, err := exec.Command(filepath.Join(repoRoot, "scripts", "stack"), "status").CombinedOutput()
	switch {
	case err != nil:
		why = fmt.Sprintf("scripts/stack status: %v", err)
	default:
		for _, svc := range []struct{ name, endpoint string }{{"kafka", brokers}, {"mongo", uri}} {
			addr := stackAddr(string(out), svc.name)
			if addr == "" || !strings.Contains(svc.endpoint, addr) {
				why += fmt.Sprintf("%s endpoint %q is not the stack's %s (%q); ", svc.name, svc.endpoint, svc.name, addr)
			}
		}
	}
	if why != "" {
		msg := "outage test needs the local stack it can stop and start (scripts/stack up with the same STATESYNC_STACK_* environment, then eval \"$(scripts/stack env)\"): " +
			why + "\nscripts/stack status:\n" + string(out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return &stack{t: t}
}

// stackAddr finds "127.0.0.1:PORT open" on the status line of a running service.
func stackAddr(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != name || f[1] != "running" {
			continue
		}
		for _, w := range f {
			w = strings.Trim(w, "(),")
			if strings.HasPrefix(w, "127.0.0.1:") {
				return w
			}
		}
	}
	return ""
}

func (s *stack) run(args ...string) {
	s.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "stack"), args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("scripts/stack %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	s.t.Logf("scripts/stack %s: %s (%s)", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
}

// stop stops a service and makes sure it is started again when the test ends, however it ends.
func (s *stack) stop(service string) {
	s.t.Helper()
	s.t.Cleanup(func() {
		out, err := exec.Command(filepath.Join(repoRoot, "scripts", "stack"), "start", service).CombinedOutput()
		if err != nil {
			s.t.Errorf("restoring %s: %v\n%s", service, err, out)
		}
	})
	s.run("stop", service)
}

func (s *stack) start(service string) { s.t.Helper(); s.run("start", service) }

// ---------------------------------------------------------------------------------------------
// small helpers

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

var errTimeout = errors.New("timeout")

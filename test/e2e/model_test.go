package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codr/statesync/deadletter"
	"github.com/codr/statesync/record"
	"github.com/codr/statesync/test/testenv"
)

// modelCISeeds is what `go test ./test/e2e/` (and so `make test`) runs when no seeds are given,
// in about 4-5 minutes: seed%6 picks the first fault, so six consecutive seeds cover every kind.
const modelCISeeds = "1-9"

// TestModel is a randomized model checker, deterministic per seed (Jepsen / FoundationDB
// simulation style): each seed draws a history over 2–3 compacted state topics (good records in
// both wire shapes with processedAt newer, equal, older, missing or in the future, tombstones,
// re-creations, duplicate JSON names, invalid UTF-8 traceIds, and every class of poison record),
// batch limits, and faults at random points (kill -9, SIGSTOP while a second replica takes over,
// FerretDB / PostgreSQL / Kafka stopped and started, one collection's table locked). It runs the
// built binary through it and compares the database, document by document, with the reference
// of model.go, the dead-letter topic with the poison records, and the committed offsets with the
// end offsets. A failing seed logs the one command that replays it.
//
//	STATESYNC_MODEL_SEEDS=3,7,10-12   the seeds to run (default 1-9: the CI set)
//	STATESYNC_MODEL_COUNT=200         run 200 consecutive seeds from STATESYNC_MODEL_FIRST (default: from the clock)
//	STATESYNC_MODEL_DURATION=30m      run consecutive seeds until 30 minutes have passed (`make soak`)
func TestModel(t *testing.T) {
	start := time.Now()
	stackEndpoints(t)
	seeds, budget := modelSeeds(t)
	brokers, uri := testenv.Kafka(t), testenv.Mongo(t)
	env := &modelEnv{brokers: brokers, uri: uri}
	env.stk, env.pgAddr = modelStack(t, brokers, uri)
	env.ferret = isFerretDB(t, uri)
	env.runID = strconv.FormatInt(time.Now().UnixMilli()%(36*36*36*36*36*36), 36)
	t.Logf("model: seeds %s; FerretDB %v; service faults %v (postgres %s)", seeds.desc, env.ferret, env.stk != nil, env.pgAddr)

	// A watchdog, for `make soak` (go test -timeout 0): every wait of a seed is bounded, and so is
	// the whole run: 10 minutes a seed (they take about half a minute), or the duration plus 20.
	limit := time.Duration(seeds.len())*10*time.Minute + 5*time.Minute
	if budget > 0 {
		limit = budget + 20*time.Minute
	}
	var current atomic.Uint64
	watchdog := time.AfterFunc(limit, func() {
		// a panic skips the tests' cleanups: leave no process and no stopped service behind
		modelLeftovers.cleanup()
		panic(fmt.Sprintf("TestModel still running after %s, at seed %d; replay: %s", limit, current.Load(), replayCommand(current.Load())))
	})
	defer watchdog.Stop()

	figs := &modelFigures{faults: map[faultKind]int{}}
	var failed []uint64
	for n := 0; ; n++ {
		seed, ok := seeds.next(n)
		if !ok || (budget > 0 && time.Since(start) > budget) {
			break
		}
		current.Store(seed)
		figs.seeds++
		if !t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runModelSeed(t, env, seed, figs) }) {
			failed = append(failed, seed)
			figs.failed++
			t.Logf("seed %d FAILED; replay: %s", seed, replayCommand(seed))
		}
	}
	var kinds []string
	for _, k := range faultKinds {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, figs.faults[k]))
	}
	report(t, "seeds %d (failed %d), records %d (poison %d), faults %d [%s], documents compared %d: lost %d, extra %d, diverged %d "+
		"(zombie late writes excused %d); good records dead-lettered %d; poison records %d: missing from the DLT %d, wrong class %d, "+
		"dead-lettered twice after a redelivery %d; duration %s",
		figs.seeds, figs.failed, figs.records, figs.poison, figs.faultTotal(), strings.Join(kinds, ", "), figs.docs, figs.lost, figs.extra,
		figs.diverged, figs.excused, figs.goodDLT, figs.poison, figs.missingDLT, figs.wrongClass, figs.dupDLT, time.Since(start).Round(time.Second))
	for _, s := range failed {
		t.Logf("replay seed %d: %s", s, replayCommand(s))
	}
}

// modelLeftovers is what a watchdog panic must clean up itself: the processes started, the
// services stopped.
var modelLeftovers leftovers

type leftovers struct {
	mu       sync.Mutex
	procs    []*proc
	services map[string]bool
}

func (l *leftovers) addProc(p *proc) { l.mu.Lock(); l.procs = append(l.procs, p); l.mu.Unlock() }

func (l *leftovers) stopped(svc string, down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.services == nil {
		l.services = map[string]bool{}
	}
	l.services[svc] = down
}

func (l *leftovers) cleanup() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.procs {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
		}
	}
	for svc, down := range l.services {
		if down {
			_ = exec.Command(filepath.Join(repoRoot, "scripts", "stack"), "start", svc).Run()
		}
	}
}

type modelEnv struct {
	brokers, uri string
	stk          *stack // nil: the services cannot be stopped, faults are the processes' only (its t is TestModel's: use the seed's)
	pgAddr       string // the stack's PostgreSQL, for the table lock
	ferret       bool
	runID        string
}

type modelFigures struct {
	seeds, failed, records, poison          int
	docs, lost, extra, diverged, excused    int
	goodDLT, missingDLT, wrongClass, dupDLT int
	faults                                  map[faultKind]int
}

func (f *modelFigures) faultTotal() int {
	n := 0
	for _, v := range f.faults {
		n += v
	}
	return n
}

// replayCommand is the one command that runs seed again (against the same stack).
func replayCommand(seed uint64) string {
	var prefix string
	for _, k := range []string{"STATESYNC_STACK_DIR", "STATESYNC_STACK_KAFKA_PORT", "STATESYNC_STACK_KAFKA_CONTROLLER_PORT",
		"STATESYNC_STACK_PG_PORT", "STATESYNC_STACK_MONGO_PORT"} {
		if v := os.Getenv(k); v != "" {
			prefix += k + "=" + v + " "
		}
	}
	return fmt.Sprintf("%sSTATESYNC_MODEL_SEEDS=%d go test -count=1 -run 'TestModel$' -v ./test/e2e/", prefix, seed)
}

// stackEndpoints: without STATESYNC_TEST_* set, a running local stack (scripts/stack, with this
// environment's STATESYNC_STACK_*) gives the endpoints, so the replay command needs nothing else.
func stackEndpoints(t *testing.T) {
	if os.Getenv(testenv.KafkaEnv) != "" || os.Getenv(testenv.MongoEnv) != "" {
		return
	}
	script := filepath.Join(repoRoot, "scripts", "stack")
	if exec.Command(script, "status").Run() != nil {
		return
	}
	out, err := exec.Command(script, "env").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if ok && (k == testenv.KafkaEnv || k == testenv.MongoEnv) {
			t.Setenv(k, v)
		}
	}
}

type seedSource struct {
	list  []uint64
	first uint64
	count int // 0: unbounded (a duration bounds the run)
	desc  string
}

// len is the number of seeds, 0 when only a duration bounds them.
func (s seedSource) len() int {
	if s.list != nil {
		return len(s.list)
	}
	return s.count
}

func (s seedSource) next(n int) (uint64, bool) {
	if s.list != nil {
		if n < len(s.list) {
			return s.list[n], true
		}
		return 0, false
	}
	if s.count > 0 && n >= s.count {
		return 0, false
	}
	return s.first + uint64(n), true
}

// modelSeeds reads STATESYNC_MODEL_SEEDS / _COUNT / _FIRST / _DURATION; budget 0: no time bound.
func modelSeeds(t *testing.T) (seedSource, time.Duration) {
	var budget time.Duration
	if v := os.Getenv("STATESYNC_MODEL_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("STATESYNC_MODEL_DURATION=%q: want a duration such as 30m", v)
		}
		budget = d
	}
	count := 0
	if v := os.Getenv("STATESYNC_MODEL_COUNT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("STATESYNC_MODEL_COUNT=%q: want a positive number", v)
		}
		count = n
	}
	list := os.Getenv("STATESYNC_MODEL_SEEDS")
	if list == "" && count == 0 && budget == 0 {
		list = modelCISeeds
	}
	if list != "" {
		seeds, err := parseSeeds(list)
		if err != nil {
			t.Fatalf("STATESYNC_MODEL_SEEDS=%q: %v", list, err)
		}
		return seedSource{list: seeds, desc: list}, budget
	}
	first := uint64(time.Now().Unix()%1_000_000) * 1000
	if v := os.Getenv("STATESYNC_MODEL_FIRST"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("STATESYNC_MODEL_FIRST=%q: want a number", v)
		}
		first = n
	}
	desc := fmt.Sprintf("from %d", first)
	if count > 0 {
		desc += fmt.Sprintf(", %d seeds", count)
	}
	if budget > 0 {
		desc += fmt.Sprintf(", for %s", budget)
	}
	return seedSource{first: first, count: count, desc: desc}, budget
}

// parseSeeds reads "3,7,10-12".
func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a seed", part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a || b-a > 100000 {
				return nil, fmt.Errorf("%q is not a range of seeds", part)
			}
		}
		for x := a; x <= b; x++ {
			out = append(out, x)
		}
	}
	return out, nil
}

// modelStack returns the stack whose services the checker may stop and start, and its
// PostgreSQL address; nil when the endpoints are not the local stack's (faults then are kill -9
// and SIGSTOP only; under CI=true that fails the test, as the outage tests do).
func modelStack(t *testing.T, brokers, uri string) (*stack, string) {
	out, err := exec.Command(filepath.Join(repoRoot, "scripts", "stack"), "status").CombinedOutput()
	why := ""
	if err != nil {
		why = fmt.Sprintf("scripts/stack status: %v", err)
	}
	for _, svc := range []struct{ name, endpoint string }{{"kafka", brokers}, {"mongo", uri}} {
		if addr := stackAddr(string(out), svc.name); addr == "" || !strings.Contains(svc.endpoint, addr) {
			why += fmt.Sprintf("%s endpoint %q is not the stack's; ", svc.name, svc.endpoint)
		}
	}
	pg := stackAddr(string(out), "postgres")
	if _, err := exec.LookPath("psql"); err != nil || pg == "" {
		why += "no psql or no PostgreSQL in the stack; "
	}
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("model checker needs the local stack it can stop and start: %s\n%s", why, out)
		}
		t.Logf("model: service faults off (%s): kill -9 and SIGSTOP only", why)
		return nil, ""
	}
	return &stack{t: t}, pg
}

func isFerretDB(t *testing.T, uri string) bool {
	c := testenv.ThrowawayDatabase(t, uri, "model_probe")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		t.Fatalf("buildInfo: %v", err)
	}
	_, err = raw.LookupErr("ferretdbVersion")
	return err == nil || strings.Contains(strings.ToLower(raw.String()), "ferretdb")
}

// ---------------------------------------------------------------------------------------------
// one seed

type modelRun struct {
	t      *testing.T
	env    *modelEnv
	p      *plan
	sc     *scenario
	client *mongo.Client
	procs  []*proc // `run` replicas (a frozen one stays listed)
	all    []*proc // every process started, for what their logs show
	n      int     // processes started, for names
	faults map[faultKind]int
}

func runModelSeed(t *testing.T, env *modelEnv, seed uint64, figs *modelFigures) {
	start := time.Now()
	p := newPlan(seed, fmt.Sprintf("m%ss%d", env.runID, seed), time.Now().Add(-anchorAge))
	if env.stk == nil {
		for i, f := range p.faults {
			if f.kind.needsStack() {
				p.faults[i].kind = []faultKind{faultKill9, faultSigstop}[i%2]
			}
		}
	}
	t.Logf("seed %d: %s", seed, p)
	figs.records += len(p.msgs)
	r := &modelRun{t: t, env: env, p: p, faults: map[faultKind]int{}}
	defer func() { // a seed that stopped early still injected these
		for k, v := range r.faults {
			figs.faults[k] += v
		}
	}()
	for _, tp := range p.topics {
		testenv.CreateTopic(t, env.brokers, tp.name, tp.partitions, map[string]string{"cleanup.policy": "compact"})
	}
	testenv.CreateTopic(t, env.brokers, p.dlt, 1, nil)
	r.client = testenv.ThrowawayDatabase(t, env.uri, p.db)
	r.sc = &scenario{t: t, brokers: env.brokers, uri: env.uri, group: p.group, db: p.db, env: map[string]string{
		"STATESYNC_KAFKA_BROKERS":          env.brokers,
		"STATESYNC_KAFKA_GROUP_ID":         p.group,
		"STATESYNC_TOPICS":                 p.subscription,
		"STATESYNC_TOPIC_REFRESH_INTERVAL": "2s",
		"STATESYNC_MONGO_URI":              env.uri,
		"STATESYNC_MONGO_DATABASE":         p.db,
		"STATESYNC_DLT_TOPIC":              p.dlt,
		"STATESYNC_LOG_FORMAT":             "json",
		"STATESYNC_LOG_LEVEL":              "info",
		"STATESYNC_BATCH_MAX_DOCS":         strconv.Itoa(p.batchDocs),
		"STATESYNC_BATCH_MAX_WAIT":         p.batchWait.String(),
		"STATESYNC_WRITE_CONCURRENCY":      strconv.Itoa(p.concurrency),
		"STATESYNC_MONGO_TIMEOUT":          p.mongoTimeout.String(),
		"STATESYNC_RETRY_MAX_BACKOFF":      "2s",
		"STATESYNC_SHUTDOWN_GRACE":         "10s",
		"STATESYNC_MONGO_MAX_BULK_OPS":     "20",
		"STATESYNC_KAFKA_PROPERTIES":       fastRejoin,
	}}
	if p.collections != "" {
		r.sc.env["STATESYNC_COLLECTIONS"] = p.collections
	}

	r.produce(0)
	if p.importFirst {
		r.importFirst()
	}
	for range p.replicas {
		r.startRun()
	}
	for i, f := range p.faults {
		time.Sleep(f.after)
		r.checkAlive("before " + f.kind.String())
		r.faults[f.kind]++
		r.inject(f, func() { r.produce(i + 1) })
	}
	res := r.finish()

	good, poison := p.counts()
	figs.poison += len(res.e.poison)
	figs.docs += res.docs
	figs.lost += res.lost
	figs.extra += res.extra
	figs.diverged += res.diverged
	figs.excused += res.excused
	figs.goodDLT += res.goodDLT
	figs.missingDLT += res.missingDLT
	figs.wrongClass += res.wrongClass
	figs.dupDLT += res.dupDLT
	report(t, "seed %d: records %d (%d good, %d poison), topics %d, batch docs %d, faults %v, documents compared %d: lost %d, extra %d, "+
		"diverged %d (excused %d); dead letters %d: good records %d, missing %d, wrong class %d, twice %d; committed = end %v; observed: %s; duration %s",
		seed, len(p.msgs), good, poison, len(p.topics), p.batchDocs, r.faults, res.docs, res.lost, res.extra, res.diverged, res.excused,
		res.letters, res.goodDLT, res.missingDLT, res.wrongClass, res.dupDLT, res.committed, r.observed(), time.Since(start).Round(100*time.Millisecond))
}

func (k faultKind) String() string { return string(k) }

// produce sends chunk i and records each message's offset.
func (r *modelRun) produce(i int) {
	r.t.Helper()
	msgs := r.p.chunk(i)
	if len(msgs) == 0 {
		return
	}
	if err := produceModel(r.env.brokers, r.p, msgs); err != nil {
		r.t.Fatalf("produce chunk %d: %v", i, err)
	}
}

// produceModel produces msgs in order to their topic and partition (idempotent, acks=all) and
// sets each one's offset from its delivery report.
func produceModel(brokers string, p *plan, msgs []*modelMsg) error {
	prod, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers, "enable.idempotence": true, "acks": "all",
		"linger.ms": 5, "message.timeout.ms": 120000})
	if err != nil {
		return err
	}
	defer prod.Close()
	delivery := make(chan kafka.Event, len(msgs))
	for _, m := range msgs {
		topic := p.topics[m.topic].name
		km := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: m.partition}, Key: m.key, Value: m.value, Opaque: m}
		for _, h := range m.headers {
			km.Headers = append(km.Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
		for tries := 0; ; tries++ {
			err := prod.Produce(km, delivery)
			var ke kafka.Error
			if errors.As(err, &ke) && ke.Code() == kafka.ErrQueueFull && tries < 1000 {
				prod.Flush(100)
				continue
			}
			if err != nil {
				return fmt.Errorf("produce %s: %w", m, err)
			}
			break
		}
	}
	timeout := time.After(3 * time.Minute)
	for range msgs {
		select {
		case ev := <-delivery:
			km, ok := ev.(*kafka.Message)
			if !ok || km.TopicPartition.Error != nil {
				return fmt.Errorf("delivery: %v", ev)
			}
			km.Opaque.(*modelMsg).offset = int64(km.TopicPartition.Offset)
		case <-timeout:
			return errors.New("no delivery reports within 3 minutes")
		}
	}
	return nil
}

func (r *modelRun) start(kind string, args ...string) *proc {
	r.n++
	p := r.sc.start(fmt.Sprintf("%s-%d", kind, r.n), nil, args...)
	r.all = append(r.all, p)
	modelLeftovers.addProc(p)
	return p
}

// observed sums, over every process of the seed, log lines that show the faults bit: writes
// failing (each retry, or each time a collection's writes start failing, as the binary logs it),
// assignments, lost assignments, refused offset stores, abandoned batches.
func (r *modelRun) observed() string {
	var retries, assigned, lost, refused, abandoned int
	for _, p := range r.all {
		retries += p.logCount(`"msg":"bulk write failed, will retry"`) + p.logCount(`"msg":"bulk writes to collection`, `fail; retried`)
		assigned += p.logCount(`"msg":"partitions assigned"`)
		lost += p.logCount(`"msg":"partitions revoked"`, `"lost":true`)
		refused += p.logCount(`"msg":"store offset refused"`)
		abandoned += p.logCount(`"msg":"batch abandoned`)
	}
	return fmt.Sprintf("processes %d, failing writes %d, assignments %d (lost %d), refused offset stores %d, abandoned batches %d",
		len(r.all), retries, assigned, lost, refused, abandoned)
}

func (r *modelRun) startRun() *proc {
	p := r.start("run", "run")
	r.procs = append(r.procs, p)
	return p
}

func (r *modelRun) checkAlive(when string) {
	r.t.Helper()
	for _, p := range r.procs {
		if !p.running() {
			r.t.Fatalf("%s exited (%v) %s; it must keep running through every fault", p.name, p.exit, when)
		}
	}
}

// importFirst syncs chunk 0 with `statesync import` (killed -9 once midway when the plan says so)
// and checks its exit code and that it committed the end offsets.
func (r *modelRun) importFirst() {
	t, p := r.t, r.p
	args := []string{"import"}
	if p.allowDLT {
		args = append(args, "--allow-dead-letters")
	}
	imp := r.start("import", args...)
	if p.importKill {
		// kill it once it consumed a share of the chunk (a re-run then finds some partitions done,
		// others not); a fast import may finish first, and is then simply run again
		at := max(1, p.killImportAt*float64(len(p.chunk(0))))
		deadline := time.Now().Add(time.Minute)
		for imp.running() && time.Now().Before(deadline) {
			if v, ok := imp.metric("statesync_records_consumed_total"); ok && v >= at {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if imp.running() {
			imp.kill9()
			r.faults[faultKill9]++
		} else {
			t.Logf("%s finished before it could be killed", imp.name)
		}
		imp = r.start("import", args...)
	}
	code, err := imp.wait(2 * time.Minute) // a few hundred records: seconds
	if err != nil {
		t.Errorf("%v (a few hundred records: it takes seconds)", err)
		imp.kill9()
	}
	out := imp.stdout()
	dead := -1
	if m := regexp.MustCompile(`dead-lettered (\d+),`).FindStringSubmatch(out); m != nil {
		dead, _ = strconv.Atoi(m[1])
	}
	want := 0
	for _, m := range p.chunk(0) {
		if m.poisonClass(r.env.ferret) != "" {
			want++
		}
	}
	t.Logf("%s: exit %d, %s", imp.name, code, strings.TrimSpace(firstLine(out)))
	switch {
	case dead < 0:
		t.Errorf("%s: no summary on stdout (exit %d): %q", imp.name, code, out)
	case p.allowDLT && code != 0:
		t.Errorf("%s --allow-dead-letters: exit %d, want 0", imp.name, code)
	case !p.allowDLT && dead > 0 && code != 3:
		t.Errorf("%s dead-lettered %d records: exit %d, want 3", imp.name, dead, code)
	case dead == 0 && code != 0:
		t.Errorf("%s dead-lettered nothing: exit %d, want 0", imp.name, code)
	case !p.importKill && dead != want:
		t.Errorf("%s dead-lettered %d records, want the %d poison records of the chunk", imp.name, dead, want)
	}
	for _, tp := range p.topics {
		ends := testenv.EndOffsets(t, r.env.brokers, tp.name)
		if c := testenv.Committed(t, r.env.brokers, p.group, tp.name); !equalOffsets(ends, c) {
			t.Errorf("after the import, %s: committed %v, want the end offsets %v", tp.name, c, ends)
		}
	}
	// run again, a finished import has nothing to do: it must say so and exit 0 at once
	again := r.start("import", "import", "--allow-dead-letters")
	code, err = again.wait(30 * time.Second) // joining the group and reading the offsets: a few seconds
	switch {
	case err != nil:
		t.Errorf("%s, an import of a group already at its end offsets: %v; it has nothing to do", again.name, err)
		again.kill9()
	case code != 0 || !strings.Contains(again.stdout(), "consumed 0,"):
		t.Errorf("%s, an import of a group already at its end offsets: exit %d, %q; want exit 0, consumed 0", again.name, code, firstLine(again.stdout()))
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// ---------------------------------------------------------------------------------------------
// faults

func (r *modelRun) inject(f fault, during func()) {
	t := r.t
	t.Logf("fault %s", f)
	switch f.kind {
	case faultKill9:
		victim := r.procs[f.pick%len(r.procs)]
		victim.kill9()
		r.procs = slices.DeleteFunc(r.procs, func(p *proc) bool { return p == victim })
		r.startRun()
		during()
	case faultSigstop:
		a := r.procs[f.pick%len(r.procs)]
		a.signal(syscall.SIGSTOP)
		frozen := time.Now()
		t.Logf("%s: SIGSTOP", a.name)
		b := r.startRun()
		during()
		deadline := time.Now().Add(time.Minute)
		for b.logCount(`"msg":"partitions assigned"`) == 0 && b.running() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		// past the session timeout (6 s) the frozen member is out of the group and b owns its partitions
		time.Sleep(time.Until(frozen.Add(7*time.Second)) + f.hold)
		a.signal(syscall.SIGCONT)
		t.Logf("%s: SIGCONT after %s frozen", a.name, time.Since(frozen).Round(time.Millisecond))
	case faultMongo, faultPostgres:
		svc := string(f.kind)
		r.stopService(svc)
		during()
		time.Sleep(f.hold)
		r.startService(svc)
		if f.kind == faultPostgres {
			r.startService("mongo") // restarts FerretDB only if it stopped answering
		}
	case faultKafka:
		r.stopService("kafka")
		time.Sleep(f.hold)
		r.startService("kafka")
		during()
	case faultLock:
		r.lock(f, during)
	default:
		t.Fatalf("unknown fault %s", f.kind)
	}
}

// stopService stops a service of the stack (started again when the test ends, however it ends).
func (r *modelRun) stopService(svc string) {
	r.t.Helper()
	modelLeftovers.stopped(svc, true)
	(&stack{t: r.t}).stop(svc) // the seed's own t: its cleanup starts the service again
}

// startService starts a stopped service of the stack again. scripts/stack start can report a
// service that is starting as "exited during start-up" (its pid checked before the exec): that is
// the stack's, not statesync's, so a failed start is tried again, three times at most.
func (r *modelRun) startService(svc string) {
	r.t.Helper()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		start := time.Now()
		out, err := exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "stack"), "start", svc).CombinedOutput()
		cancel()
		if err == nil {
			r.t.Logf("scripts/stack start %s: %s", svc, time.Since(start).Round(time.Millisecond))
			modelLeftovers.stopped(svc, false)
			return
		}
		if attempt == 3 {
			r.t.Fatalf("scripts/stack start %s failed 3 times: %v\n%s", svc, err, out)
		}
		r.t.Logf("scripts/stack start %s: %v (attempt %d, trying again)\n%s", svc, err, attempt, tail(string(out), 2000))
		time.Sleep(2 * time.Second)
	}
}

// lock holds a lock on the PostgreSQL table of one collection for f.hold: in ACCESS EXCLUSIVE mode
// every read and write of that collection (the canary's too) waits; in EXCLUSIVE mode writes wait
// but FerretDB skips the canary's unchanged row, so the canary passes. The other collections go on.
func (r *modelRun) lock(f fault, during func()) {
	t := r.t
	var table, coll string
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; table == "" && time.Now().Before(deadline); i++ {
		coll = r.p.topics[(f.pick+i)%len(r.p.topics)].collection
		q := fmt.Sprintf(`SELECT _jsonb->>'table' FROM %s._ferretdb_database_metadata WHERE _jsonb->>'_id' = '%s'`, pgIdent(r.p.db), coll)
		out, err := r.psql(10*time.Second, "-c", q).Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) && strings.Contains(string(ee.Stderr), "does not exist") {
			err = nil // nothing written to the database yet
		}
		if err != nil {
			t.Logf("lock: looking up the table of %s: %v", coll, err)
		}
		table = strings.TrimSpace(string(out))
		if table == "" {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if table == "" {
		t.Fatalf("lock: no FerretDB table for any collection of %s.%v within 30s", r.p.db, r.p.topics)
	}
	script := fmt.Sprintf("BEGIN;\nLOCK TABLE %s.%s IN %s MODE;\nSELECT 'locked';\nSELECT pg_sleep(%.3f);\nCOMMIT;\n",
		pgIdent(r.p.db), pgIdent(table), f.mode, f.hold.Seconds())
	cmd := r.psql(f.hold + time.Minute)
	cmd.Stdin = strings.NewReader(script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("lock: psql: %v", err)
	}
	locked := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if !ok && strings.TrimSpace(sc.Text()) == "locked" {
				ok = true
				locked <- true
			}
		}
		if !ok {
			locked <- false
		}
	}()
	took := time.Now()
	select {
	case ok := <-locked:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("lock: psql did not lock %s (%s): %s", table, coll, stderr.String())
		}
	case <-time.After(f.hold + 30*time.Second):
		t.Fatalf("lock: %s not locked within %s", table, f.hold+30*time.Second)
	}
	t.Logf("lock: %s.%s (collection %s) locked in %s mode after %s for %s", r.p.db, table, coll, f.mode, time.Since(took).Round(time.Millisecond), f.hold)
	during()
	if err := cmd.Wait(); err != nil {
		t.Errorf("lock: psql: %v: %s", err, stderr.String())
	}
	t.Logf("lock: released after %s", time.Since(took).Round(time.Millisecond))
}

// psql runs psql against the stack's PostgreSQL (trust authentication on loopback).
func (r *modelRun) psql(timeout time.Duration, args ...string) *exec.Cmd {
	host, port, _ := strings.Cut(r.env.pgAddr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	r.t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "psql", append([]string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port,
		"-U", "postgres", "-d", "ferretdb"}, args...)...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	return cmd
}

func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// ---------------------------------------------------------------------------------------------
// the end: committed offsets, database, dead letters

type seedResult struct {
	e                            *expectation
	committed                    bool
	docs, lost, extra, diverged  int
	excused                      int
	letters, goodDLT, missingDLT int
	wrongClass, dupDLT           int
}

func (r *modelRun) finish() seedResult {
	t, p := r.t, r.p
	res := seedResult{e: p.expect(r.env.ferret)}
	// the offsets each topic must be committed to: what was produced
	ends := map[string]map[int32]int64{}
	for _, tp := range p.topics {
		ends[tp.name] = map[int32]int64{}
		for i := range tp.partitions {
			ends[tp.name][int32(i)] = 0
		}
	}
	for _, m := range p.msgs {
		e := ends[p.topics[m.topic].name]
		e[m.partition] = max(e[m.partition], m.offset+1)
	}
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for {
		r.checkAlive("before the end offsets were committed")
		ok := true
		last = ""
		for _, tp := range p.topics {
			c := testenv.Committed(t, r.env.brokers, p.group, tp.name)
			if !equalOffsets(ends[tp.name], c) {
				ok = false
				last += fmt.Sprintf("%s committed %v, end %v; ", tp.name, c, ends[tp.name])
			}
		}
		if ok {
			res.committed = true
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("committed offsets did not reach the end offsets within 3 minutes: %s", last)
			break
		}
		time.Sleep(time.Second)
	}
	r.checkDatabase(&res)
	r.checkDeadLetters(&res)
	// every replica ready, and a clean SIGTERM
	for _, pr := range r.procs {
		deadline := time.Now().Add(30 * time.Second)
		code, body := pr.get("/readyz")
		for code != http.StatusOK && pr.running() && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			code, body = pr.get("/readyz")
		}
		if code != http.StatusOK {
			t.Errorf("%s: /readyz %d %q at the end, want 200", pr.name, code, strings.TrimSpace(body))
		}
	}
	for _, pr := range r.procs {
		if code, _ := pr.term(40 * time.Second); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM, want 0", pr.name, code)
		}
	}
	if c := testenv.Committed(t, r.env.brokers, p.group, p.dlt); len(c) > 0 && c[0] >= 0 {
		t.Logf("the group has committed offsets on the dead-letter topic: %v (subscription %q)", c, p.subscription)
	}
	return res
}

// checkDatabase compares every collection with the reference, document by document.
func (r *modelRun) checkDatabase(res *seedResult) {
	t, p := r.t, r.p
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := r.client.Database(p.db)
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatalf("list collections of %s: %v", p.db, err)
	}
	want := map[string]bool{}
	for _, tp := range p.topics {
		want[tp.collection] = true
	}
	for _, n := range names {
		if !want[n] {
			t.Errorf("unexpected collection %s.%s (is the dead-letter topic consumed?)", p.db, n)
		}
	}
	zombies, lastChunk, window := p.has(faultSigstop), p.zombieChunk(), int64(4*p.batchDocs)
	examples := 0
	note := func(format string, args ...any) {
		if examples < 12 {
			t.Errorf(format, args...)
		}
		examples++
	}
	for ti, tp := range p.topics {
		got, err := readDocs(ctx, db.Collection(tp.collection))
		if err != nil {
			t.Fatalf("read %s.%s: %v", p.db, tp.collection, err)
		}
		keys := map[bson.ObjectID]bool{}
		for id := range res.e.docs[ti] {
			keys[id] = true
		}
		for id := range got {
			keys[id] = true
		}
		for id := range keys {
			res.docs++
			wantMsg, known := res.e.docs[ti][id]
			raw, present := got[id]
			hist := res.e.history[ti][id]
			switch {
			case !known && id.IsZero():
				res.extra++
				note("%s %s: a canary document left behind (statesync's own, the zero ObjectId): %s", tp.collection, id.Hex(), raw)
			case !known:
				res.extra++
				note("%s %s: a document for a key never produced: %s", tp.collection, id.Hex(), raw)
			case wantMsg == nil && !present:
			case wantMsg == nil:
				holder := holderOf(hist, tp.name, raw)
				if zombies && holder != nil && zombieExcuse(hist, nil, holder, lastChunk, window) {
					res.excused++
					t.Logf("excused: %s %s holds %s, a zombie's late write; the reference deleted it", tp.collection, id.Hex(), holder)
					continue
				}
				res.extra++
				note("%s %s: holds a document (%s), want none: %s; history: %s", tp.collection, id.Hex(), describeHolder(holder), raw, historyString(hist))
			case !present:
				if zombies && zombieExcuse(hist, wantMsg, nil, lastChunk, window) {
					res.excused++
					t.Logf("excused: %s %s deleted by a zombie's late tombstone; the reference holds %s", tp.collection, id.Hex(), wantMsg)
					continue
				}
				res.lost++
				note("%s %s: no document, want %s; history: %s", tp.collection, id.Hex(), wantMsg, historyString(hist))
			default:
				why := docDiff(tp.name, wantMsg, raw)
				if why == "" {
					continue
				}
				holder := holderOf(hist, tp.name, raw)
				if zombies && holder != nil && zombieExcuse(hist, wantMsg, holder, lastChunk, window) {
					res.excused++
					t.Logf("excused: %s %s holds %s, a zombie's late write; the reference holds %s", tp.collection, id.Hex(), holder, wantMsg)
					continue
				}
				res.diverged++
				note("%s %s: %s; want %s, holds %s; history: %s", tp.collection, id.Hex(), why, wantMsg, describeHolder(holder), historyString(hist))
			}
		}
	}
	if examples > 12 {
		t.Errorf("... and %d more differences", examples-12)
	}
}

func readDocs(ctx context.Context, c *mongo.Collection) (map[bson.ObjectID]bson.Raw, error) {
	cur, err := c.Find(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	out := map[bson.ObjectID]bson.Raw{}
	for cur.Next(ctx) {
		raw := slices.Clone(cur.Current)
		v, err := raw.LookupErr("_id")
		if err != nil {
			return nil, fmt.Errorf("document without _id: %s", raw)
		}
		id, ok := v.ObjectIDOK()
		if !ok {
			return nil, fmt.Errorf("_id of type %s, want an ObjectId: %s", v.Type, raw)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("_id %s returned twice", id.Hex())
		}
		out[id] = bson.Raw(raw)
	}
	return out, cur.Err()
}

// holderOf finds the record of the key's history the stored document is (nil: none matches).
func holderOf(hist []*modelMsg, topic string, raw bson.Raw) *modelMsg {
	for _, m := range hist {
		if !m.tombstone && docDiff(topic, m, raw) == "" {
			return m
		}
	}
	return nil
}

func describeHolder(m *modelMsg) string {
	if m == nil {
		return "a document no record of the key would write"
	}
	return m.String()
}

func historyString(hist []*modelMsg) string {
	var parts []string
	for _, m := range hist {
		at := "-"
		if m.hasAt {
			at = time.UnixMilli(m.atMs).UTC().Format("15:04:05.000")
		}
		kind := "U"
		if m.tombstone {
			kind = "T"
		}
		parts = append(parts, fmt.Sprintf("%s@%d[%s]", kind, m.offset, at))
	}
	return strings.Join(parts, " ")
}

// docDiff says how the stored document differs from what record m writes ("" when it is m's).
func docDiff(topic string, m *modelMsg, raw bson.Raw) string {
	v, err := normDoc(raw)
	if err != nil {
		return err.Error()
	}
	doc := v.(map[string]any)
	if doc["_id"] != m.id {
		return fmt.Sprintf("_id %v, want %s", doc["_id"], m.id.Hex())
	}
	sync, ok := doc["_sync"].(map[string]any)
	if !ok {
		return fmt.Sprintf("_sync %v, want a document", doc["_sync"])
	}
	delete(doc, "_id")
	delete(doc, "_sync")
	if why := diffValue("payload", m.payload, doc); why != "" {
		return why
	}
	wantSync := map[string]any{"topic": topic, "partition": m.partition, "offset": m.offset}
	if m.hasAt {
		wantSync["processedAt"] = bson.DateTime(m.atMs)
	}
	if m.traceID != "" {
		wantSync["traceId"] = m.traceID
	}
	if m.traceRaw != nil {
		// not valid UTF-8: never stored as such; left out or repaired (U+FFFD) are both fine
		if got, ok := sync["traceId"]; ok {
			s, isStr := got.(string)
			if !isStr || !utf8.ValidString(s) || collapseFFFD(s) != collapseFFFD(strings.ToValidUTF8(string(m.traceRaw), "\uFFFD")) {
				return fmt.Sprintf("_sync.traceId %q from the invalid UTF-8 header %q", got, m.traceRaw)
			}
			wantSync["traceId"] = got
		}
	}
	return diffValue("_sync", wantSync, sync)
}

var fffdRun = regexp.MustCompile("\uFFFD+")

func collapseFFFD(s string) string { return fffdRun.ReplaceAllString(s, "\uFFFD") }

// normDoc turns a stored value into the shapes jval.norm gives (a field name twice is an error).
func normDoc(raw bson.Raw) (any, error) {
	return normValue(bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: raw})
}

func normValue(v bson.RawValue) (any, error) {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		elems, err := v.Document().Elements()
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		for _, e := range elems {
			if _, dup := m[e.Key()]; dup {
				return nil, fmt.Errorf("field %q stored twice in one document", e.Key())
			}
			x, err := normValue(e.Value())
			if err != nil {
				return nil, err
			}
			m[e.Key()] = x
		}
		return m, nil
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return nil, err
		}
		a := []any{}
		for _, e := range vals {
			x, err := normValue(e)
			if err != nil {
				return nil, err
			}
			a = append(a, x)
		}
		return a, nil
	case bson.TypeInt32:
		return v.Int32(), nil
	case bson.TypeInt64:
		return v.Int64(), nil
	case bson.TypeDouble:
		return v.Double(), nil
	case bson.TypeString:
		s := v.StringValue()
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("string %q is not valid UTF-8", s)
		}
		return s, nil
	case bson.TypeBoolean:
		return v.Boolean(), nil
	case bson.TypeNull:
		return nil, nil
	case bson.TypeDateTime:
		return bson.DateTime(v.DateTime()), nil
	case bson.TypeObjectID:
		return v.ObjectID(), nil
	case bson.TypeDecimal128:
		return v.Decimal128(), nil
	}
	return nil, fmt.Errorf("unexpected BSON type %s", v.Type)
}

// diffValue describes the first difference between want and got ("" none), by path.
func diffValue(path string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %T %v, want a document", path, got, got)
		}
		var names []string
		for k := range w {
			names = append(names, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for _, k := range names {
			wv, wok := w[k]
			gv, gok := g[k]
			switch {
			case !gok:
				return fmt.Sprintf("%s.%s missing, want %T %v", path, k, wv, wv)
			case !wok:
				return fmt.Sprintf("%s.%s is %T %v, want no such field", path, k, gv, gv)
			}
			if why := diffValue(path+"."+k, wv, gv); why != "" {
				return why
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: %T %v, want %v", path, got, got, w)
		}
		for i := range w {
			if why := diffValue(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); why != "" {
				return why
			}
		}
		return ""
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Sprintf("%s: %T %v, want %T %v", path, got, got, want, want)
	}
	return ""
}

// checkDeadLetters: every poison record dead-lettered once with its class, no good record
// dead-lettered, nothing from a topic that is not a state topic of the seed.
func (r *modelRun) checkDeadLetters(res *seedResult) {
	t, p := r.t, r.p
	topics := map[string]bool{}
	for _, tp := range p.topics {
		topics[tp.name] = true
	}
	byOrigin := map[string]*modelMsg{}
	for _, m := range p.msgs {
		byOrigin[letterKey(p.topics[m.topic].name, m.partition, m.offset)] = m
	}
	letters := testenv.ReadAll(t, r.env.brokers, p.dlt)
	res.letters = len(letters)
	seen := map[string]int{}
	for _, l := range letters {
		info, err := deadletter.Parse(l.Key, l.Value, kafkaHeaders(l.Headers))
		if err != nil {
			t.Errorf("dead letter at offset %d: %v", l.TopicPartition.Offset, err)
			continue
		}
		k := letterKey(info.Topic, info.Partition, info.Offset)
		m := res.e.poison[k]
		if m == nil {
			if g := byOrigin[k]; g != nil {
				res.goodDLT++
				t.Errorf("good record dead-lettered as %s: %s: %s", info.Class, g, info.Message)
			} else if !topics[info.Topic] {
				t.Errorf("dead letter of %s[%d]@%d, not a state topic of the seed (the dead-letter topic was consumed?): %s %s",
					info.Topic, info.Partition, info.Offset, info.Class, info.Message)
			} else {
				t.Errorf("dead letter of %s[%d]@%d, an offset that was not produced", info.Topic, info.Partition, info.Offset)
			}
			continue
		}
		seen[k]++
		switch want := m.poisonClass(r.env.ferret); {
		case info.Class != want || header(l.Headers, "error.class") != info.Class:
			res.wrongClass++
			t.Errorf("poison %s dead-lettered as %q (header %q), want %q: %s", m, info.Class, header(l.Headers, "error.class"), want, info.Message)
		case !bytes.Equal(info.Key, m.key) || !bytes.Equal(l.Key, m.key):
			t.Errorf("poison %s: dead letter key %q (Kafka key %q), want %q", m, info.Key, l.Key, m.key)
		case !sameOriginal(info.Original.Value, m.value):
			t.Errorf("poison %s: the dead letter holds %q, want the original %q (or its envelope's record)", m, info.Original.Value, m.value)
		}
	}
	redelivered := p.redeliveredUpTo()
	for k, m := range res.e.poison {
		switch n := seen[k]; {
		case n == 0:
			res.missingDLT++
			t.Errorf("poison %s (%s) is not in the dead-letter topic", m, m.poisonClass(r.env.ferret))
		case n > 1 && m.chunk <= redelivered:
			res.dupDLT++
			t.Logf("poison %s dead-lettered %d times: produced before a kill -9, takeover or Kafka restart, it was read again (at-least-once)", m, n)
		case n > 1:
			res.dupDLT++
			t.Errorf("poison %s dead-lettered %d times, want once: no fault after it was produced makes the group read it again", m, n)
		}
	}
}

// sameOriginal: a dead letter holds the original value verbatim, or, for an envelope, its record
// (the envelope's headers are the dead letter's).
func sameOriginal(got, value []byte) bool {
	if bytes.Equal(got, value) {
		return true
	}
	var env map[string]json.RawMessage
	if json.Unmarshal(value, &env) != nil || env["record"] == nil {
		return false
	}
	var a, b any
	return json.Unmarshal(got, &a) == nil && json.Unmarshal(env["record"], &b) == nil && reflect.DeepEqual(a, b)
}

// ---------------------------------------------------------------------------------------------
// the reference itself, without a server

// TestReferenceAppliesOneByOneWithTheGuard pins down model.go's reference on hand-written cases
// and checks that a plan is the same for the same seed.
func TestReferenceAppliesOneByOneWithTheGuard(t *testing.T) {
	up := func(at int64) *modelMsg { return &modelMsg{good: true, hasAt: at >= 0, atMs: at} }
	del := func(at int64) *modelMsg { m := up(at); m.tombstone = true; return m }
	run := func(ms ...*modelMsg) *modelMsg {
		var cur *modelMsg
		for _, m := range ms {
			cur = apply(cur, m)
		}
		return cur
	}
	a5, a3, a7, none, b5 := up(5), up(3), up(7), up(-1), up(5)
	cases := []struct {
		name string
		ms   []*modelMsg
		want *modelMsg
	}{
		{"older after newer loses", []*modelMsg{a5, a3}, a5},
		{"equal replaces", []*modelMsg{a5, b5}, b5},
		{"no processedAt always replaces", []*modelMsg{a7, none}, none},
		{"after one without processedAt anything applies", []*modelMsg{none, a3}, a3},
		{"older tombstone loses", []*modelMsg{a5, del(3)}, a5},
		{"tombstone then older upsert re-creates", []*modelMsg{a5, del(7), a3}, a3},
		{"tombstone without processedAt deletes", []*modelMsg{a7, del(-1)}, nil},
		{"newer tombstone deletes", []*modelMsg{a3, del(5)}, nil},
	}
	for _, c := range cases {
		if got := run(c.ms...); got != c.want {
			t.Errorf("%s: got %p, want %p", c.name, got, c.want)
		}
	}
	// a frozen replica's late write: excused only when the contract lets it win
	z := func(at int64, offset int64, chunk int) *modelMsg {
		m := up(at)
		m.offset, m.chunk = offset, chunk
		return m
	}
	old, unguarded, newer, late := z(3, 0, 0), z(-1, 1, 0), z(9, 2, 1), z(-1, 3, 2)
	hist := []*modelMsg{old, unguarded, newer, late}
	for _, c := range []struct {
		name      string
		want, got *modelMsg
		excused   bool
	}{
		{"an older guarded record over a newer document", newer, old, false},
		{"a record without processedAt", newer, unguarded, true},
		{"a record produced after the freeze", unguarded, late, false},
		{"a record the reference itself ends with", newer, newer, false},
	} {
		if got := zombieExcuse(hist, c.want, c.got, 0, 4); got != c.excused {
			t.Errorf("zombie excuse, %s: %v, want %v", c.name, got, c.excused)
		}
	}

	anchor := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p1, p2 := newPlan(42, "x", anchor), newPlan(42, "x", anchor)
	if len(p1.msgs) != len(p2.msgs) || p1.String() != p2.String() {
		t.Fatalf("two plans of seed 42 differ")
	}
	for i := range p1.msgs {
		if !bytes.Equal(p1.msgs[i].value, p2.msgs[i].value) || !bytes.Equal(p1.msgs[i].key, p2.msgs[i].key) {
			t.Fatalf("message %d of seed 42 differs between two plans", i)
		}
	}
	// The generator's own check: every good record without duplicate names is one the stock
	// decoder (encoding/json + bson.UnmarshalExtJSON, statesync's reference path) reads to the
	// payload the model expects. (Duplicate names are the system's to get right, not checked here.)
	for seed := uint64(1); seed <= 20; seed++ {
		p := newPlan(seed, "x", anchor)
		for _, m := range p.msgs {
			if !m.good || m.tombstone || m.decimal || m.dup {
				continue
			}
			rec, err := record.Decode(record.Message{Topic: "t", Key: m.key, Value: m.value, Headers: m.headers}, record.DecodeOptions{Reference: true})
			if err != nil {
				t.Errorf("seed %d: %s: the reference decoder rejects a good record: %v\n%s", seed, m, err, m.value)
				continue
			}
			v, err := normDoc(rec.Doc)
			if err != nil {
				t.Errorf("seed %d: %s: %v", seed, m, err)
				continue
			}
			doc := v.(map[string]any)
			delete(doc, "_id")
			if why := diffValue("payload", m.payload, doc); why != "" {
				t.Errorf("seed %d: %s: %s\n%s", seed, m, why, m.value)
			}
		}
	}
}

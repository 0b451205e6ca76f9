package e2e

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codr/statesync/test/testenv"
)

// rollSessionTimeout is the session timeout of every member in the rolling-restart tests: longer
// than a restart here (SIGTERM, drain, exit, start, join: 2–4 s), short enough that a member that
// never comes back is evicted within the test.
const rollSessionTimeout = 20 * time.Second

// rollFigures is what one rolling restart of three members cost.
type rollFigures struct {
	name                  string
	records               int
	callbacks             int // rebalance callbacks ("partitions assigned"/"revoked" lines) after the group settled
	partitionsAssigned    int // partitions in them
	partitionsRevoked     int
	rewritten             int64 // records written more than once
	worstDelay, p99Delay  time.Duration
	rollTook              time.Duration
	lost, extra, diverged int
	restartJoin           []time.Duration // SIGTERM → the restarted member has its partitions again
	pollWorst             time.Duration   // the slowest poll of the write watch: the delays' resolution
}

func (f rollFigures) String() string {
	joins := make([]string, len(f.restartJoin))
	for i, d := range f.restartJoin {
		joins[i] = d.Round(100 * time.Millisecond).String()
	}
	return fmt.Sprintf("%s: %d records; rebalance callbacks %d, partitions assigned %d, revoked %d (a member's own revocation at SIGTERM not counted); re-written %d; "+
		"produce→written worst %s, p99 %s (resolution %s); SIGTERM→own partitions again %s; roll %s; lost %d, extra %d, diverged %d",
		f.name, f.records, f.callbacks, f.partitionsAssigned, f.partitionsRevoked, f.rewritten,
		f.worstDelay.Round(10*time.Millisecond), f.p99Delay.Round(10*time.Millisecond), (f.pollWorst + 200*time.Millisecond).Round(10*time.Millisecond), strings.Join(joins, "/"),
		f.rollTook.Round(time.Second), f.lost, f.extra, f.diverged)
}

// TestRollingRestartWithStaticMembership: three members over six partitions, records produced at a
// steady 200/s, each member restarted in turn (SIGTERM, started again at once, within the session
// timeout). With static membership (group.instance.id, passed through STATESYNC_KAFKA_PROPERTIES
// as the chart does from the pod name) a restarted member gets its own partitions back without a
// rebalance: no other member is called, nothing moves. Without it every restart is two rebalances
// (leave, join). A restart under a new instance id (what a Deployment's new pod gets) is the third
// roll: the old id holds its partitions until the session timeout. Every roll loses nothing and
// ends exact.
func TestRollingRestartWithStaticMembership(t *testing.T) {
	static := rollingRestart(t, "static group.instance.id", func(member string, generation int) string { return "roll-" + member })
	dynamic := rollingRestart(t, "dynamic membership", nil)
	renamed := rollingRestart(t, "static, new id at each restart (a Deployment's new pod)", func(member string, generation int) string {
		return fmt.Sprintf("roll-%s-%d", member, generation)
	})
	for _, f := range []rollFigures{static, dynamic, renamed} {
		report(t, "%s", f)
	}
	if static.partitionsRevoked != 0 || static.partitionsAssigned != 6 {
		t.Errorf("static membership: %d partitions revoked and %d assigned over the roll; want 0 revoked and 6 assigned (each member its own 2 back)",
			static.partitionsRevoked, static.partitionsAssigned)
	}
	if dynamic.callbacks <= static.callbacks {
		t.Errorf("dynamic membership: %d rebalance callbacks, static: %d; want more without static membership (the comparison measured nothing)",
			dynamic.callbacks, static.callbacks)
	}
	if renamed.worstDelay < rollSessionTimeout/2 {
		t.Errorf("a new instance id at each restart: worst delay %s, want about the session timeout (%s) that the old id holds its partitions",
			renamed.worstDelay, rollSessionTimeout)
	}
}

// rollingRestart runs one roll; instanceID (nil: dynamic membership) names a member's
// group.instance.id for its generation (0 first start, 1 after its restart).
func rollingRestart(t *testing.T, name string, instanceID func(member string, generation int) string) rollFigures {
	t.Helper()
	f := rollFigures{name: name}
	t.Run(name, func(t *testing.T) {
		const partitions, rate, chunk = 6, 200, 20
		s := newScenario(t, partitions, nil)
		// Produced until the roll is over (at most 200 s): one record per key, so each record's
		// document appears once, when it is written.
		st := newStream(11, rate*200)
		msgs := st.genKeys(st.keys)
		props := func(member string, gen int) map[string]string {
			p := "session.timeout.ms=" + strconv.Itoa(int(rollSessionTimeout.Milliseconds()))
			if instanceID != nil {
				p += ";group.instance.id=" + instanceID(member, gen)
			}
			return map[string]string{"STATESYNC_KAFKA_PROPERTIES": p, "STATESYNC_BATCH_MAX_WAIT": "50ms"}
		}
		members := []string{"a", "b", "c"}
		procs := map[string]*proc{}
		var all []*proc
		for _, m := range members {
			procs[m] = s.start("member-"+m, props(m, 0), "run")
			all = append(all, procs[m])
		}
		// Settled: all three hold partitions (2 each, cooperative-sticky).
		testenv.Eventually(t, time.Minute, "three members with partitions", func() bool {
			for _, p := range procs {
				if v, ok := p.metric("statesync_ready"); !ok || v != 1 {
					return false
				}
			}
			return assignedNow(procs["a"])+assignedNow(procs["b"])+assignedNow(procs["c"]) == partitions
		})
		// Each member's rebalance callbacks counted: from the settled group to its own SIGTERM.
		baseline, mark := map[*proc]int{}, map[*proc]int{}
		for _, p := range all {
			baseline[p] = len(rebalanceLines(p))
		}

		prod := startPacedProducer(t, s.brokers, s.topic, msgs, chunk, time.Second*chunk/rate)
		watch := startWriteWatch(s, prod)
		time.Sleep(3 * time.Second)

		rollStart := time.Now()
		for _, m := range members {
			old := procs[m]
			mark[old] = len(rebalanceLines(old))
			termAt := time.Now()
			if code, _ := old.term(30 * time.Second); code != 0 {
				t.Errorf("%s: exit %d after SIGTERM, want 0", old.name, code)
			}
			p := s.start("member-"+m+"-again", props(m, 1), "run")
			procs[m] = p
			all = append(all, p)
			testenv.Eventually(t, 2*rollSessionTimeout+time.Minute, p.name+" to hold partitions", func() bool { return assignedNow(p) > 0 })
			f.restartJoin = append(f.restartJoin, time.Since(termAt))
			time.Sleep(3 * time.Second) // steady again before the next member
		}
		f.rollTook = time.Since(rollStart)
		time.Sleep(3 * time.Second)
		produced, err := prod.stop()
		if err != nil {
			t.Fatal(err)
		}
		msgs = msgs[:produced]
		for _, id := range st.keys[produced:] {
			delete(st.want, id)
		}
		ends := s.waitCommitted(scaledTimeout(3*time.Minute), procs["a"], procs["b"], procs["c"])
		watch.waitAll(t, produced, time.Minute)
		watch.stop()
		f.pollWorst = watch.pollWorst
		f.records = len(msgs)
		f.worstDelay, f.p99Delay = watch.delays(t)
		for _, m := range members {
			mark[procs[m]] = len(rebalanceLines(procs[m]))
			if code, _ := procs[m].term(30 * time.Second); code != 0 {
				t.Errorf("%s: exit %d after SIGTERM, want 0", procs[m].name, code)
			}
		}
		var written int64
		for _, p := range all {
			w, err := strconv.ParseInt(loggedWritten(p), 10, 64)
			if err != nil {
				t.Errorf("%s: no \"stopped cleanly\" line with the written count", p.name)
			}
			written += w
			lines := rebalanceLines(p)
			for _, l := range lines[baseline[p]:mark[p]] {
				n := strings.Count(l.partitions, s.topic+"[")
				f.callbacks++
				if l.assigned {
					f.partitionsAssigned += n
				} else {
					f.partitionsRevoked += n
				}
			}
		}
		f.rewritten = written - int64(len(msgs))
		if got := sumOffsets(ends); got != int64(len(msgs)) {
			t.Errorf("end offsets sum to %d, want %d", got, len(msgs))
		}
		d := s.checkExact(st)
		f.lost, f.extra, f.diverged = d.lost, d.extra, d.diverged
		t.Logf("%s", f)
	})
	return f
}

// assignedNow is the member's current partition count: "partitions assigned" minus "revoked".
func assignedNow(p *proc) int {
	n := 0
	for _, l := range rebalanceLines(p) {
		k := strings.Count(l.partitions, "[")
		if l.assigned {
			n += k
		} else {
			n -= k
		}
	}
	return n
}

type rebalanceLine struct {
	assigned   bool
	partitions string
}

var rebalanceLog = regexp.MustCompile(`"msg":"partitions (assigned|revoked)","partitions":"([^"]*)"`)

func rebalanceLines(p *proc) []rebalanceLine {
	var out []rebalanceLine
	for _, m := range rebalanceLog.FindAllStringSubmatch(p.stderr(), -1) {
		out = append(out, rebalanceLine{assigned: m[1] == "assigned", partitions: m[2]})
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// producing at a steady rate, remembering when each record was produced

type pacedProducer struct {
	mu       sync.Mutex
	produced map[int]time.Time // seq → when it was handed to the producer
	quit     chan struct{}
	errc     chan error
	n        int // records produced, once stopped
}

// startPacedProducer produces chunk records every pause (a ticker: no drift) on its own goroutine
// until stop or the end of msgs; msgs must come from genKeys over a fresh stream (msgs[i] has
// seq i).
func startPacedProducer(t *testing.T, brokers, topic string, msgs []testenv.Msg, chunk int, pause time.Duration) *pacedProducer {
	t.Helper()
	pp := &pacedProducer{produced: map[int]time.Time{}, quit: make(chan struct{}), errc: make(chan error, 1)}
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers, "enable.idempotence": true, "acks": "all", "linger.ms": 0})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer p.Close()
		delivery := make(chan kafka.Event, len(msgs))
		tick := time.NewTicker(pause)
		defer tick.Stop()
		n := 0
	produce:
		for n < len(msgs) {
			select {
			case <-pp.quit:
				break produce
			case <-tick.C:
			}
			now := time.Now()
			for end := min(n+chunk, len(msgs)); n < end; n++ {
				m := msgs[n]
				km := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}, Key: m.Key, Value: m.Value}
				for k, v := range m.Headers {
					km.Headers = append(km.Headers, kafka.Header{Key: k, Value: []byte(v)})
				}
				if err := p.Produce(km, delivery); err != nil {
					pp.errc <- fmt.Errorf("produce: %w", err)
					return
				}
				pp.mu.Lock()
				pp.produced[n] = now
				pp.mu.Unlock()
			}
		}
		pp.n = n
		for range n {
			select {
			case ev := <-delivery:
				if m, ok := ev.(*kafka.Message); !ok || m.TopicPartition.Error != nil {
					pp.errc <- fmt.Errorf("delivery: %v", ev)
					return
				}
			case <-time.After(2 * time.Minute):
				pp.errc <- errors.New("no delivery report within 2 minutes")
				return
			}
		}
		pp.errc <- nil
	}()
	return pp
}

// stop ends production and returns how many records were produced (all acknowledged).
func (pp *pacedProducer) stop() (int, error) {
	close(pp.quit)
	select {
	case err := <-pp.errc:
		return pp.n, err
	case <-time.After(3 * time.Minute):
		return 0, errors.New("paced producer did not stop within 3 minutes")
	}
}

func (pp *pacedProducer) producedAt(seq int) (time.Time, bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	at, ok := pp.produced[seq]
	return at, ok
}

// ---------------------------------------------------------------------------------------------
// watching MongoDB for the moment each record's document appears

type writeWatch struct {
	s         *scenario
	pp        *pacedProducer
	mu        sync.Mutex
	seen      map[int]time.Time
	cancel    context.CancelFunc
	done      chan struct{}
	err       error
	pollWorst time.Duration
}

// startWriteWatch polls the collection every 200 ms for documents it has not seen yet (seq above
// the lowest unseen one) and notes when each appeared.
func startWriteWatch(s *scenario, pp *pacedProducer) *writeWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writeWatch{s: s, pp: pp, seen: map[int]time.Time{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		low := 0
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			began := time.Now()
			qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
			cur, err := s.collection().Find(qctx, bson.D{{Key: "seq", Value: bson.D{{Key: "$gte", Value: low}}}},
				options.Find().SetProjection(bson.D{{Key: "seq", Value: 1}}))
			if err != nil {
				qcancel()
				if ctx.Err() == nil {
					w.err = err
				}
				continue
			}
			now := time.Now()
			w.mu.Lock()
			for cur.Next(qctx) {
				var d struct {
					Seq int `bson:"seq"`
				}
				if cur.Decode(&d) == nil {
					if _, ok := w.seen[d.Seq]; !ok {
						w.seen[d.Seq] = now
					}
				}
			}
			for {
				if _, ok := w.seen[low]; !ok {
					break
				}
				low++
			}
			if err := cur.Err(); err != nil && ctx.Err() == nil {
				w.err = err
			}
			w.pollWorst = max(w.pollWorst, time.Since(began))
			w.mu.Unlock()
			cur.Close(qctx)
			qcancel()
		}
	}()
	return w
}

// waitAll waits until the watch has seen the documents of the first n records.
func (w *writeWatch) waitAll(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		seen := 0
		for seq := range w.seen {
			if seq < n {
				seen++
			}
		}
		w.mu.Unlock()
		if seen >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the write watch saw %d of %d documents within %s (err %v)", seen, n, timeout, w.err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (w *writeWatch) stop() {
	w.cancel()
	<-w.done
}

// delays returns the worst and the 99th percentile produce→written delay over every record.
func (w *writeWatch) delays(t *testing.T) (worst, p99 time.Duration) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var ds []time.Duration
	missing := 0
	for seq, at := range w.seen {
		p, ok := w.pp.producedAt(seq)
		if !ok {
			continue
		}
		ds = append(ds, at.Sub(p))
	}
	w.pp.mu.Lock()
	for seq := range w.pp.produced {
		if _, ok := w.seen[seq]; !ok {
			missing++
		}
	}
	w.pp.mu.Unlock()
	if missing > 0 {
		t.Errorf("the watch never saw %d produced records appear (err %v)", missing, w.err)
	}
	if len(ds) == 0 {
		return 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)-1], ds[len(ds)*99/100]
}

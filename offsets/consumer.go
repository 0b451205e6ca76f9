// Package offsets is the Kafka consumer; it owns when an offset is stored:
// the librdkafka poll loop, cooperative rebalancing, and the per-partition
// watermark that stores an offset only once every record before it is
// written or dead-lettered (docs/design.md "Offsets and delivery"). Dead
// letters are package deadletter's. The librdkafka plumbing statesync's
// other Kafka clients share lives here too: client properties, logs and
// broker connectivity (logs.go) and the acknowledged producer (producer.go).
package offsets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/record"
	"github.com/codr/statesync/statelog"
)

// Writer writes a batch. A nil error means every message of the batch may
// be committed; an error means the batch was abandoned.
type Writer interface {
	Apply(ctx context.Context, b *batch.Batch) error
}

// Options configures a Consumer.
type Options struct {
	Kafka           map[string]string // bootstrap.servers, SASL, passthrough properties
	GroupID         string
	Subscription    []string // topic names, or one regex starting with ^
	RefreshInterval time.Duration
	Batch           batch.Options
	Concurrency     int
	Decode          record.DecodeOptions
	ShutdownGrace   time.Duration
	// StopAtEnd makes Run return once every assigned partition has been
	// read to the end offset it had when the partition was assigned and
	// everything read is committed (the one-shot import).
	StopAtEnd bool
	// AssignTimeout bounds the wait for a first assignment with StopAtEnd.
	AssignTimeout time.Duration
	// Exclude names topics that are never consumed, whatever the
	// subscription matches: the dead-letter topic (consuming it would loop
	// its poison records forever). Their partitions, when the group assigns
	// them to this member, are left unassigned locally: never fetched, never
	// committed.
	Exclude []string
	// FutureSkew: a record whose processedAt is further than this ahead of
	// the local clock is counted (statesync_records_future_total) and logged,
	// once per key per futureWindow. 0: no check.
	FutureSkew time.Duration
	Log        *zap.Logger
	// Brokers is the reachability of the brokers, shared by the process's
	// clients: connection failures change it instead of logging each retry.
	Brokers *statelog.Condition
	Metrics *metrics.Metrics // nil: metrics.New(nil), recorded nowhere
}

// Consumer is the poll loop. All its state is owned by the goroutine that
// runs Run; completions of writes come back over a channel.
type Consumer struct {
	o    Options
	c    *kafka.Consumer
	w    Writer
	log  *zap.Logger
	acc  *batch.Accumulator
	done chan completion

	parts    map[batch.TopicPartition]*partition
	inflight int
	waiting  []batch.TopicPartition // partitions with a ready batch, waiting for a write slot

	watch   *Watch              // librdkafka's lines and client errors
	commits *statelog.Condition // offset commits, logged when they start and stop failing

	fromEarliest bool // auto.offset.reset is earliest
	exclude      map[string]bool
	future       futureWatch

	status Status
}

type partition struct {
	tp       batch.TopicPartition
	ctx      context.Context
	cancel   context.CancelFunc
	writing  *batch.Batch   // being written
	queue    []*batch.Batch // closed, waiting for the one being written
	paused   bool
	next     int64              // offset after the last message delivered
	stored   int64              // offset stored for commit (next to read), -1 none
	low, end int64              // watermarks at assignment, for StopAtEnd; end -1 unknown
	consumed prometheus.Counter // looked up once: the per-message path stays cheap
	revoking bool
}

type completion struct {
	tp  batch.TopicPartition
	b   *batch.Batch
	p   *partition
	err error
}

// Status is what readiness and progress reporting read, safe from any goroutine.
type Status struct {
	Assigned   atomic.Int64
	Subscribed atomic.Bool
	// Joined: the group coordinator answered and gave this member an
	// assignment (possibly empty: a member beyond the partition count is a
	// standby that takes partitions at the next rebalance). False again
	// while a lost assignment (session timeout) is being rejoined.
	Joined       atomic.Bool
	LastProgress atomic.Int64 // unix nanos of the last stored offset
	Lag          atomic.Int64 // sum over assigned partitions
	Consumed     atomic.Int64
	Committed    atomic.Int64 // records whose offsets were stored
	Pauses       atomic.Int64 // partitions paused because their writes stayed behind
}

// Defaults for zero Options fields; the first two are also those of
// STATESYNC_WRITE_CONCURRENCY and STATESYNC_SHUTDOWN_GRACE (cmd/statesync
// tests that config's match).
const (
	DefaultConcurrency   = 4
	DefaultShutdownGrace = 30 * time.Second
	DefaultAssignTimeout = 60 * time.Second
)

// New creates the librdkafka consumer.
func New(o Options, w Writer) (*Consumer, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.AssignTimeout <= 0 {
		o.AssignTimeout = DefaultAssignTimeout
	}
	cm := kafka.ConfigMap{}
	for k, v := range o.Kafka {
		cm[k] = v
	}
	cm["group.id"] = o.GroupID
	cm["enable.auto.offset.store"] = false
	cm["enable.auto.commit"] = true
	setDefault(cm, "auto.commit.interval.ms", "1000")
	cm["partition.assignment.strategy"] = "cooperative-sticky"
	setDefault(cm, "auto.offset.reset", "earliest")
	cm["enable.partition.eof"] = o.StopAtEnd
	if o.RefreshInterval > 0 {
		setDefault(cm, "topic.metadata.refresh.interval.ms", strconv.FormatInt(o.RefreshInterval.Milliseconds(), 10))
	}
	setDefault(cm, "session.timeout.ms", "10000")
	setDefault(cm, "heartbeat.interval.ms", "1000")
	// Fetch responses stay allocated while any message in them is queued:
	// modest sizes keep RSS flat. A record larger than these still comes
	// through (the broker returns at least one record batch).
	setDefault(cm, "fetch.max.bytes", "4194304")
	setDefault(cm, "max.partition.fetch.bytes", "524288")
	// With a full prefetch queue librdkafka postpones the partition's next
	// fetch by this much (1 s by default), which starves a fast consumer.
	setDefault(cm, "fetch.queue.backoff.ms", "20")
	// librdkafka prefetches up to this much (64 MiB by default). Fetch sizes
	// are compressed bytes: 512 KiB of lz4 JSON is ~2 MiB of messages.
	setDefault(cm, "queued.max.messages.kbytes", "8192")
	Prepare(cm, "consumer")
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create Kafka consumer: %w", err)
	}
	watch := Logging{Log: o.Log, Brokers: o.Brokers}.Watch("consumer", c, c.Logs())
	reset, _ := cm["auto.offset.reset"].(string)
	exclude := map[string]bool{}
	for _, t := range o.Exclude {
		exclude[t] = true
	}
	return &Consumer{
		o: o, c: c, w: w, log: o.Log, watch: watch,
		commits: &statelog.Condition{Log: o.Log, Fields: []zap.Field{zap.String("group", o.GroupID)},
			Failing:   "offset commits fail; retried every second (nothing is skipped: what was not committed is read again after a restart)",
			Recovered: "offset commits succeed again"},
		fromEarliest: reset == "earliest" || reset == "smallest" || reset == "beginning",
		exclude:      exclude,
		future:       newFutureWatch(o.FutureSkew),
		acc:          batch.New(o.Batch),
		done:         make(chan completion, 64),
		parts:        map[batch.TopicPartition]*partition{},
	}, nil
}

func setDefault(cm kafka.ConfigMap, k, v string) {
	if _, ok := cm[k]; !ok {
		cm[k] = v
	}
}

// RecheckBrokers keeps probing the brokers while their condition is
// failed (see Watch.Recheck).
func (c *Consumer) RecheckBrokers() { c.watch.Recheck() }

// Status returns the live status.
func (c *Consumer) Status() *Status { return &c.status }

// Run consumes until ctx ends (or, with StopAtEnd, until everything is
// imported), then drains: in-flight batches are finished and committed
// within the shutdown grace, and the consumer is closed.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.c.SubscribeTopics(c.o.Subscription, c.rebalance); err != nil {
		return fmt.Errorf("subscribe to %v: %w", c.o.Subscription, err)
	}
	c.status.Subscribed.Store(true)
	c.log.Info("subscribed", zap.Strings("topics", c.o.Subscription), zap.String("group", c.o.GroupID))
	lagTick := time.Now()
	subscribed := time.Now()
	var blockedSince time.Time
	var runErr error
loop:
	for {
		if ctx.Err() != nil {
			break
		}
		if c.drainCompletions() > 0 {
			blockedSince = time.Time{} // writes are moving
		}
		if c.o.StopAtEnd && c.imported() {
			c.log.Info("import complete: every partition read to its end offset and committed")
			break
		}
		var ev kafka.Event
		if c.blocked() {
			// Backpressure without Pause: stop taking messages and let
			// librdkafka's queue fill (it then stops fetching by itself).
			// Pause and Resume cost a re-fetch and up to a second before
			// librdkafka fetches a resumed partition again, so they are kept
			// for when no write has completed for pauseAfter (a stalled
			// write): the blocking partitions are paused and polling goes on.
			if blockedSince.IsZero() {
				blockedSince = time.Now()
			}
			if time.Since(blockedSince) < pauseAfter {
				if c.waitCompletion(blockedWait) {
					blockedSince = time.Time{} // writes are moving
				}
			} else {
				c.pauseBlocked()
				blockedSince = time.Time{}
			}
		} else {
			blockedSince = time.Time{}
			ev = c.c.Poll(c.pollTimeout())
		}
		now := time.Now()
		switch e := ev.(type) {
		case *kafka.Message:
			c.handle(e, now)
		case kafka.PartitionEOF:
			c.eof(e)
		case kafka.OffsetsCommitted:
			switch {
			case e.Error == nil:
				c.commits.OK()
				c.o.Metrics.LastCommit.SetToCurrentTime()
			case isNoOffset(e.Error):
			case IsConnectionError(e.Error):
				c.watch.suspect(e.Error) // the brokers' condition says it
			default:
				c.commits.Failed(e.Error)
			}
		case kafka.Error:
			if c.watch.Event(e) {
				runErr = fmt.Errorf("kafka consumer fatal error: %w", e)
				break loop
			}
		}
		for _, b := range c.acc.Due(now) {
			c.enqueue(b)
		}
		c.dispatch()
		if now.Sub(lagTick) > time.Second {
			lagTick = now
			c.updateLag()
		}
		if c.o.StopAtEnd && len(c.parts) == 0 && time.Since(subscribed) > c.o.AssignTimeout {
			runErr = fmt.Errorf("no partition assigned within %s: no topic matches %v, or other members of group %q hold them all",
				c.o.AssignTimeout, c.o.Subscription, c.o.GroupID)
			break
		}
	}
	return errors.Join(runErr, c.shutdown())
}

func (c *Consumer) pollTimeout() int {
	if c.inflight > 0 {
		return 10
	}
	if at, ok := c.acc.NextDue(); ok {
		ms := int(time.Until(at).Milliseconds())
		return max(1, min(ms, 100))
	}
	return 100
}

func (c *Consumer) handle(m *kafka.Message, now time.Time) {
	tp := batch.TopicPartition{Topic: *m.TopicPartition.Topic, Partition: m.TopicPartition.Partition}
	p := c.parts[tp]
	if p == nil || p.revoking {
		return // not ours (anymore): the next owner reads it from the committed offset
	}
	off := int64(m.TopicPartition.Offset)
	if off < p.next {
		return // redelivery of something already accumulated after a seek or resume
	}
	p.next = off + 1
	c.status.Consumed.Add(1)
	if p.consumed != nil {
		p.consumed.Inc()
	}
	msg := FromKafka(m)
	rec, err := record.Decode(msg, c.o.Decode)
	var full *batch.Batch
	if err != nil {
		var pe *record.PoisonError
		if !errors.As(err, &pe) {
			pe = &record.PoisonError{Class: record.ClassInvalidPayload, Err: err}
		}
		full = c.acc.AddPoison(batch.Poison{Msg: msg, Err: pe}, now)
	} else {
		if c.future.skew > 0 && rec.ProcessedAt.After(now.Add(c.future.skew)) {
			c.fromTheFuture(&rec, now)
		}
		full = c.acc.Add(rec, now)
	}
	if full != nil {
		c.enqueue(full)
	}
	if c.o.StopAtEnd && p.end >= 0 && off+1 >= p.end {
		// The import's last record of this partition: nothing more is
		// coming, so write it now instead of after the batch timer or EOF.
		if b := c.acc.Take(tp); b != nil {
			c.enqueue(b)
		}
	}
}

// FromKafka converts a librdkafka message.
func FromKafka(m *kafka.Message) record.Message {
	msg := record.Message{
		Topic:     *m.TopicPartition.Topic,
		Partition: m.TopicPartition.Partition,
		Offset:    int64(m.TopicPartition.Offset),
		Key:       m.Key,
		Value:     m.Value,
		Timestamp: m.Timestamp,
	}
	if len(m.Headers) > 0 {
		msg.Headers = make([]record.Header, len(m.Headers))
		for i, h := range m.Headers {
			msg.Headers[i] = record.Header{Key: h.Key, Value: h.Value}
		}
	}
	return msg
}

// enqueue hands a closed batch to its partition's queue. A partition writes
// one batch at a time (so two batches never race on one key); once
// maxQueuedBatches wait behind the one being written, Run stops polling
// (backpressure) until a write completes, and pauses the partition if that
// takes longer than pauseAfter.
func (c *Consumer) enqueue(b *batch.Batch) {
	p := c.parts[b.TopicPartition]
	if p == nil {
		return
	}
	p.queue = append(p.queue, b)
	if p.writing == nil && len(p.queue) == 1 {
		c.waiting = append(c.waiting, p.tp)
	}
}

const (
	// maxQueuedBatches is how many closed batches a partition may hold
	// before it blocks polling (see blocked).
	maxQueuedBatches = 1
	// pauseAfter: when polling has been blocked this long with no write
	// completing, the blocking partitions are paused so the others go on.
	pauseAfter = 2 * time.Second
	// blockedWait bounds one wait for a completion while polling is blocked.
	blockedWait = 20 * time.Millisecond
)

// blocked: taking more messages would only grow memory, because a
// partition being written already has its next batch closed (its batches go
// one at a time), or as many closed batches wait for a write slot as there
// are slots.
func (c *Consumer) blocked() bool {
	ready := 0
	for _, p := range c.parts {
		if !c.blocking(p) {
			continue
		}
		if p.writing != nil {
			return true
		}
		ready++
	}
	return ready >= c.o.Concurrency
}

// blocking: p holds a closed batch it cannot write yet.
func (c *Consumer) blocking(p *partition) bool {
	return !p.paused && !p.revoking && len(p.queue) >= maxQueuedBatches
}

// waitCompletion handles one finished write, waiting at most d for it; it
// reports whether one finished.
func (c *Consumer) waitCompletion(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case cp := <-c.done:
		c.complete(cp)
		return true
	case <-t.C:
		return false
	}
}

// dispatch starts writes for waiting partitions while slots are free.
func (c *Consumer) dispatch() {
	for c.inflight < c.o.Concurrency && len(c.waiting) > 0 {
		tp := c.waiting[0]
		c.waiting = c.waiting[1:]
		p := c.parts[tp]
		if p == nil || p.writing != nil || len(p.queue) == 0 {
			continue
		}
		b := p.queue[0]
		p.queue = p.queue[1:]
		p.writing = b
		c.inflight++
		c.resumeIfRoom(p) // its closed batch is on its way: read on while it is written
		c.o.Metrics.InFlight.Set(float64(c.inflight))
		go func(ctx context.Context, p *partition, b *batch.Batch) {
			err := c.w.Apply(ctx, b)
			c.done <- completion{tp: p.tp, b: b, p: p, err: err}
		}(p.ctx, p, b)
	}
}

// drainCompletions handles the writes that have finished, without waiting,
// and returns how many there were.
func (c *Consumer) drainCompletions() int {
	for n := 0; ; n++ {
		select {
		case cp := <-c.done:
			c.complete(cp)
		default:
			return n
		}
	}
}

func (c *Consumer) complete(cp completion) {
	c.inflight--
	c.o.Metrics.InFlight.Set(float64(c.inflight))
	p := cp.p
	if p.writing == cp.b {
		p.writing = nil
	}
	if c.parts[cp.tp] != p {
		return // the partition was revoked or lost meanwhile: its offsets are not ours to store
	}
	if cp.err != nil {
		// Abandoned: nothing of it may be committed. Read it again.
		c.log.Warn("batch abandoned; will re-read from its first offset", zap.String("topic", cp.tp.Topic),
			zap.Int32("partition", cp.tp.Partition), zap.Int64("offset", cp.b.FirstOffset), zap.Error(cp.err))
		p.queue = nil
		c.acc.Drop(cp.tp)
		c.seekBack(p, cp.b.FirstOffset)
		return
	}
	c.store(p, cp.b.LastOffset+1, cp.b.Consumed)
	if len(p.queue) > 0 {
		c.waiting = append(c.waiting, p.tp)
	}
	c.resumeIfRoom(p)
}

func (c *Consumer) store(p *partition, next int64, records int) {
	_, err := c.c.StoreOffsets([]kafka.TopicPartition{p.kafkaTP(kafka.Offset(next))})
	if err != nil {
		// Storing for a partition that is no longer assigned fails with a
		// state error: that is the fence working, not a crash.
		c.log.Warn("store offset refused", zap.String("topic", p.tp.Topic), zap.Int32("partition", p.tp.Partition), zap.Int64("offset", next), zap.Error(err))
		return
	}
	p.stored = next
	c.status.Committed.Add(int64(records))
	c.status.LastProgress.Store(time.Now().UnixNano())
}

// seekBack makes the partition deliver again from offset, after a write was
// abandoned: Pause, Seek, Resume (Resume alone would continue after the
// last delivered message).
func (c *Consumer) seekBack(p *partition, offset int64) {
	c.pause(p)
	if err := c.c.Seek(p.kafkaTP(kafka.Offset(offset)), 0); err != nil {
		c.log.Error("seek back failed", zap.String("topic", p.tp.Topic), zap.Int32("partition", p.tp.Partition), zap.Int64("offset", offset), zap.Error(err))
	}
	p.next = offset
	c.resume(p)
}

func (c *Consumer) pause(p *partition)  { c.setPaused(p, true) }
func (c *Consumer) resume(p *partition) { c.setPaused(p, false) }

func (c *Consumer) setPaused(p *partition, paused bool) {
	if p.paused == paused {
		return
	}
	op, verb := c.c.Resume, "resume"
	if paused {
		op, verb = c.c.Pause, "pause"
	}
	if err := op([]kafka.TopicPartition{p.kafkaTP(0)}); err != nil { // the offset is not used
		c.log.Warn(verb+" failed", zap.Error(err))
		return
	}
	p.paused = paused
}

// kafkaTP is p's partition in librdkafka's terms, at offset.
func (p *partition) kafkaTP(offset kafka.Offset) kafka.TopicPartition {
	topic := p.tp.Topic
	return kafka.TopicPartition{Topic: &topic, Partition: p.tp.Partition, Offset: offset}
}

// pauseBlocked pauses the partitions that block polling, so the others go on.
func (c *Consumer) pauseBlocked() {
	for _, p := range c.parts {
		if c.blocking(p) {
			c.pause(p)
			c.status.Pauses.Add(1)
			c.o.Metrics.Pauses.Inc()
			c.log.Info("partition paused: its writes are behind", zap.String("topic", p.tp.Topic),
				zap.Int32("partition", p.tp.Partition), zap.Int("queued_batches", len(p.queue)))
		}
	}
}

// resumeIfRoom resumes p if it was paused and no longer holds
// maxQueuedBatches closed batches.
func (c *Consumer) resumeIfRoom(p *partition) {
	if len(p.queue) < maxQueuedBatches {
		c.resume(p)
	}
}

// rebalance runs inside Poll.
func (c *Consumer) rebalance(kc *kafka.Consumer, ev kafka.Event) error {
	switch e := ev.(type) {
	case kafka.AssignedPartitions:
		// An assignment, even an empty one, means the group was joined.
		c.status.Joined.Store(true)
		parts := c.consumable(e.Partitions)
		c.log.Info("partitions assigned", zap.Stringer("partitions", tpList(parts)))
		for _, ktp := range parts {
			tp := batch.TopicPartition{Topic: *ktp.Topic, Partition: ktp.Partition}
			ctx, cancel := context.WithCancel(context.Background())
			p := &partition{tp: tp, ctx: ctx, cancel: cancel, stored: -1, end: -1, next: -1}
			p.consumed = c.o.Metrics.Consumed.WithLabelValues(tp.Topic)
			if c.o.StopAtEnd {
				if low, high, err := kc.QueryWatermarkOffsets(tp.Topic, tp.Partition, 10000); err == nil {
					p.low, p.end = low, high
				} else {
					c.log.Warn("end offset unknown", zap.String("topic", tp.Topic), zap.Int32("partition", tp.Partition), zap.Error(err))
				}
			}
			c.parts[tp] = p
		}
		c.status.Assigned.Store(int64(len(c.parts)))
		c.startAt(kc, parts)
		// Called even with no partition left: a rebalance callback that
		// assigns nothing makes the Go client assign the whole list itself.
		if err := kc.IncrementalAssign(parts); err != nil {
			c.log.Error("incremental assign failed", zap.Error(err))
			return err
		}
		if len(parts) == 0 {
			return nil
		}
		// A partition that was paused when it was last revoked must not
		// stay paused now that it is ours again.
		return kc.Resume(parts)
	case kafka.RevokedPartitions:
		lost := kc.AssignmentLost()
		if lost {
			c.status.Joined.Store(false) // until the group is joined again
		}
		parts := c.consumable(e.Partitions)
		c.log.Info("partitions revoked", zap.Stringer("partitions", tpList(parts)), zap.Bool("lost", lost))
		c.release(parts, lost)
		c.status.Assigned.Store(int64(len(c.parts)))
		// Only what was assigned can be unassigned: excluded partitions
		// never were (librdkafka refuses the whole call otherwise).
		if err := kc.IncrementalUnassign(parts); err != nil {
			c.log.Error("incremental unassign failed", zap.Error(err))
			return err
		}
	}
	return nil
}

// consumable drops the partitions of excluded topics (the dead-letter
// topic) from what the group gave this member. A regex subscription cannot
// say "but not this topic" (librdkafka's regexes have no negative
// lookahead), so the group may assign them; they are never assigned to the
// local consumer, so nothing fetches or commits them.
func (c *Consumer) consumable(ktps []kafka.TopicPartition) []kafka.TopicPartition {
	parts := make([]kafka.TopicPartition, 0, len(ktps))
	var skipped []kafka.TopicPartition
	for _, ktp := range ktps {
		if ktp.Topic != nil && c.exclude[*ktp.Topic] {
			skipped = append(skipped, ktp)
			continue
		}
		parts = append(parts, ktp)
	}
	if len(skipped) > 0 {
		c.log.Info("not consuming the dead-letter topic, which the subscription matches", zap.Stringer("partitions", tpList(skipped)))
	}
	return parts
}

// startAt gives an import's partitions their start offsets: the committed
// one, or else the low watermark already queried. Left to auto.offset.reset,
// librdkafka would look the offset up again after a fixed 100 ms timer,
// before the first fetch; given every start, it does not fetch the
// committed offsets a second time either.
func (c *Consumer) startAt(kc *kafka.Consumer, ktps []kafka.TopicPartition) {
	if !c.o.StopAtEnd || !c.fromEarliest {
		return
	}
	committed, err := kc.Committed(ktps, 5000)
	if err != nil {
		return // librdkafka finds the start itself
	}
	for i, ktp := range committed {
		p := c.parts[batch.TopicPartition{Topic: *ktp.Topic, Partition: ktp.Partition}]
		switch {
		case ktp.Offset >= 0:
			ktps[i].Offset = ktp.Offset
			if p != nil {
				// Everything before the committed offset is written: a
				// partition committed to its end is imported already.
				p.stored = int64(ktp.Offset)
			}
		case p != nil && p.end >= 0:
			ktps[i].Offset = kafka.Offset(p.low)
		}
	}
}

// release gives partitions up. Revoked: flush what is open, wait for the
// writes (bounded by the shutdown grace), store and commit. Lost: another
// member may own them already, so drop everything without committing.
func (c *Consumer) release(ktps []kafka.TopicPartition, lost bool) {
	var ps []*partition
	for _, ktp := range ktps {
		tp := batch.TopicPartition{Topic: *ktp.Topic, Partition: ktp.Partition}
		p := c.parts[tp]
		if p == nil {
			continue
		}
		if lost {
			c.acc.Drop(tp)
			p.cancel()
			delete(c.parts, tp)
			continue
		}
		p.revoking = true
		if b := c.acc.Take(tp); b != nil {
			c.enqueue(b)
		}
		ps = append(ps, p)
	}
	if len(ps) > 0 {
		c.finish(ps, c.o.ShutdownGrace)
	}
	var commit []kafka.TopicPartition
	for _, p := range ps {
		if p.stored >= 0 {
			commit = append(commit, p.kafkaTP(kafka.Offset(p.stored)))
		}
		p.cancel()
		delete(c.parts, p.tp)
		c.deleteLag(p.tp)
	}
	if len(commit) > 0 {
		if _, err := c.c.CommitOffsets(commit); err != nil {
			c.log.Warn("commit on revoke failed", zap.Error(err))
		} else {
			c.o.Metrics.LastCommit.SetToCurrentTime()
		}
	}
}

// finish writes the given partitions' queued batches and waits for them,
// for at most grace; then it cancels theirs still being written (they will be
// read again by whoever owns the partition next).
func (c *Consumer) finish(ps []*partition, grace time.Duration) {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	busy := func() bool {
		for _, p := range ps {
			if p.writing != nil || len(p.queue) > 0 {
				return true
			}
		}
		return false
	}
	for busy() {
		c.dispatch()
		select {
		case cp := <-c.done:
			c.complete(cp)
		case <-deadline.C:
			c.log.Warn("grace period over: abandoning batches still being written; they will be read again")
			for _, p := range ps {
				p.cancel()
				p.queue = nil
			}
			for busy() {
				c.complete(<-c.done)
			}
			return
		}
	}
}

// shutdown flushes everything open, waits for the writes within the grace
// period, commits and closes.
func (c *Consumer) shutdown() error {
	start := time.Now()
	c.log.Info("draining", zap.Int("in_flight", c.inflight))
	for _, b := range c.acc.TakeAll() {
		c.enqueue(b)
	}
	var ps []*partition
	for _, p := range c.parts {
		ps = append(ps, p)
	}
	c.finish(ps, c.o.ShutdownGrace)
	if _, err := c.c.Commit(); err != nil && !isNoOffset(err) {
		c.log.Warn("final commit failed", zap.Error(err))
	} else {
		c.o.Metrics.LastCommit.SetToCurrentTime()
	}
	c.log.Info("committed; closing consumer", zap.Duration("drain", time.Since(start)))
	c.watch.Stop()
	left := c.o.ShutdownGrace - time.Since(start)
	closed := make(chan error, 1)
	go func() { closed <- c.c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			return fmt.Errorf("close consumer: %w", err)
		}
		return nil
	case <-time.After(max(left, 2*time.Second)):
		return errors.New("close consumer: broker did not answer within the shutdown grace")
	}
}

func isNoOffset(err error) bool {
	var ke kafka.Error
	return errors.As(err, &ke) && ke.Code() == kafka.ErrNoOffset
}

func (c *Consumer) eof(e kafka.PartitionEOF) {
	tp := batch.TopicPartition{Topic: *e.Topic, Partition: e.Partition}
	if c.parts[tp] != nil {
		if b := c.acc.Take(tp); b != nil {
			c.enqueue(b) // nothing more is coming soon: no need to wait for the batch timer
		}
	}
}

// imported: every assigned partition has its offsets up to the end offset it
// had at assignment stored, and nothing is being written.
func (c *Consumer) imported() bool {
	if len(c.parts) == 0 || c.inflight > 0 {
		return false
	}
	for _, p := range c.parts {
		if p.end < 0 || (p.end > p.low && p.stored < p.end) {
			return false
		}
	}
	return true
}

func (c *Consumer) updateLag() {
	var total int64
	for tp, p := range c.parts {
		_, high, err := c.c.GetWatermarkOffsets(tp.Topic, tp.Partition)
		if err != nil || high < 0 {
			continue
		}
		pos := p.next
		if pos < 0 {
			pos = p.stored
		}
		lag := high - pos
		if pos < 0 || lag < 0 {
			lag = 0
		}
		total += lag
		c.o.Metrics.Lag.WithLabelValues(tp.Topic, strconv.Itoa(int(tp.Partition))).Set(float64(lag))
	}
	c.status.Lag.Store(total)
}

func (c *Consumer) deleteLag(tp batch.TopicPartition) {
	c.o.Metrics.Lag.DeleteLabelValues(tp.Topic, strconv.Itoa(int(tp.Partition)))
}

type tpList []kafka.TopicPartition

func (l tpList) String() string {
	s := ""
	for i, tp := range l {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%s[%d]", *tp.Topic, tp.Partition)
	}
	return s
}

// UnreachableError: no broker answered a metadata request in time.
type UnreachableError struct {
	Brokers string        // bootstrap.servers
	Waited  time.Duration // how long the request waited
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("Kafka brokers %s unreachable: no answer within %s (%v)", e.Brokers, e.Waited, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// MissingTopicError: the brokers answered that the topic does not exist.
type MissingTopicError struct{ Topic string }

func (e *MissingTopicError) Error() string { return fmt.Sprintf("topic %s does not exist", e.Topic) }

// CheckTopic asks the brokers whether topic exists, waiting at most timeout
// for an answer: nil, *UnreachableError or *MissingTopicError (or another
// error the brokers gave for the topic, e.g. not authorized). The request goes
// through the consumer, which never asks the broker to create the topic.
func (c *Consumer) CheckTopic(topic string, timeout time.Duration) error {
	start := time.Now()
	md, err := c.c.GetMetadata(&topic, false, int(timeout.Milliseconds()))
	if err != nil {
		return &UnreachableError{Brokers: c.o.Kafka["bootstrap.servers"], Waited: time.Since(start).Round(time.Millisecond), Err: err}
	}
	tm, ok := md.Topics[topic]
	switch {
	case !ok, tm.Error.Code() == kafka.ErrUnknownTopicOrPart, tm.Error.Code() == kafka.ErrUnknownTopic:
		return &MissingTopicError{Topic: topic}
	case tm.Error.Code() != kafka.ErrNoError && tm.Error.Code() != kafka.ErrLeaderNotAvailable:
		return fmt.Errorf("metadata of topic %s: %w", topic, tm.Error)
	}
	return nil
}

// Close closes a consumer whose Run was not called (Run closes its own),
// waiting at most timeout for librdkafka.
func (c *Consumer) Close(timeout time.Duration) error {
	c.watch.Stop()
	closed := make(chan error, 1)
	go func() { closed <- c.c.Close() }()
	select {
	case err := <-closed:
		return err
	case <-time.After(timeout):
		return errors.New("close consumer: librdkafka did not finish in time")
	}
}

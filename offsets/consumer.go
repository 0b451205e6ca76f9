// Package offsets is the Kafka consumer; it owns when an offset is stored:
// the librdkafka poll loop and cooperative rebalancing (consumer.go), and
// the scheduler (schedule.go) that writes each partition's batches one at a
// time and stores an offset only once every record before it is written or
// dead-lettered (docs/design.md "Offsets and delivery"). Dead
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

// Consumer is the poll loop: it takes messages from librdkafka, decodes
// them and hands them to the scheduler, and follows the group's
// rebalances. All its state is owned by the goroutine that runs Run.
type Consumer struct {
	o      Options
	client *kafka.Consumer // librdkafka's
	log    *zap.Logger
	sched  *scheduler

	watch   *Watch              // librdkafka's lines and client errors
	commits *statelog.Condition // offset commits, logged when they start and stop failing

	// handed: a record was handed to the scheduler since the last poll
	// that returned nothing (see poll).
	handed bool

	fromEarliest bool // auto.offset.reset is earliest
	exclude      map[string]bool
	future       futureWatch

	status Status
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
	cm := ConsumerConfig(o)
	kc, err := kafka.NewConsumer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create Kafka consumer: %w", err)
	}
	watch := Logging{Log: o.Log, Brokers: o.Brokers}.Watch("consumer", kc, kc.Logs())
	reset, _ := cm["auto.offset.reset"].(string)
	exclude := map[string]bool{}
	for _, t := range o.Exclude {
		exclude[t] = true
	}
	c := &Consumer{
		o: o, client: kc, log: o.Log, watch: watch,
		commits: &statelog.Condition{Log: o.Log, Fields: []zap.Field{zap.String("group", o.GroupID)},
			Failing:   "offset commits fail; retried every second (nothing is skipped: what was not committed is read again after a restart)",
			Recovered: "offset commits succeed again"},
		fromEarliest: reset == "earliest" || reset == "smallest" || reset == "beginning",
		exclude:      exclude,
		future:       newFutureWatch(o.FutureSkew),
	}
	c.sched = newScheduler(librdkafkaControl{kc}, w, batch.New(o.Batch), o.Concurrency, &c.status, o.Metrics, o.Log)
	return c, nil
}

// ConsumerConfig is the librdkafka configuration of the consumer New
// makes from o (o.Kafka, then statesync's settings and defaults), prepared
// for its log lines: what the bench's consume-only ceiling reads with.
func ConsumerConfig(o Options) kafka.ConfigMap {
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
	// Always: a partition's end says where a transaction's markers end (scheduler.atEnd).
	cm["enable.partition.eof"] = true
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
	return cm
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
	if err := c.client.SubscribeTopics(c.o.Subscription, c.rebalance); err != nil {
		return fmt.Errorf("subscribe to %v: %w", c.o.Subscription, err)
	}
	c.status.Subscribed.Store(true)
	c.log.Info("subscribed", zap.Strings("topics", c.o.Subscription), zap.String("group", c.o.GroupID))
	lagTick := time.Now()
	var unassigned unassignedClock
	var runErr error
	for ctx.Err() == nil {
		c.sched.drain(time.Now())
		c.sched.retrySeeks(time.Now())
		if c.o.StopAtEnd && c.sched.imported() {
			c.log.Info("import complete: every partition read to its end offset and committed")
			break
		}
		var ev kafka.Event
		if c.sched.hold(time.Now()) {
			c.sched.await(blockedWait)
		} else {
			ev = c.poll()
		}
		now := time.Now()
		if runErr = c.handleEvent(ev, now); runErr != nil {
			break
		}
		c.sched.closeDue(now)
		c.sched.dispatch()
		if now.Sub(lagTick) > time.Second {
			lagTick = now
			c.updateLag()
		}
		if c.o.StopAtEnd {
			if runErr = unassigned.check(len(c.sched.parts), now, c.o); runErr != nil {
				break
			}
		}
	}
	return errors.Join(runErr, c.shutdown())
}

// unassignedClock bounds how long an import goes without partitions:
// before its first assignment, and again after losing them (a session
// that timed out on a loaded machine, a rebalance): the group assigns them
// again and the import goes on from the committed offsets.
type unassignedClock struct {
	since    time.Time // zero: partitions assigned
	assigned bool      // had partitions once
}

func (u *unassignedClock) check(parts int, now time.Time, o Options) error {
	if parts > 0 {
		u.since, u.assigned = time.Time{}, true
		return nil
	}
	if u.since.IsZero() {
		u.since = now
	}
	if now.Sub(u.since) <= o.AssignTimeout {
		return nil
	}
	if u.assigned {
		return fmt.Errorf("partitions lost and not assigned again within %s: other members of group %q hold them, or the brokers do not answer",
			o.AssignTimeout, o.GroupID)
	}
	return fmt.Errorf("no partition assigned within %s: no topic matches %v, or other members of group %q hold them all",
		o.AssignTimeout, o.Subscription, o.GroupID)
}

// handleEvent handles what a poll returned (nil: nothing); the error is a
// fatal one of the client.
func (c *Consumer) handleEvent(ev kafka.Event, now time.Time) error {
	switch e := ev.(type) {
	case *kafka.Message:
		c.handle(e, now)
	case kafka.PartitionEOF:
		c.eof(e, now)
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
			return fmt.Errorf("kafka consumer fatal error: %w", e)
		}
	}
	return nil
}

// poll takes the next event from librdkafka. Right after a record it does
// not wait: a poll that returns nothing says librdkafka's queue is drained,
// and the partitions not being written close their open batches at once
// instead of waiting for the batch timer (scheduler.closeIdle). Otherwise
// it waits as long as nothing needs the loop, so an idle consumer does not
// spin.
func (c *Consumer) poll() kafka.Event {
	timeout := 0
	if !c.handed {
		timeout = c.pollTimeout()
	}
	ev := c.client.Poll(timeout)
	switch ev.(type) {
	case nil:
		c.handed = false
		c.sched.drain(time.Now()) // a write that finished during the poll frees its partition
		c.sched.closeIdle()
	case *kafka.Message:
		c.handed = true
	}
	return ev
}

func (c *Consumer) pollTimeout() int {
	if c.sched.inflight > 0 {
		return 10
	}
	if at, ok := c.sched.acc.NextDue(); ok {
		ms := int(time.Until(at).Milliseconds())
		return max(1, min(ms, 100))
	}
	if !c.sched.seekRetryAt.IsZero() {
		return 100
	}
	return idlePollMs
}

// idlePollMs is how long a poll waits when nothing is open, being written
// or waiting for a retry: only a record, a rebalance or the end of the
// process can need the loop then, and the first two end the poll at once.
// Each return from the blocking cgo call wakes the Go runtime, so a longer
// wait makes an idle sidecar cheaper; a stop (ctx cancelled) is noticed
// within this time.
const idlePollMs = 500

func (c *Consumer) handle(m *kafka.Message, now time.Time) {
	tp := batch.TopicPartition{Topic: *m.TopicPartition.Topic, Partition: m.TopicPartition.Partition}
	p := c.sched.parts[tp]
	if p == nil || p.revoking {
		return // not ours (anymore): the next owner reads it from the committed offset
	}
	if p.seekTo >= 0 {
		return // a refused seek back: read again once the seek is done
	}
	off := int64(m.TopicPartition.Offset)
	if off < p.next {
		return // redelivery of something already accumulated after a seek or resume
	}
	p.next = off + 1
	c.status.Consumed.Add(1)
	p.consumed.Inc()
	msg := FromKafka(m)
	rec, err := record.Decode(msg, c.o.Decode)
	if err != nil {
		var pe *record.PoisonError
		if !errors.As(err, &pe) {
			pe = &record.PoisonError{Class: record.ClassInvalidPayload, Err: err}
		}
		c.sched.addPoison(p, batch.Poison{Msg: msg, Err: pe}, now)
	} else {
		if c.future.skew > 0 && rec.ProcessedAt.After(now.Add(c.future.skew)) {
			c.fromTheFuture(&rec, now)
		}
		c.sched.add(p, rec, now)
	}
	if c.o.StopAtEnd && p.end >= 0 && off+1 >= p.end {
		// The import's last record of this partition: nothing more is
		// coming, so write it now instead of after the batch timer or EOF.
		c.sched.close(tp)
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

// librdkafkaControl is the scheduler's partitionControl over librdkafka.
type librdkafkaControl struct{ kc *kafka.Consumer }

func (l librdkafkaControl) Pause(tp batch.TopicPartition) error {
	return l.kc.Pause([]kafka.TopicPartition{kafkaTP(tp, 0)}) // the offset is not used
}

func (l librdkafkaControl) Resume(tp batch.TopicPartition) error {
	return l.kc.Resume([]kafka.TopicPartition{kafkaTP(tp, 0)})
}

func (l librdkafkaControl) StoreOffset(tp batch.TopicPartition, next int64) error {
	_, err := l.kc.StoreOffsets([]kafka.TopicPartition{kafkaTP(tp, next)})
	return err
}

func (l librdkafkaControl) Seek(tp batch.TopicPartition, offset int64) error {
	return l.kc.Seek(kafkaTP(tp, offset), 0)
}

// kafkaTP is tp in librdkafka's terms, at offset.
func kafkaTP(tp batch.TopicPartition, offset int64) kafka.TopicPartition {
	topic := tp.Topic
	return kafka.TopicPartition{Topic: &topic, Partition: tp.Partition, Offset: kafka.Offset(offset)}
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
			low, end := int64(0), int64(-1)
			if c.o.StopAtEnd {
				if l, h, err := kc.QueryWatermarkOffsets(tp.Topic, tp.Partition, 10000); err == nil {
					low, end = l, h
				} else {
					c.log.Warn("end offset unknown", zap.String("topic", tp.Topic), zap.Int32("partition", tp.Partition), zap.Error(err))
				}
			}
			c.sched.assign(tp, low, end)
		}
		c.status.Assigned.Store(int64(len(c.sched.parts)))
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
		c.status.Assigned.Store(int64(len(c.sched.parts)))
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
		p := c.sched.parts[batch.TopicPartition{Topic: *ktp.Topic, Partition: ktp.Partition}]
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
	tps := make([]batch.TopicPartition, len(ktps))
	for i, ktp := range ktps {
		tps[i] = batch.TopicPartition{Topic: *ktp.Topic, Partition: ktp.Partition}
	}
	if lost {
		c.sched.drop(tps)
		return
	}
	var commit []kafka.TopicPartition
	for _, p := range c.sched.revoke(tps, c.o.ShutdownGrace) {
		if p.stored >= 0 {
			commit = append(commit, kafkaTP(p.tp, p.stored))
		}
		c.deleteLag(p.tp)
	}
	if len(commit) > 0 {
		if _, err := c.client.CommitOffsets(commit); err != nil {
			c.log.Warn("commit on revoke failed", zap.Error(err))
		} else {
			c.o.Metrics.LastCommit.SetToCurrentTime()
		}
	}
}

// shutdown flushes everything open, waits for the writes within the grace
// period, commits and closes.
func (c *Consumer) shutdown() error {
	start := time.Now()
	c.log.Info("draining", zap.Int("in_flight", c.sched.inflight))
	c.sched.closeAndFinish(c.o.ShutdownGrace)
	if _, err := c.client.Commit(); err != nil && !isNoOffset(err) {
		c.log.Warn("final commit failed", zap.Error(err))
	} else {
		c.o.Metrics.LastCommit.SetToCurrentTime()
	}
	c.log.Info("committed; closing consumer", zap.Duration("drain", time.Since(start)))
	c.watch.Stop()
	left := c.o.ShutdownGrace - time.Since(start)
	closed := make(chan error, 1)
	go func() { closed <- c.client.Close() }()
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

func (c *Consumer) eof(e kafka.PartitionEOF, now time.Time) {
	tp := batch.TopicPartition{Topic: *e.Topic, Partition: e.Partition}
	p := c.sched.parts[tp]
	if p == nil {
		return
	}
	if c.o.StopAtEnd {
		c.sched.close(tp) // the import's end: no need to wait for the batch timer
	}
	c.sched.atEnd(p, int64(e.Offset), now)
}

func (c *Consumer) updateLag() {
	var total int64
	for tp, p := range c.sched.parts {
		_, high, err := c.client.GetWatermarkOffsets(tp.Topic, tp.Partition)
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
// A missing topic is asked again for up to topicSettle (beyond timeout).
func (c *Consumer) CheckTopic(topic string, timeout time.Duration) error {
	start := time.Now()
	err := c.checkTopic(topic, start, timeout)
	var missing *MissingTopicError
	for errors.As(err, &missing) && time.Since(start)+topicSettleStep < topicSettle {
		time.Sleep(topicSettleStep)
		again := c.checkTopic(topic, start, time.Second)
		var u *UnreachableError
		if errors.As(again, &u) {
			return err // the brokers answered "missing"; a slow retry does not change it
		}
		err = again
	}
	return err
}

// A topic created a moment ago can be missing from a broker's metadata for
// a while (the controller has it, the broker's cache not yet): a missing
// topic is asked again every topicSettleStep for up to topicSettle before
// it counts as missing.
const (
	topicSettle     = 2 * time.Second
	topicSettleStep = 250 * time.Millisecond
)

func (c *Consumer) checkTopic(topic string, start time.Time, timeout time.Duration) error {
	md, err := c.client.GetMetadata(&topic, false, int(timeout.Milliseconds()))
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
	go func() { closed <- c.client.Close() }()
	select {
	case err := <-closed:
		return err
	case <-time.After(timeout):
		return errors.New("close consumer: librdkafka did not finish in time")
	}
}

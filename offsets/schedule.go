package offsets

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/record"
)

// partitionControl is what the scheduler asks of Kafka for one partition;
// librdkafkaControl (consumer.go) is it over the librdkafka consumer.
type partitionControl interface {
	Pause(tp batch.TopicPartition) error
	Resume(tp batch.TopicPartition) error
	// StoreOffset stores next, the next offset to read, for the next commit.
	StoreOffset(tp batch.TopicPartition, next int64) error
	// Seek makes the partition deliver again from offset.
	Seek(tp batch.TopicPartition, offset int64) error
}

// scheduler decides when each partition's batches are closed and written
// and when their offsets are stored (docs/design.md "Offsets and delivery"):
// a partition writes one batch at a time, in offset order; at most
// concurrency batches are written at once; an offset is stored only after
// the write of every record before it was acknowledged. It is owned by the
// poll goroutine; only the writes run elsewhere, and their completions come
// back over done. The caller passes the clock, as to batch.
type scheduler struct {
	kafka       partitionControl
	w           Writer
	acc         *batch.Accumulator // the open batch of each partition
	concurrency int
	status      *Status
	m           *metrics.Metrics
	log         *zap.Logger

	parts    map[batch.TopicPartition]*partition
	inflight int
	waiting  []batch.TopicPartition // partitions with a closed batch, waiting for a write slot
	done     chan completion
	// seekRetryAt is when refused seeks back are retried (zero: none).
	seekRetryAt time.Time
	// blockedSince is when polling was first held back with no write
	// completing since; zero while polling goes on (see hold).
	blockedSince time.Time
}

// partition is the scheduling state of one assigned partition.
type partition struct {
	tp      batch.TopicPartition
	ctx     context.Context // of its writes: cancelled when the partition is given up
	cancel  context.CancelFunc
	writing *batch.Batch   // being written
	queue   []*batch.Batch // closed, waiting for the one being written
	opened  time.Time      // when its open batch got its first message; zero: none open
	paused  bool
	// seekTo is the offset a refused seek back still has to reach (-1:
	// none): the partition stays paused and its messages are dropped
	// until a retry of the seek succeeds (retrySeeks).
	seekTo int64
	// gapTo is the end of partition a PartitionEOF reported past the last
	// record delivered (-1: none): the offsets between gapFrom and gapTo
	// hold no record for us (a transaction's markers, aborted records), and
	// gapTo is stored once everything before gapFrom is acknowledged
	// (settleGap).
	gapFrom, gapTo int64
	next           int64              // offset after the last message delivered
	stored         int64              // offset stored for commit (next to read), -1 none
	low, end       int64              // watermarks at assignment, for StopAtEnd; end -1 unknown
	consumed       prometheus.Counter // looked up once: the per-message path stays cheap
	revoking       bool

	unacked unacked             // Kafka timestamps of the records consumed and not yet acknowledged
	oldest  *metrics.Pending    // publishes unacked's first: statesync_oldest_unwritten_seconds
	fresh   prometheus.Observer // statesync_produce_to_written_seconds of its topic
}

type completion struct {
	tp  batch.TopicPartition
	b   *batch.Batch
	p   *partition
	err error
	at  time.Time // when the write returned: the acknowledgement, when err is nil
}

const (
	// seekRetryEvery: how often a refused seek back is retried.
	seekRetryEvery = 100 * time.Millisecond
	// maxQueuedBatches is how many closed batches a partition may hold
	// before it blocks polling (see blocked).
	maxQueuedBatches = 1
	// pauseAfter: when polling has been blocked this long with no write
	// completing, the blocking partitions are paused so the others go on.
	pauseAfter = 2 * time.Second
	// blockedWait bounds one wait for a completion while polling is blocked.
	blockedWait = 20 * time.Millisecond
)

func newScheduler(k partitionControl, w Writer, acc *batch.Accumulator, concurrency int, status *Status, m *metrics.Metrics, log *zap.Logger) *scheduler {
	return &scheduler{
		kafka: k, w: w, acc: acc, concurrency: concurrency, status: status, m: m, log: log,
		parts: map[batch.TopicPartition]*partition{},
		done:  make(chan completion, 64),
	}
}

// assign starts scheduling tp; low and end are its watermarks (end -1:
// unknown, never imported).
func (s *scheduler) assign(tp batch.TopicPartition, low, end int64) *partition {
	ctx, cancel := context.WithCancel(context.Background())
	p := &partition{tp: tp, ctx: ctx, cancel: cancel, stored: -1, next: -1, seekTo: -1, gapTo: -1, low: low, end: end,
		consumed: s.m.Consumed.WithLabelValues(tp.Topic),
		oldest:   s.m.OldestUnwritten.Track(tp.Topic, tp.Partition),
		fresh:    s.m.ProduceToWritten.WithLabelValues(tp.Topic)}
	s.parts[tp] = p
	return p
}

// add accumulates a decoded record of p.
func (s *scheduler) add(p *partition, rec record.Record, now time.Time) {
	s.accumulated(p, &rec.Msg, s.acc.Add(rec, now), now)
}

// addPoison accumulates a message of p that can never be written: it
// travels in its batch to be dead-lettered, and its offset is stored with
// the batch.
func (s *scheduler) addPoison(p *partition, x batch.Poison, now time.Time) {
	s.accumulated(p, &x.Msg, s.acc.AddPoison(x, now), now)
}

// accumulated queues the batch that adding m closed, if any, notes when
// p's open batch was opened, and keeps m's Kafka timestamp until m is
// acknowledged.
func (s *scheduler) accumulated(p *partition, m *record.Message, closed *batch.Batch, now time.Time) {
	// Without a Kafka timestamp (librdkafka gives -1 ms when the broker has
	// none) the record is kept as -(when it was consumed): the histogram
	// skips it, and the oldest-unwritten gauge still ages from then
	// instead of saying nothing is pending.
	ts := -now.UnixNano()
	if m.Timestamp.Unix() > 0 {
		ts = m.Timestamp.UnixNano()
	}
	if p.unacked.empty() {
		p.oldest.Set(abs(ts))
	}
	p.unacked.push(ts)
	if closed != nil {
		s.enqueue(closed) // p has no open batch, unless m opened one
	}
	if (closed == nil || closed.LastOffset != m.Offset) && p.opened.IsZero() {
		p.opened = now
	}
}

// close closes tp's open batch, if any: nothing more is coming soon, so it
// need not wait for the batch timer.
func (s *scheduler) close(tp batch.TopicPartition) {
	if b := s.acc.Take(tp); b != nil {
		s.enqueue(b)
	}
}

// closeDue closes the open batches that are full or older than the
// batch's max wait.
func (s *scheduler) closeDue(now time.Time) {
	for _, b := range s.acc.Due(now) {
		s.enqueue(b)
	}
}

// closeIdle closes the open batches of the partitions that have no write in
// flight and nothing queued, as long as a write slot is free for them
// (oldest first): the consumer has nothing more to hand them right now
// (librdkafka's queue is drained), so waiting for the batch timer would
// only delay records nobody is adding to. A partition being written keeps
// accumulating, so under load batches still fill by size or max wait.
func (s *scheduler) closeIdle() {
	free := s.concurrency - s.inflight - len(s.waiting)
	if free <= 0 {
		return
	}
	type open struct {
		tp     batch.TopicPartition
		opened time.Time
	}
	var idle []open
	for tp, p := range s.parts {
		if !p.opened.IsZero() && p.writing == nil && len(p.queue) == 0 && !p.revoking {
			idle = append(idle, open{tp, p.opened})
		}
	}
	if len(idle) > free {
		slices.SortFunc(idle, func(x, y open) int {
			return cmp.Or(x.opened.Compare(y.opened), cmp.Compare(x.tp.Topic, y.tp.Topic), cmp.Compare(x.tp.Partition, y.tp.Partition))
		})
		idle = idle[:free]
	}
	for _, o := range idle {
		s.close(o.tp)
	}
}

// enqueue hands a closed batch to its partition's queue. A partition writes
// one batch at a time (so two batches never race on one key); once
// maxQueuedBatches wait behind the one being written, polling stops
// (backpressure, see hold) until a write completes.
func (s *scheduler) enqueue(b *batch.Batch) {
	p := s.parts[b.TopicPartition]
	if p == nil {
		return
	}
	p.opened = time.Time{}
	p.queue = append(p.queue, b)
	if p.writing == nil && len(p.queue) == 1 {
		s.waiting = append(s.waiting, p.tp)
	}
}

// dispatch starts writes for waiting partitions while slots are free.
func (s *scheduler) dispatch() {
	for s.inflight < s.concurrency && len(s.waiting) > 0 {
		tp := s.waiting[0]
		s.waiting = s.waiting[1:]
		p := s.parts[tp]
		if p == nil || p.writing != nil || len(p.queue) == 0 {
			continue
		}
		b := p.queue[0]
		p.queue = p.queue[1:]
		p.writing = b
		s.inflight++
		s.resumeIfRoom(p) // its closed batch is on its way: read on while it is written
		s.m.InFlight.Set(float64(s.inflight))
		go func(ctx context.Context, p *partition, b *batch.Batch) {
			err := s.w.Apply(ctx, b)
			s.done <- completion{tp: p.tp, b: b, p: p, err: err, at: time.Now()}
		}(p.ctx, p, b)
	}
}

// hold reports whether polling must wait for a write to complete: taking
// more messages would only grow memory (see blocked). This is backpressure
// without Pause: librdkafka's queue fills and it then stops fetching by
// itself. Pause and Resume cost a re-fetch and up to a second before
// librdkafka fetches a resumed partition again, so they are kept for when
// polling has been held for pauseAfter with no write completing (a stalled
// write): then the blocking partitions are paused and polling goes on.
func (s *scheduler) hold(now time.Time) bool {
	if !s.blocked() {
		s.blockedSince = time.Time{}
		return false
	}
	if s.blockedSince.IsZero() {
		s.blockedSince = now
	}
	if now.Sub(s.blockedSince) < pauseAfter {
		return true
	}
	s.pauseBlocked()
	return s.blocked()
}

// blocked: taking more messages would only grow memory, because a
// partition being written already has its next batch closed (its batches go
// one at a time), or as many closed batches wait for a write slot as there
// are slots.
func (s *scheduler) blocked() bool {
	ready := 0
	for _, p := range s.parts {
		if !s.blocking(p) {
			continue
		}
		if p.writing != nil {
			return true
		}
		ready++
	}
	return ready >= s.concurrency
}

// blocking: p holds a closed batch it cannot write yet.
func (s *scheduler) blocking(p *partition) bool {
	return !p.paused && !p.revoking && len(p.queue) >= maxQueuedBatches
}

// pauseBlocked pauses the partitions that block polling, so the others go on.
func (s *scheduler) pauseBlocked() {
	s.blockedSince = time.Time{}
	for _, p := range s.parts {
		if s.blocking(p) {
			s.pause(p)
			s.status.Pauses.Add(1)
			s.m.Pauses.Inc()
			s.log.Info("partition paused: its writes are behind", zap.String("topic", p.tp.Topic),
				zap.Int32("partition", p.tp.Partition), zap.Int("queued_batches", len(p.queue)))
		}
	}
}

// resumeIfRoom resumes p if it was paused and no longer holds
// maxQueuedBatches closed batches.
func (s *scheduler) resumeIfRoom(p *partition) {
	if len(p.queue) < maxQueuedBatches {
		s.resume(p)
	}
}

func (s *scheduler) pause(p *partition) { s.setPaused(p, true) }

// resume resumes p, unless a refused seek back keeps it paused.
func (s *scheduler) resume(p *partition) {
	if p.seekTo < 0 {
		s.setPaused(p, false)
	}
}

func (s *scheduler) setPaused(p *partition, paused bool) {
	if p.paused == paused {
		return
	}
	op, verb := s.kafka.Resume, "resume"
	if paused {
		op, verb = s.kafka.Pause, "pause"
	}
	if err := op(p.tp); err != nil {
		s.log.Warn(verb+" failed", zap.Error(err))
		return
	}
	p.paused = paused
}

// drain handles the writes that have finished, without waiting, and
// returns how many there were.
func (s *scheduler) drain(now time.Time) int {
	for n := 0; ; n++ {
		select {
		case cp := <-s.done:
			s.complete(cp, now)
		default:
			return n
		}
	}
}

// await handles one finished write, waiting at most d for it; it reports
// whether one finished.
func (s *scheduler) await(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case cp := <-s.done:
		s.complete(cp, time.Now())
		return true
	case <-t.C:
		return false
	}
}

// complete handles a finished write: its offsets are stored if it was
// acknowledged, its partition reads it again if it was abandoned.
func (s *scheduler) complete(cp completion, now time.Time) {
	s.inflight--
	s.blockedSince = time.Time{} // writes are moving
	s.m.InFlight.Set(float64(s.inflight))
	p := cp.p
	if p.writing == cp.b {
		p.writing = nil
	}
	if s.parts[cp.tp] != p {
		return // the partition was revoked or lost meanwhile: its offsets are not ours to store
	}
	if cp.err != nil {
		// Abandoned: nothing of it may be committed. Read it again.
		s.log.Warn("batch abandoned; will re-read from its first offset", zap.String("topic", cp.tp.Topic),
			zap.Int32("partition", cp.tp.Partition), zap.Int64("offset", cp.b.FirstOffset), zap.Error(cp.err))
		p.queue = nil
		p.gapTo = -1
		s.acc.Drop(cp.tp)
		p.opened = time.Time{}
		p.unacked.clear() // read again; p.oldest keeps their age until they are acknowledged
		if !p.revoking {
			// A partition being given up is not read again by this member:
			// the next owner starts from the committed offset.
			s.seekBack(p, cp.b.FirstOffset)
		}
		return
	}
	s.acknowledged(p, cp.b.Consumed, cp.at)
	s.store(p, cp.b.LastOffset+1, cp.b.Consumed, now)
	s.settleGap(p, now)
	if len(p.queue) > 0 {
		s.waiting = append(s.waiting, p.tp)
	}
	s.resumeIfRoom(p)
}

// acknowledged observes statesync_produce_to_written_seconds for the n
// first unacknowledged records of p, acknowledged at at (written,
// dead-lettered or skipped as stale), and publishes the oldest left. The
// Kafka timestamp is the producer's clock (or the broker's, with
// LogAppendTime): a producer clock ahead of statesync's would give
// negative ages, counted as 0.
func (s *scheduler) acknowledged(p *partition, n int, at time.Time) {
	now := at.UnixNano()
	for _, ts := range p.unacked.pop(n) {
		if ts > 0 {
			p.fresh.Observe(max(time.Duration(now-ts), 0).Seconds())
		}
	}
	p.oldest.Set(abs(p.unacked.first()))
}

func abs(ts int64) int64 { return max(ts, -ts) }

// store stores next for p's commit. Batches of a partition are written one
// at a time, in offset order, so every record before next is acknowledged.
func (s *scheduler) store(p *partition, next int64, records int, now time.Time) bool {
	if err := s.kafka.StoreOffset(p.tp, next); err != nil {
		// Storing for a partition that is no longer assigned fails with a
		// state error: that is the fence working, not a crash.
		s.log.Warn("store offset refused", zap.String("topic", p.tp.Topic), zap.Int32("partition", p.tp.Partition), zap.Int64("offset", next), zap.Error(err))
		return false
	}
	p.stored = next
	s.status.Committed.Add(int64(records))
	s.status.LastProgress.Store(now.UnixNano())
	return true
}

// atEnd handles a partition EOF: eof is the offset the next record will
// have. Offsets between the last record delivered and eof hold no record
// for us (a transactional producer's commit markers, aborted records), so
// without this a partition ending with a marker would never have its last
// offset stored: its lag stays 1 (readiness calls it stuck) and an import
// never reaches its end offsets.
func (s *scheduler) atEnd(p *partition, eof int64, now time.Time) {
	if p.seekTo >= 0 || p.revoking || eof <= p.next || eof <= p.stored {
		return
	}
	if p.gapTo < 0 || p.next != p.gapTo {
		// records came since the last end: the gap starts after them, so
		// settling it needs them acknowledged, not merely no longer queued
		// (a grace running out drops queued batches)
		p.gapFrom = p.next
	}
	p.gapTo, p.next = eof, eof
	s.settleGap(p, now)
}

// settleGap stores the end of p's gap once nothing before it waits: no
// batch open, queued or being written, and the records delivered before it
// acknowledged.
func (s *scheduler) settleGap(p *partition, now time.Time) {
	if p.gapTo < 0 || p.writing != nil || len(p.queue) > 0 || s.acc.Pending(p.tp) > 0 || p.stored < p.gapFrom {
		return
	}
	if p.gapTo <= p.stored || s.store(p, p.gapTo, 0, now) {
		p.gapTo = -1 // kept when the store is refused: the next completion or end tries again
	}
}

// seekBack makes the partition deliver again from offset, after a write was
// abandoned: Pause, Seek, Resume (Resume alone would continue after the
// last delivered message).
// A refused seek leaves the partition paused, its messages dropped (they
// would follow the abandoned records, whose offsets must not be passed), and
// the seek is retried by retrySeeks.
func (s *scheduler) seekBack(p *partition, offset int64) {
	s.pause(p)
	p.next = offset
	p.gapTo = -1 // read again: the next EOF says where the partition ends
	if err := s.kafka.Seek(p.tp, offset); err != nil {
		if p.seekTo < 0 {
			s.log.Error("seek back refused; the partition stays paused and the seek is retried", zap.String("topic", p.tp.Topic),
				zap.Int32("partition", p.tp.Partition), zap.Int64("offset", offset), zap.Error(err))
		}
		p.seekTo = offset
		if s.seekRetryAt.IsZero() {
			s.seekRetryAt = time.Now().Add(seekRetryEvery)
		}
		return
	}
	if p.seekTo >= 0 {
		s.log.Info("seek back done", zap.String("topic", p.tp.Topic), zap.Int32("partition", p.tp.Partition), zap.Int64("offset", offset))
	}
	p.seekTo = -1
	s.resume(p)
}

// retrySeeks retries the seeks back that were refused, at most every
// seekRetryEvery (the loop runs once per message under load).
func (s *scheduler) retrySeeks(now time.Time) {
	if s.seekRetryAt.IsZero() || now.Before(s.seekRetryAt) {
		return
	}
	s.seekRetryAt = time.Time{}
	for _, p := range s.parts {
		if p.seekTo >= 0 && !p.revoking {
			s.seekBack(p, p.seekTo)
		}
	}
}

// drop forgets lost partitions at once: another member may own them
// already, so nothing of theirs is written on or stored.
func (s *scheduler) drop(tps []batch.TopicPartition) {
	for _, tp := range tps {
		if p := s.parts[tp]; p != nil {
			s.acc.Drop(tp)
			p.cancel()
			s.forget(p)
		}
	}
}

// revoke gives partitions up: their open batches are closed and written,
// and waited for (at most grace), and they are forgotten. It returns the
// partitions it gave up, whose stored offsets are to be committed.
func (s *scheduler) revoke(tps []batch.TopicPartition, grace time.Duration) []*partition {
	var ps []*partition
	for _, tp := range tps {
		p := s.parts[tp]
		if p == nil {
			continue
		}
		p.revoking = true
		s.close(tp)
		ps = append(ps, p)
	}
	if len(ps) > 0 {
		s.finish(ps, grace)
	}
	for _, p := range ps {
		p.cancel()
		s.forget(p)
	}
	return ps
}

func (s *scheduler) forget(p *partition) {
	delete(s.parts, p.tp)
	s.m.OldestUnwritten.Forget(p.tp.Topic, p.tp.Partition)
}

// closeAndFinish closes every open batch and writes them and those queued,
// waiting for them at most grace (shutdown).
func (s *scheduler) closeAndFinish(grace time.Duration) {
	for _, b := range s.acc.TakeAll() {
		s.enqueue(b)
	}
	var ps []*partition
	for _, p := range s.parts {
		ps = append(ps, p)
	}
	s.finish(ps, grace)
}

// finish writes the given partitions' queued batches and waits for them,
// for at most grace; then it cancels theirs still being written (they will be
// read again by whoever owns the partition next).
func (s *scheduler) finish(ps []*partition, grace time.Duration) {
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
		s.dispatch()
		select {
		case cp := <-s.done:
			s.complete(cp, time.Now())
		case <-deadline.C:
			s.log.Warn("grace period over: abandoning batches still being written; they will be read again")
			for _, p := range ps {
				p.cancel()
				p.queue = nil
				p.gapTo = -1 // dropped records before it: nothing past them may be stored
			}
			for busy() {
				s.complete(<-s.done, time.Now())
			}
			return
		}
	}
}

// imported: every assigned partition has its offsets up to the end offset it
// had at assignment stored, and nothing is being written.
func (s *scheduler) imported() bool {
	if len(s.parts) == 0 || s.inflight > 0 {
		return false
	}
	for _, p := range s.parts {
		if p.end < 0 || (p.end > p.low && p.stored < p.end) {
			return false
		}
	}
	return true
}

// unacked holds the Kafka timestamps (unix nanos; negative: none, minus when
// it was consumed; see accumulated) of a partition's
// records consumed but not yet acknowledged, in offset order: a batch's
// Consumed first ones when its write is acknowledged (batches of a
// partition are acknowledged in offset order). No allocation per record.
type unacked struct {
	ts   []int64
	head int // ts[:head] are acknowledged
}

func (q *unacked) empty() bool { return q.head == len(q.ts) }

func (q *unacked) push(ts int64) {
	if q.head > 0 && len(q.ts) == cap(q.ts) && q.head >= len(q.ts)/2 {
		n := copy(q.ts, q.ts[q.head:]) // reuse the acknowledged half instead of growing
		q.ts, q.head = q.ts[:n], 0
	}
	q.ts = append(q.ts, ts)
}

// pop removes the n first and returns them, valid until the next push.
func (q *unacked) pop(n int) []int64 {
	n = min(n, len(q.ts)-q.head)
	out := q.ts[q.head : q.head+n]
	q.head += n
	if q.empty() {
		q.clear()
	}
	return out
}

// first is the timestamp of the first, 0 when there is none.
func (q *unacked) first() int64 {
	if q.empty() {
		return 0
	}
	return q.ts[q.head]
}

func (q *unacked) clear() { q.ts, q.head = q.ts[:0], 0 }

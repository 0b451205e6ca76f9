package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Freshness is measured from a record's Kafka timestamp: the producer's
// clock (CreateTime), or the broker's append time on a topic with
// message.timestamp.type=LogAppendTime. Skew between that clock and
// statesync's shifts both series below; a negative age counts as 0.
const (
	produceToWrittenHelp = "Seconds from a record's Kafka timestamp to the acknowledgement of the MongoDB write (or dead letter, or stale skip) that carried it, once per record. " +
		"The timestamp is the producer's clock, or the broker's append on a topic with message.timestamp.type=LogAppendTime; " +
		"clock skew between it and statesync shifts the value (negative values count as 0)."
	oldestUnwrittenHelp = "Age (now minus its Kafka timestamp, when scraped) of the first record of the partition consumed but not yet acknowledged by MongoDB or the dead-letter topic; 0 when nothing is pending. " +
		"It rises while a write is stuck, with or without new records. Same clock caveats as statesync_produce_to_written_seconds."
)

// FreshnessBuckets suit 1 ms … 60 s.
var FreshnessBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Unwritten is statesync_oldest_unwritten_seconds. The poll loop publishes,
// per partition, the Kafka timestamp of its oldest unacknowledged record
// (Pending); the age is computed when scraped, so it rises while a write
// is stuck even though the poll loop has nothing new to publish.
type Unwritten struct {
	desc  *prometheus.Desc
	now   func() time.Time
	mu    sync.Mutex
	parts map[unwrittenKey]*Pending
}

type unwrittenKey struct {
	topic     string
	partition int32
}

// Pending is one partition's oldest unacknowledged record, written by the
// poll loop and read by scrapes.
type Pending struct {
	since atomic.Int64 // unix nanos of its Kafka timestamp; 0: nothing pending
}

// Set publishes the Kafka timestamp (unix nanos) of the partition's oldest
// unacknowledged record (for one without a Kafka timestamp, when it was
// consumed); 0 (or less) says nothing is pending.
func (p *Pending) Set(unixNanos int64) { p.since.Store(max(unixNanos, 0)) }

func newUnwritten() *Unwritten {
	return &Unwritten{
		desc:  prometheus.NewDesc("statesync_oldest_unwritten_seconds", oldestUnwrittenHelp, []string{"topic", "partition"}, nil),
		now:   time.Now,
		parts: map[unwrittenKey]*Pending{},
	}
}

// Track starts the series of a partition (assigned) and returns where the
// poll loop publishes it.
func (u *Unwritten) Track(topic string, partition int32) *Pending {
	p := &Pending{}
	u.mu.Lock()
	u.parts[unwrittenKey{topic, partition}] = p
	u.mu.Unlock()
	return p
}

// Forget removes the series of a partition (revoked or lost).
func (u *Unwritten) Forget(topic string, partition int32) {
	u.mu.Lock()
	delete(u.parts, unwrittenKey{topic, partition})
	u.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (u *Unwritten) Describe(ch chan<- *prometheus.Desc) { ch <- u.desc }

// Collect implements prometheus.Collector.
func (u *Unwritten) Collect(ch chan<- prometheus.Metric) {
	now := u.now().UnixNano()
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, p := range u.parts {
		age := 0.0
		if since := p.since.Load(); since > 0 && now > since {
			age = time.Duration(now - since).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(u.desc, prometheus.GaugeValue, age, k.topic, strconv.Itoa(int(k.partition)))
	}
}

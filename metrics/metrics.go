// Package metrics holds statesync's Prometheus metrics, registered on an
// injected registerer so tests can build two instances side by side.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the statesync_* series. Components that take one never see nil:
// given none, they use New(nil), whose series are registered nowhere (tests
// and one-shot tools that do not serve /metrics).
type Metrics struct {
	Consumed      *prometheus.CounterVec   // topic
	Written       *prometheus.CounterVec   // topic
	Deleted       *prometheus.CounterVec   // topic
	Skipped       *prometheus.CounterVec   // topic, reason=stale|collapsed
	DeadLettered  *prometheus.CounterVec   // topic, class
	WriteDuration *prometheus.HistogramVec // topic
	BatchDocs     prometheus.Histogram
	Retries       *prometheus.CounterVec // topic
	Lag           *prometheus.GaugeVec   // topic, partition
	InFlight      prometheus.Gauge
	Pauses        prometheus.Counter
	LastCommit    prometheus.Gauge
	Ready         prometheus.Gauge
	MongoUp       prometheus.Gauge
	KafkaUp       prometheus.Gauge
	// DeadLetterBlocked is 1 while the last dead-letter publish failed: the
	// partition holding that record waits (nothing is skipped).
	DeadLetterBlocked  prometheus.Gauge
	DeadLetterFailures prometheus.Counter
	Future             *prometheus.CounterVec // topic
	// ProduceToWritten and OldestUnwritten measure freshness from the Kafka
	// timestamp (see freshness.go for its clock caveats).
	ProduceToWritten *prometheus.HistogramVec // topic
	OldestUnwritten  *Unwritten               // topic, partition; computed when scraped
}

// New registers the metrics on reg; with a nil reg they are registered
// nowhere (promauto.With(nil)), a throwaway set.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	unwritten := newUnwritten()
	if reg != nil {
		reg.MustRegister(unwritten)
	}
	return &Metrics{
		Consumed:     f.NewCounterVec(prometheus.CounterOpts{Name: "statesync_records_consumed_total", Help: "Kafka records consumed."}, []string{"topic"}),
		Written:      f.NewCounterVec(prometheus.CounterOpts{Name: "statesync_records_written_total", Help: "Documents upserted into MongoDB."}, []string{"topic"}),
		Deleted:      f.NewCounterVec(prometheus.CounterOpts{Name: "statesync_records_deleted_total", Help: "Tombstones applied as deletes."}, []string{"topic"}),
		Skipped:      f.NewCounterVec(prometheus.CounterOpts{Name: "statesync_records_skipped_total", Help: "Records not written: stale (a newer document is stored) or collapsed (a later record of the same key was in the batch)."}, []string{"topic", "reason"}),
		DeadLettered: f.NewCounterVec(prometheus.CounterOpts{Name: "statesync_records_dead_lettered_total", Help: "Records sent to the dead-letter topic, by error class."}, []string{"topic", "class"}),
		WriteDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "statesync_write_duration_seconds", Help: "Latency of one MongoDB bulk write.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"topic"}),
		BatchDocs: f.NewHistogram(prometheus.HistogramOpts{Name: "statesync_batch_documents", Help: "Documents per bulk write.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15)}),
		Retries:    f.NewCounterVec(prometheus.CounterOpts{Name: "statesync_write_retries_total", Help: "Bulk writes retried after a recoverable error."}, []string{"topic"}),
		Lag:        f.NewGaugeVec(prometheus.GaugeOpts{Name: "statesync_consumer_lag", Help: "Records between the last consumed offset and the partition's high watermark."}, []string{"topic", "partition"}),
		InFlight:   f.NewGauge(prometheus.GaugeOpts{Name: "statesync_inflight_batches", Help: "Batches being written."}),
		Pauses:     f.NewCounter(prometheus.CounterOpts{Name: "statesync_partition_pauses_total", Help: "Partitions paused because their writes stayed behind (a stalled or very slow write)."}),
		LastCommit: f.NewGauge(prometheus.GaugeOpts{Name: "statesync_last_commit_timestamp_seconds", Help: "Unix time of the last successful offset commit."}),
		Ready:      f.NewGauge(prometheus.GaugeOpts{Name: "statesync_ready", Help: "1 when /readyz answers ready."}),
		MongoUp:    f.NewGauge(prometheus.GaugeOpts{Name: "statesync_mongo_up", Help: "1 when the last MongoDB write or ping succeeded."}),
		KafkaUp:    f.NewGauge(prometheus.GaugeOpts{Name: "statesync_kafka_up", Help: "1 while the brokers answer; 0 from a connection failure that a metadata request confirms until one answers."}),
		DeadLetterBlocked: f.NewGauge(prometheus.GaugeOpts{Name: "statesync_dead_letter_blocked",
			Help: "1 while the last dead-letter publish failed (e.g. the dead-letter topic is missing): the record's partition waits until a retry is acknowledged."}),
		DeadLetterFailures: f.NewCounter(prometheus.CounterOpts{Name: "statesync_dead_letter_failures_total",
			Help: "Dead-letter publishes that failed and will be retried."}),
		Future: f.NewCounterVec(prometheus.CounterOpts{Name: "statesync_records_future_total",
			Help: "Records whose processedAt is more than STATESYNC_FUTURE_SKEW ahead of the local clock: under the stale-write guard their document refuses every update until then."}, []string{"topic"}),
		ProduceToWritten: f.NewHistogramVec(prometheus.HistogramOpts{Name: "statesync_produce_to_written_seconds", Help: produceToWrittenHelp,
			Buckets: FreshnessBuckets}, []string{"topic"}),
		OldestUnwritten: unwritten,
	}
}

// Build is what statesync_build_info carries: the same as statesync version.
type Build struct {
	Version, Commit, GoVersion, Librdkafka string
}

// RegisterBuildInfo registers statesync_build_info, always 1, with the
// build as labels (join it to other series to see which build runs where).
func RegisterBuildInfo(reg prometheus.Registerer, b Build) {
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{Name: "statesync_build_info",
		Help:        "Always 1; the labels say which build runs: version, commit, Go and librdkafka versions.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion, "librdkafka": b.Librdkafka}}).Set(1)
}

// Sum adds up the samples of the counters and gauges named name that g
// gathers, whatever their labels.
func Sum(g prometheus.Gatherer, name string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v, nil
}

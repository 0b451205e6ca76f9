package offsets

import (
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/metrics"
)

// A record whose processedAt is further ahead than the skew is counted
// every time and logged once per key per window, at most futureMaxLines
// lines a window.
func TestRecordsFromTheFutureAreCountedAndLoggedOncePerKey(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	topic := "codr.state.future"
	tp := batch.TopicPartition{Topic: topic, Partition: 0}
	c := &Consumer{
		o:   Options{FutureSkew: 5 * time.Minute, Metrics: m},
		log: zap.New(core),
	}
	c.sched = newScheduler(&fakeKafka{}, nil, batch.New(batch.Options{MaxDocs: 1000, MaxWait: time.Hour}), 1, &c.status, m, c.log)
	c.sched.assign(tp, 0, -1)
	c.future = newFutureWatch(c.o.FutureSkew)
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var offset int64
	feed := func(key string, processedAt time.Time, at time.Time) {
		t.Helper()
		topic := topic
		c.handle(&kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 0, Offset: kafka.Offset(offset)},
			Key:            []byte(key), Value: []byte(`{"payload":{"a":1}}`),
			Headers: []kafka.Header{{Key: "processedAt", Value: []byte(processedAt.Format(time.RFC3339Nano))}},
		}, at)
		offset++
	}
	future := func() float64 { return metricValue(t, reg, "statesync_records_future_total") }
	lines := func() int { return logs.FilterMessageSnippet("processedAt is in the future").Len() }

	frozen := bson.NewObjectID().Hex()
	feed(frozen, now.Add(10*time.Minute), now)
	feed(frozen, now.Add(11*time.Minute), now.Add(time.Second))
	feed(bson.NewObjectID().Hex(), now.Add(4*time.Minute), now) // within the skew
	feed(bson.NewObjectID().Hex(), now.Add(-time.Hour), now)
	if got := future(); got != 2 {
		t.Errorf("statesync_records_future_total = %v, want 2", got)
	}
	if got := lines(); got != 1 {
		t.Errorf("%d log lines, want 1 for the one key", got)
	}
	if e := logs.FilterMessageSnippet("processedAt is in the future").All(); len(e) > 0 {
		if e[0].ContextMap()["key"] != frozen {
			t.Errorf("log line does not name the key: %v", e[0].ContextMap())
		}
	}

	for i := 0; i < 2*futureMaxLines; i++ {
		feed(bson.NewObjectID().Hex(), now.Add(time.Hour), now.Add(2*time.Second))
	}
	if got := future(); got != 2+2*futureMaxLines {
		t.Errorf("statesync_records_future_total = %v, want %d", got, 2+2*futureMaxLines)
	}
	if got := lines(); got != futureMaxLines {
		t.Errorf("%d log lines, want at most %d a window", got, futureMaxLines)
	}
	if n := len(c.future.logged); n > futureMaxLines {
		t.Errorf("%d keys remembered, want at most %d", n, futureMaxLines)
	}

	// The next window logs the key again, and says how many were not logged.
	feed(frozen, now.Add(time.Hour), now.Add(futureWindow+time.Minute))
	if got := lines(); got != futureMaxLines+1 {
		t.Errorf("%d log lines after the window, want %d", got, futureMaxLines+1)
	}
	if got := logs.FilterMessageSnippet("were not logged").All(); len(got) != 1 || got[0].ContextMap()["records"] != int64(futureMaxLines+1) {
		t.Errorf("summary lines = %v, want one counting %d unlogged records", got, futureMaxLines+1)
	}
}

// metricValue sums the samples of a counter or gauge in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, err := metrics.Sum(reg, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

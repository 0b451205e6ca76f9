package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/record"
	"github.com/codr/statesync/test/testenv"
)

// A dead-letter topic that does not exist (deleted while running) makes the
// publish fail: that is reported once (one log line saying how to create
// the topic, the gauge, Blocked for readiness), every failure is counted,
// and the first acknowledged publish after the topic is back clears it.
func TestADeadLetterTopicThatIsMissingIsReportedOnceAndClearedWhenItIsBack(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := "codr.svc.blocked-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".dlt"
	// librdkafka waits this long before it calls a topic missing (30 s by default).
	p, err := offsets.NewProducer(map[string]string{"bootstrap.servers": brokers, "topic.metadata.propagation.max.ms": "1000"}, "dlt-test", offsets.Logging{Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(time.Second)
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	d := &Publisher{P: p, Topic: topic, Log: zap.New(core), Metrics: metrics.New(reg)}
	msg := record.Message{Topic: "codr.state.x", Partition: 0, Offset: 7, Key: []byte("k"), Value: []byte("not json")}
	cause := &record.PoisonError{Class: record.ClassInvalidJSON, Err: errors.New("bad")}
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := d.DeadLetter(ctx, msg, cause)
		cancel()
		if err == nil {
			t.Fatal("dead letter to a missing topic acknowledged")
		}
	}
	if blocked, why := d.Blocked(); !blocked || !strings.Contains(why, topic) {
		t.Errorf("Blocked = %t %q, want true naming the topic", blocked, why)
	}
	if got := metricValue(t, reg, "statesync_dead_letter_blocked"); got != 1 {
		t.Errorf("statesync_dead_letter_blocked = %v, want 1", got)
	}
	if got := metricValue(t, reg, "statesync_dead_letter_failures_total"); got != 3 {
		t.Errorf("statesync_dead_letter_failures_total = %v, want 3", got)
	}
	if n := logs.FilterMessageSnippet("statesync topics create " + topic).Len(); n != 1 {
		t.Errorf("%d log lines say how to create the topic, want 1 (not one per failed retry)", n)
	}

	testenv.CreateTopic(t, brokers, topic, 1, nil)
	testenv.Eventually(t, 60*time.Second, "the dead letter acknowledged once the topic exists", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return d.DeadLetter(ctx, msg, cause) == nil
	})
	if blocked, why := d.Blocked(); blocked {
		t.Errorf("still blocked after an acknowledged publish: %q", why)
	}
	if got := metricValue(t, reg, "statesync_dead_letter_blocked"); got != 0 {
		t.Errorf("statesync_dead_letter_blocked = %v after success, want 0", got)
	}
	if n := logs.FilterMessageSnippet("acknowledges again").Len(); n != 1 {
		t.Errorf("%d recovery log lines, want 1", n)
	}
}

// Blocked follows the partitions that wait for a dead letter: a partition
// whose publish was abandoned (revoked while waiting) or that has not retried
// for StaleAfter no longer counts, so a member that gave the partition up
// does not stay unready.
func TestBlockedCountsOnlyThePartitionsStillWaiting(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	d := &Publisher{Topic: "codr.svc.x.dlt", Metrics: metrics.New(reg), StaleAfter: time.Minute, Now: func() time.Time { return now }}
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	failed := errors.New("Local: Unknown topic")
	a, b := origin{"codr.state.x", 0}, origin{"codr.state.x", 1}

	d.outcome(live, a, failed)
	d.outcome(live, b, failed)
	if blocked, why := d.Blocked(); !blocked || !strings.Contains(why, "partitions waiting: 2") || !strings.Contains(why, "Unknown topic") {
		t.Errorf("Blocked = %t %q, want 2 partitions waiting with the error", blocked, why)
	}
	d.outcome(gone, b, context.Canceled) // b revoked while its publish waited
	if blocked, why := d.Blocked(); !blocked || !strings.Contains(why, "partitions waiting: 1") {
		t.Errorf("Blocked = %t %q, want a's partition only", blocked, why)
	}
	now = now.Add(30 * time.Second)
	d.outcome(live, a, failed) // a retries
	now = now.Add(45 * time.Second)
	if blocked, _ := d.Blocked(); !blocked {
		t.Error("a retried 45 s ago (StaleAfter 1m): it still waits")
	}
	now = now.Add(time.Minute)
	if blocked, why := d.Blocked(); blocked {
		t.Errorf("Blocked = %t %q after a stopped retrying for longer than StaleAfter", blocked, why)
	}
	if got := metricValue(t, reg, "statesync_dead_letter_blocked"); got != 0 {
		t.Errorf("statesync_dead_letter_blocked = %v, want 0", got)
	}
	d.outcome(live, a, failed)
	d.outcome(live, b, nil) // the topic acknowledges: every partition passes at its next retry
	if blocked, why := d.Blocked(); blocked {
		t.Errorf("Blocked = %t %q after an acknowledged publish", blocked, why)
	}
	if got := metricValue(t, reg, "statesync_dead_letter_failures_total"); got != 4 {
		t.Errorf("statesync_dead_letter_failures_total = %v, want the 4 failures (not the abandoned one)", got)
	}
}

// sizeLimitedProducer acknowledges values up to limit bytes, refuses longer
// ones with tooLarge, and refuses everything with err when it is set.
type sizeLimitedProducer struct {
	limit    int
	tooLarge kafka.ErrorCode
	err      error
	values   [][]byte // what was offered, in order
}

func (p *sizeLimitedProducer) Produce(_ context.Context, _ string, _, value []byte, _ []record.Header) error {
	p.values = append(p.values, value)
	switch {
	case p.err != nil:
		return p.err
	case len(value) > p.limit:
		return kafka.NewError(p.tooLarge, "Broker: Message size too large", false)
	}
	return nil
}

// A record too large for the dead-letter topic is dead-lettered without its
// body, pointing at where it stays, so its partition never stalls on it; any
// other refusal is the caller's to retry.
func TestALetterTooLargeForTheTopicIsPublishedWithoutItsBody(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m := record.Message{Topic: "codr.state.user", Partition: 1, Offset: 5, Key: []byte(testKey), Value: []byte(`{"payload":{"blob":"` + strings.Repeat("x", 4000) + `"}}`)}
	cause := &record.PoisonError{Class: record.ClassTooLarge, Err: errors.New("document over 16 MiB")}
	omitted := `{"statesyncOmitted":"record of 4023 bytes is too large for codr.svc.mongo.dlt; read it from codr.state.user partition 1 offset 5"}`
	tests := []struct {
		name     string
		p        sizeLimitedProducer
		records  []string // the "record" of each letter offered, in order
		err      string   // "" for acknowledged
		blocking bool
	}{
		{name: "a letter that fits keeps its body", p: sizeLimitedProducer{limit: 1 << 20},
			records: []string{string(m.Value)}},
		{name: "message size too large: the letter again without its body", p: sizeLimitedProducer{limit: 1000, tooLarge: kafka.ErrMsgSizeTooLarge},
			records: []string{string(m.Value), omitted}},
		{name: "record list too large: the same", p: sizeLimitedProducer{limit: 1000, tooLarge: kafka.ErrRecordListTooLarge},
			records: []string{string(m.Value), omitted}},
		{name: "even the letter without its body is refused", p: sizeLimitedProducer{limit: 10, tooLarge: kafka.ErrMsgSizeTooLarge},
			records: []string{string(m.Value), omitted}, err: "dead-letter codr.state.user[1]@5 to codr.svc.mongo.dlt: Broker: Message size too large", blocking: true},
		{name: "another refusal is returned, not stripped", p: sizeLimitedProducer{err: kafka.NewError(kafka.ErrUnknownTopicOrPart, "Broker: Unknown topic or partition", false)},
			records: []string{string(m.Value)}, err: "dead-letter codr.state.user[1]@5 to codr.svc.mongo.dlt: Broker: Unknown topic or partition", blocking: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &Publisher{P: &tc.p, Topic: "codr.svc.mongo.dlt", Now: func() time.Time { return at }}
			err := d.DeadLetter(context.Background(), m, cause)
			if got := fmt.Sprint(err); (err == nil) != (tc.err == "") || (err != nil && got != tc.err) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
			if len(tc.p.values) != len(tc.records) {
				t.Fatalf("%d letters offered, want %d", len(tc.p.values), len(tc.records))
			}
			for i, v := range tc.p.values {
				l, err := Parse(m.Key, v, nil)
				if err != nil {
					t.Fatal(err)
				}
				if string(l.Original.Value) != tc.records[i] || l.Topic != m.Topic || l.Partition != m.Partition || l.Offset != m.Offset {
					t.Errorf("letter %d holds %.120s (origin %s[%d]@%d), want %.120s", i, l.Original.Value, l.Topic, l.Partition, l.Offset, tc.records[i])
				}
			}
			if blocked, why := d.Blocked(); blocked != tc.blocking {
				t.Errorf("Blocked = %t %q, want %t", blocked, why, tc.blocking)
			}
		})
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

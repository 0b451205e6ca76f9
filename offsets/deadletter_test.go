package offsets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/record"
	"github.com/codr/statesync/test/testenv"
)

// A dead-letter topic that does not exist (deleted while running) makes the
// publish fail: that is reported once as blocked (log, gauge, callback for
// readiness), every failure is counted, and the first acknowledged publish
// after the topic is back clears it.
func TestADeadLetterTopicThatIsMissingIsReportedOnceAndClearedWhenItIsBack(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := "codr.svc.blocked-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".dlt"
	// librdkafka waits this long before it calls a topic missing (30 s by default).
	p, err := NewProducer(map[string]string{"bootstrap.servers": brokers, "topic.metadata.propagation.max.ms": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(time.Second)
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	var mu sync.Mutex
	var calls []string
	d := &DeadLetters{P: p, Topic: topic, Log: zap.New(core), Metrics: m, Blocked: func(blocked bool, reason string) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, fmt.Sprintf("%t %s", blocked, reason))
	}}
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
	if got := metricValue(t, reg, "statesync_dead_letter_blocked"); got != 1 {
		t.Errorf("statesync_dead_letter_blocked = %v, want 1", got)
	}
	if got := metricValue(t, reg, "statesync_dead_letter_failures_total"); got != 3 {
		t.Errorf("statesync_dead_letter_failures_total = %v, want 3", got)
	}
	mu.Lock()
	if len(calls) != 1 || !strings.HasPrefix(calls[0], "true ") || !strings.Contains(calls[0], topic) {
		t.Errorf("Blocked calls = %q, want one blocked call naming the topic", calls)
	}
	mu.Unlock()
	if n := logs.FilterMessageSnippet("statesync topics create " + topic).Len(); n != 1 {
		t.Errorf("%d log lines say how to create the topic, want 1 (not one per failed retry)", n)
	}

	testenv.CreateTopic(t, brokers, topic, 1, nil)
	testenv.Eventually(t, 60*time.Second, "the dead letter acknowledged once the topic exists", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return d.DeadLetter(ctx, msg, cause) == nil
	})
	if got := metricValue(t, reg, "statesync_dead_letter_blocked"); got != 0 {
		t.Errorf("statesync_dead_letter_blocked = %v after success, want 0", got)
	}
	mu.Lock()
	if len(calls) != 2 || calls[1] != "false " {
		t.Errorf("Blocked calls = %q, want blocked then cleared", calls)
	}
	mu.Unlock()
}

// metricValue sums the samples of a counter or gauge in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
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
	return v
}

package offsets

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/test/testenv"
)

func stateMsgs(k int) []testenv.Msg {
	var out []testenv.Msg
	for i := 0; i < k; i++ {
		out = append(out, testenv.Msg{Key: []byte(bson.NewObjectID().Hex()), Value: fmt.Appendf(nil, `{"payload":{"i":%d}}`, i)})
	}
	return out
}

// sawTopic reports whether the writer was ever given a record of topic.
func (w *memoryWriter) sawTopic(topic string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for tp := range w.written {
		if tp.Topic == topic {
			return true
		}
	}
	return false
}

// The dead-letter topic is never consumed, even when the subscription's
// regex matches it (here it is named like a state topic, as under the
// default regex ^codr\.state\..+): the group may assign its partitions, but
// they are never fetched or committed, through the rebalances of a second
// member joining and leaving.
func TestTheDeadLetterTopicIsNeverConsumedThoughTheRegexMatchesIt(t *testing.T) {
	brokers := testenv.Kafka(t)
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix := "codr.state.dltguard" + n
	group := "dltguard-" + n
	state, dlt := prefix+"-a", prefix+"-dlt"
	testenv.CreateTopic(t, brokers, state, 3, nil)
	testenv.CreateTopic(t, brokers, dlt, 2, nil)
	testenv.Produce(t, brokers, state, stateMsgs(300))
	testenv.Produce(t, brokers, dlt, stateMsgs(50)) // would be written (they decode) if consumed

	w := newMemoryWriter()
	member := func(name string) *Consumer {
		c, err := New(Options{
			Kafka: map[string]string{"bootstrap.servers": brokers}, GroupID: group,
			Subscription:    []string{"^" + strings.ReplaceAll(prefix, ".", `\.`) + "-.*"},
			Exclude:         []string{dlt},
			RefreshInterval: time.Second,
			Batch:           batch.Options{MaxDocs: 100, MaxWait: 50 * time.Millisecond}, Concurrency: 2,
			ShutdownGrace: 10 * time.Second, Log: zaptest.NewLogger(t).Named(name),
		}, w)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	committedAll := func() bool {
		ends := testenv.EndOffsets(t, brokers, state)
		got := testenv.Committed(t, brokers, group, state)
		for p, end := range ends {
			if got[p] != end {
				return false
			}
		}
		return true
	}
	first := member("first")
	stopFirst := run(t, first)
	testenv.Eventually(t, 60*time.Second, "the state topic committed to its end", committedAll)
	if n := first.Status().Assigned.Load(); n != 3 {
		t.Errorf("%d partitions assigned, want the state topic's 3 (none of the dead-letter topic's)", n)
	}

	second := member("second")
	stopSecond := run(t, second)
	testenv.Eventually(t, 60*time.Second, "the second member to join", second.Status().Joined.Load)
	testenv.Produce(t, brokers, state, stateMsgs(200))
	testenv.Produce(t, brokers, dlt, stateMsgs(50))
	testenv.Eventually(t, 60*time.Second, "the new records committed", committedAll)
	if err := stopFirst(); err != nil {
		t.Errorf("first Run: %v", err)
	}
	testenv.Produce(t, brokers, state, stateMsgs(100))
	testenv.Eventually(t, 60*time.Second, "the records after the first left committed", committedAll)
	time.Sleep(2 * time.Second) // fetches and auto-commits of anything assigned
	if err := stopSecond(); err != nil {
		t.Errorf("second Run: %v", err)
	}
	if w.sawTopic(dlt) {
		t.Error("records of the dead-letter topic were consumed")
	}
	for p, off := range testenv.Committed(t, brokers, group, dlt) {
		if off >= 0 {
			t.Errorf("offset %d committed for the dead-letter topic's partition %d", off, p)
		}
	}
}

// A member that gets no partition (more members than partitions) has
// joined the group all the same; one whose brokers never answer has not.
func TestJoinedMeansAnAssignmentWasReceivedEvenAnEmptyOne(t *testing.T) {
	f := newFixture(t, 1, 10)
	w := newMemoryWriter()
	a, b := f.consumer(t, w), f.consumer(t, w)
	stopA := run(t, a)
	testenv.Eventually(t, 60*time.Second, "the first member to join", a.Status().Joined.Load)
	stopB := run(t, b)
	testenv.Eventually(t, 60*time.Second, "the second member to join", b.Status().Joined.Load)
	if got := a.Status().Assigned.Load() + b.Status().Assigned.Load(); got != 1 {
		t.Errorf("%d partitions assigned in all, want 1", got)
	}
	for _, stop := range []func() error{stopB, stopA} {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	}

	c, err := New(Options{Kafka: map[string]string{"bootstrap.servers": "127.0.0.1:1"}, GroupID: f.group, Subscription: []string{f.topic},
		ShutdownGrace: 2 * time.Second, Log: zaptest.NewLogger(t)}, w)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	time.Sleep(3 * time.Second)
	if c.Status().Joined.Load() {
		t.Error("joined a group on brokers that do not exist")
	}
	_ = stop() // the close cannot reach a broker: bounded by the grace
}

func TestCheckTopicTellsAMissingTopicFromUnreachableBrokers(t *testing.T) {
	brokers := testenv.Kafka(t)
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	exists := "codr.svc.check-" + n + ".dlt"
	testenv.CreateTopic(t, brokers, exists, 1, nil)
	check := func(brokers, topic string) error {
		c, err := New(Options{Kafka: map[string]string{"bootstrap.servers": brokers}, GroupID: "check-" + n, Subscription: []string{topic}}, newMemoryWriter())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(5 * time.Second)
		return c.CheckTopic(topic, 3*time.Second)
	}
	if err := check(brokers, exists); err != nil {
		t.Errorf("existing topic: %v", err)
	}
	var missing *MissingTopicError
	if err := check(brokers, "codr.svc.missing-"+n+".dlt"); !errors.As(err, &missing) {
		t.Errorf("missing topic: err = %v, want a MissingTopicError", err)
	}
	var unreachable *UnreachableError
	err := check("127.0.0.1:1", exists)
	if !errors.As(err, &unreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable brokers: err = %v, want an UnreachableError naming them", err)
	}
	// The check never creates the topic, even where the broker would.
	if err := check(brokers, "codr.svc.missing-"+n+".dlt"); !errors.As(err, &missing) {
		t.Errorf("missing topic, asked again: err = %v", err)
	}
}

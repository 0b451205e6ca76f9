package offsets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/codr/statesync/test/testenv"
)

// unreachableProps: librdkafka creates the client without a broker; a
// produce fails once message.timeout.ms has passed.
var unreachableProps = map[string]string{"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": "200"}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOnDemandProducerClosesWhenIdleAndReopensForTheNextProduce(t *testing.T) {
	o := &OnDemandProducer{Props: unreachableProps, Role: "dlt-test", Logging: Logging{Log: zap.NewNop()}, IdleClose: 100 * time.Millisecond}
	defer o.Close(time.Second)
	if o.Opened() {
		t.Fatal("opened before Start")
	}
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	if !o.Opened() {
		t.Fatal("Start did not create the producer")
	}
	waitFor(t, "closed after IdleClose without a produce", func() bool { return !o.Opened() })

	err := o.Produce(context.Background(), "t", nil, []byte("v"), nil)
	if err == nil {
		t.Fatal("a produce to no broker succeeded")
	}
	if errors.Is(err, ErrProducerClosed) {
		t.Fatalf("the produce after an idle close did not make a new producer: %v", err)
	}
	if !o.Opened() {
		t.Fatal("the produce did not leave its producer open for IdleClose")
	}
	waitFor(t, "closed again after IdleClose", func() bool { return !o.Opened() })
}

func TestOnDemandProducerStaysOpenWhileProducing(t *testing.T) {
	o := &OnDemandProducer{Props: unreachableProps, Role: "dlt-test", Logging: Logging{Log: zap.NewNop()}, IdleClose: 50 * time.Millisecond}
	defer o.Close(time.Second)
	if err := o.Start(); err != nil { // arms the idle close: it fires during the produce
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		// message.timeout.ms is 200 ms: this produce outlives IdleClose 4 times
		done <- o.Produce(ctx, "t", nil, []byte("v"), nil)
	}()
	waitFor(t, "the produce started", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.users == 1 })
	time.Sleep(150 * time.Millisecond)
	if !o.Opened() {
		t.Fatal("closed while a produce was running")
	}
	cancel()
	<-done
}

func TestOnDemandProducerRefusesAfterClose(t *testing.T) {
	o := &OnDemandProducer{Props: unreachableProps, Role: "dlt-test", Logging: Logging{Log: zap.NewNop()}, IdleClose: time.Minute}
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	o.Close(time.Second)
	if o.Opened() {
		t.Fatal("open after Close")
	}
	if err := o.Produce(context.Background(), "t", nil, []byte("v"), nil); !errors.Is(err, ErrProducerClosed) {
		t.Fatalf("produce after Close: %v, want ErrProducerClosed", err)
	}
}

func TestOnDemandProducerStartFailsOnAWrongSetting(t *testing.T) {
	o := &OnDemandProducer{Props: map[string]string{"bootstrap.servers": "127.0.0.1:1", "linger.ms": "soon"}, Role: "dlt-test", Logging: Logging{Log: zap.NewNop()}}
	if err := o.Start(); err == nil {
		o.Close(time.Second)
		t.Fatal("Start accepted linger.ms=soon")
	}
}

// Many produces racing the idle close: each either gets a producer or
// fails on its own (no broker); none panics on a closed producer (-race).
func TestOnDemandProducerUnderRacingIdleCloses(t *testing.T) {
	o := &OnDemandProducer{Props: unreachableProps, Role: "dlt-test", Logging: Logging{Log: zap.NewNop()}, IdleClose: time.Millisecond}
	defer o.Close(time.Second)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(g+i)*10*time.Millisecond)
				err := o.Produce(ctx, "t", nil, []byte("v"), nil)
				cancel()
				if err == nil || errors.Is(err, ErrProducerClosed) {
					t.Errorf("produce %d/%d: %v", g, i, err)
				}
				time.Sleep(time.Duration(i) * time.Millisecond)
			}
		})
	}
	wg.Wait()
}

// Against the broker: a letter produced after an idle close is acknowledged
// by the producer made again, and both letters are on the topic.
func TestOnDemandProducerPublishesAfterAnIdleClose(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := fmt.Sprintf("codr.svc.ondemand-%d.dlt", time.Now().UnixNano())
	testenv.CreateTopic(t, brokers, topic, 1, nil)
	defer testenv.DeleteTopics(t, brokers, topic)
	o := &OnDemandProducer{Props: map[string]string{"bootstrap.servers": brokers}, Role: "dlt-test",
		Logging: Logging{Log: zap.NewNop()}, IdleClose: 200 * time.Millisecond}
	defer o.Close(5 * time.Second)
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := o.Produce(ctx, topic, []byte("k"), []byte("before"), nil); err != nil {
		t.Fatalf("first letter: %v", err)
	}
	waitFor(t, "closed after IdleClose", func() bool { return !o.Opened() })
	if err := o.Produce(ctx, topic, []byte("k"), []byte("after"), nil); err != nil {
		t.Fatalf("letter after the idle close: %v", err)
	}
	var got []string
	for _, m := range testenv.ReadAll(t, brokers, topic) {
		got = append(got, string(m.Value))
	}
	if strings.Join(got, ",") != "before,after" {
		t.Fatalf("topic holds %q, want [before after]", got)
	}
}

package offsets

// OnDemandProducer's closes and re-creations, from an attack review of it.
// No broker: librdkafka is pointed at a closed port.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// kafkaPollers counts the live confluent-kafka-go producer poller
// goroutines: one per kafka.Producer not yet closed.
func kafkaPollers() int {
	buf := make([]byte, 1<<22)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "confluent-kafka-go/v2/kafka.poller(")
}

// rdkThreads counts librdkafka's threads (named rdk:...) by their comm.
func rdkThreads() (rdk, other int) {
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		b, _ := os.ReadFile("/proc/self/task/" + e.Name() + "/comm")
		if strings.HasPrefix(string(b), "rdk:") {
			rdk++
		} else {
			other++
		}
	}
	return rdk, other
}

func osThreads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// Repeated idle closes and re-creations: goroutines and OS threads
// (librdkafka's) come back to where they were.
func TestOnDemandProducerIdleCloseCyclesLeakNothing(t *testing.T) {
	time.Sleep(200 * time.Millisecond)
	g0, th0 := runtime.NumGoroutine(), osThreads(t)
	o := &OnDemandProducer{Props: unreachableProps, Role: "dlt-test", Logging: Logging{Log: zap.NewNop()}, IdleClose: 20 * time.Millisecond}
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	maxPollers := 0
	for i := 0; i < 15; i++ {
		waitFor(t, "idle close", func() bool { return !o.Opened() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_ = o.Produce(ctx, "t", nil, []byte("v"), nil) // leaves a queued message behind (ctx ends first)
		cancel()
		maxPollers = max(maxPollers, kafkaPollers())
	}
	o.Close(time.Second)
	waitFor(t, "every producer closed", func() bool { return kafkaPollers() == 0 })
	time.Sleep(300 * time.Millisecond)
	g1, th1 := runtime.NumGoroutine(), osThreads(t)
	rdk, other := rdkThreads()
	t.Logf("goroutines %d -> %d, OS threads %d -> %d (librdkafka's: %d, Go's: %d), at most %d producers alive at once", g0, g1, th0, th1, rdk, other, maxPollers)
	if rdk > 0 {
		t.Errorf("librdkafka threads left: %d", rdk)
	}
	if g1 > g0+2 {
		t.Errorf("goroutines leaked: %d -> %d", g0, g1)
	}
	// Go's own Ms are never given back: each blocking cgo call of each
	// producer alive at once (poller, log poller, Flush) holds one.
	if th1 > th0+4 {
		t.Logf("OS threads grew: %d -> %d (Go Ms kept after blocking cgo calls)", th0, th1)
	}
}

// Close while closeIdle is closing the previous producer (its flush waits
// for a message a cancelled Produce left queued): Close ends that close
// and returns after it, not while librdkafka is still being torn down (it
// returned at once, and the idle close went on for its own 5 s).
func TestOnDemandProducerCloseEndsAnIdleCloseUnderWay(t *testing.T) {
	props := map[string]string{"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": "3000"}
	o := &OnDemandProducer{Props: props, Role: "dlt-test", Logging: Logging{Log: zap.NewNop()}, IdleClose: 50 * time.Millisecond}
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	err := o.Produce(ctx, "t", nil, []byte("v"), nil)
	cancel()
	t.Logf("produce: %v", err)
	waitFor(t, "the idle close took the producer", func() bool { return !o.Opened() })
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	o.Close(100 * time.Millisecond)
	took := time.Since(start)
	alive := kafkaPollers()
	t.Logf("Close(100ms) returned after %s with %d producer(s) still alive", took.Round(time.Millisecond), alive)
	if alive > 0 {
		waitFor(t, "the idle close finished", func() bool { return kafkaPollers() == 0 })
		t.Errorf("Close returned while the idle close was still closing a producer; it ended %s after Close returned",
			time.Since(start).Round(time.Millisecond))
	}
}

// Start checks the settings once; a re-creation reads them again, files
// included: a CA file gone after start fails the first dead letter after an
// idle close with an error that says so (a RemakeError, which the
// Publisher does not report as a missing topic).
func TestOnDemandProducerSaysWhyItCannotBeMadeAgain(t *testing.T) {
	ca := "/etc/ssl/certs/ca-certificates.crt"
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Skip("no CA bundle to copy")
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	props := map[string]string{"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": "200",
		"security.protocol": "ssl", "ssl.ca.location": file}
	o := &OnDemandProducer{Props: props, Role: "dlt-producer", Logging: Logging{Log: zap.NewNop()}, IdleClose: 20 * time.Millisecond}
	defer o.Close(time.Second)
	if err := o.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitFor(t, "idle close", func() bool { return !o.Opened() })
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	err = o.Produce(context.Background(), "t", nil, []byte("v"), nil)
	var remake *RemakeError
	if !errors.As(err, &remake) {
		t.Fatalf("produce after the idle close, CA file gone: %v, want a RemakeError", err)
	}
	for _, want := range []string{"make the dlt-producer again after 20ms without use", "accepted at start", "ssl.ca.location"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

// librdkafka lines while a producer is closed (the log queue is destroyed
// before rd_kafka_destroy): do any reach the process's stderr?
func TestOnDemandProducerIdleClosesWriteNothingOnStderr(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Dup3(int(w.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	out := make(chan string)
	go func() {
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				out <- b.String()
				return
			}
		}
	}()
	o := &OnDemandProducer{Props: unreachableProps, Role: "dlt-test", Logging: Logging{Log: zap.NewNop()}, IdleClose: 20 * time.Millisecond}
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		waitFor(t, "idle close", func() bool { return !o.Opened() })
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_ = o.Produce(ctx, "t", nil, []byte("v"), nil)
		cancel()
	}
	o.Close(time.Second)
	waitFor(t, "closed", func() bool { return kafkaPollers() == 0 })
	syscall.Dup3(saved, 2, 0)
	w.Close()
	got := <-out
	if strings.TrimSpace(got) != "" {
		t.Errorf("stderr during idle closes:\n%s", got)
	}
}

// Each re-creation is a new librdkafka client with a new Watch, sharing one
// limiter: what librdkafka says at creation (here: a consumer-only
// passthrough property, which KafkaConfig shares with the producer) is
// logged once a minute at most, not at every re-creation.
func TestOnDemandProducerLogsCreationWarningsOnce(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	props := map[string]string{"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": "200", "fetch.wait.max.ms": "100"}
	o := &OnDemandProducer{Props: props, Role: "dlt-test", Logging: Logging{Log: zap.New(core)}, IdleClose: 20 * time.Millisecond}
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		waitFor(t, "idle close", func() bool { return !o.Opened() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_ = o.Produce(ctx, "t", nil, []byte("v"), nil)
		cancel()
	}
	o.Close(time.Second)
	waitFor(t, "closed", func() bool { return kafkaPollers() == 0 })
	n := 0
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "fetch.wait.max.ms") {
			n++
		}
	}
	t.Logf("%d lines about the consumer property over 4 producer creations (first: %v)", n, firstMessage(logs.All()))
	if n > 1 {
		t.Errorf("the creation warning was logged %d times, once per re-creation", n)
	}
}

func firstMessage(es []observer.LoggedEntry) string {
	for _, e := range es {
		return e.Level.String() + " " + e.Message
	}
	return ""
}

package offsets

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/codr/statesync/record"
)

// OnDemandProducer is a Producer that exists only while it is used: Start
// creates it (so a wrong setting fails at start, not at the first dead
// letter), it is closed once no Produce has run for IdleClose, and the next
// Produce creates it again. A healthy sidecar never dead-letters, and an idle librdkafka
// producer is not free: confluent-kafka-go polls it from two goroutines
// every 100 ms (events and logs), and each return from those cgo calls wakes
// the Go runtime (the idle cost of `statesync run` fell from ~6 to ~3.5 ms
// of CPU per second without it). Safe for concurrent use.
type OnDemandProducer struct {
	Props     map[string]string // librdkafka properties, as NewProducer takes them
	Role      string
	Logging   Logging
	IdleClose time.Duration // 0: kept until Close

	mu     sync.Mutex
	p      *Producer
	users  int // Produce calls running
	last   time.Time
	timer  *time.Timer
	closed bool
}

// ErrProducerClosed: Produce after Close.
var ErrProducerClosed = errors.New("producer closed")

// Start creates the producer now; IdleClose later it is closed if unused.
func (o *OnDemandProducer) Start() error {
	if _, err := o.acquire(); err != nil {
		return err
	}
	o.release()
	return nil
}

// Produce sends one message and waits for its acknowledgement, creating the
// producer first if there is none.
func (o *OnDemandProducer) Produce(ctx context.Context, topic string, key, value []byte, headers []record.Header) error {
	p, err := o.acquire()
	if err != nil {
		return err
	}
	defer o.release()
	return p.Produce(ctx, topic, key, value, headers)
}

func (o *OnDemandProducer) acquire() (*Producer, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, ErrProducerClosed
	}
	if o.p == nil {
		p, err := NewProducer(o.Props, o.Role, o.Logging)
		if err != nil {
			return nil, err
		}
		o.p = p
	}
	o.users++
	return o.p, nil
}

func (o *OnDemandProducer) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.users--
	o.last = time.Now()
	if o.users > 0 || o.IdleClose <= 0 || o.closed {
		return
	}
	if o.timer == nil {
		o.timer = time.AfterFunc(o.IdleClose, o.closeIdle)
	} else {
		o.timer.Reset(o.IdleClose)
	}
}

// closeIdle closes the producer if nothing used it for IdleClose. The close
// (a flush, then librdkafka's teardown) runs outside the lock: a Produce
// arriving meanwhile creates a new producer instead of waiting.
func (o *OnDemandProducer) closeIdle() {
	o.mu.Lock()
	p := o.p
	if p == nil || o.users > 0 || o.closed || time.Since(o.last) < o.IdleClose {
		o.mu.Unlock()
		return
	}
	o.p = nil
	o.mu.Unlock()
	p.Close(5 * time.Second)
}

// Opened reports whether a producer exists now.
func (o *OnDemandProducer) Opened() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.p != nil
}

// Close flushes for at most timeout and closes the producer, if there is
// one; Produce fails afterwards.
func (o *OnDemandProducer) Close(timeout time.Duration) {
	o.mu.Lock()
	o.closed = true
	if o.timer != nil {
		o.timer.Stop()
	}
	p := o.p
	o.p = nil
	o.mu.Unlock()
	if p != nil {
		p.Close(timeout)
	}
}

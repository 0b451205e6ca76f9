package offsets

import (
	"context"
	"errors"
	"fmt"
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

	mu      sync.Mutex
	p       *Producer
	made    bool // a producer was made once: the next is a re-creation
	users   int  // Produce calls running
	last    time.Time
	timer   *time.Timer
	closed  bool
	closing sync.WaitGroup // idle closes under way: Close waits for them
	stop    chan struct{}  // closed by Close: an idle close under way stops flushing
	limit   *limiter       // one for every producer made: what librdkafka says at creation is logged once a minute at most
}

// RemakeError: the producer, closed after IdleClose without use, could not
// be made again although its settings were accepted at start: a file a
// setting names (a CA, a certificate, a key) changed or went away since.
type RemakeError struct {
	Role string
	Idle time.Duration
	Err  error
}

func (e *RemakeError) Error() string {
	return fmt.Sprintf("make the %s again after %s without use (its settings were accepted at start: check the files they name, such as ssl.ca.location): %v",
		e.Role, e.Idle, e.Err)
}

func (e *RemakeError) Unwrap() error { return e.Err }

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
		if o.limit == nil {
			o.limit = &limiter{}
		}
		l := o.Logging
		l.limit = o.limit
		p, err := NewProducer(o.Props, o.Role, l)
		if err != nil {
			if o.made {
				return nil, &RemakeError{Role: o.Role, Idle: o.IdleClose, Err: err}
			}
			return nil, err
		}
		o.p, o.made = p, true
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
	o.closing.Add(1)
	stop := o.stopChan()
	o.mu.Unlock()
	defer o.closing.Done()
	// What is still queued belongs to a Produce whose ctx ended (its batch
	// is read again): flushed for up to 5 s, or until Close.
	for deadline := time.Now().Add(5 * time.Second); p.p.Len() > 0 && time.Now().Before(deadline); {
		select {
		case <-stop:
			p.Close(0)
			return
		default:
		}
		p.p.Flush(100)
	}
	p.Close(0)
}

// stopChan is o.stop, made once; o.mu is held.
func (o *OnDemandProducer) stopChan() chan struct{} {
	if o.stop == nil {
		o.stop = make(chan struct{})
	}
	return o.stop
}

// Opened reports whether a producer exists now.
func (o *OnDemandProducer) Opened() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.p != nil
}

// Close flushes for at most timeout and closes the producer, if there is
// one, and ends an idle close under way (waiting for it at most a second
// past timeout); Produce fails afterwards.
func (o *OnDemandProducer) Close(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	o.mu.Lock()
	if !o.closed {
		close(o.stopChan())
	}
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
	idle := make(chan struct{})
	go func() { o.closing.Wait(); close(idle) }()
	select { // an idle close stops flushing within 100 ms; its teardown is librdkafka's
	case <-idle:
	case <-time.After(time.Until(deadline) + time.Second):
	}
}

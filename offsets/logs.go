package offsets

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/codr/statesync/statelog"
)

// Logging is where a librdkafka client's log lines and client-level errors
// go: through zap (never librdkafka's own lines on stderr), and its
// connection failures into Brokers, which logs the brokers' reachability
// when it changes instead of once per reconnect attempt.
type Logging struct {
	Log *zap.Logger
	// Brokers: shared by every client of the process. nil: connection
	// failures are logged like any other line, once a minute at most.
	Brokers *statelog.Condition

	limit *limiter // shared by the Watches of clients made one after another; nil: each its own
}

// BrokersCondition is the reachability of the brokers, for Logging.Brokers.
func BrokersCondition(log *zap.Logger, brokers string) *statelog.Condition {
	return &statelog.Condition{Log: log,
		Failing:   "Kafka brokers unreachable (" + brokers + "); retrying, nothing is skipped",
		Recovered: "Kafka brokers reachable again (" + brokers + ")",
		Settle:    settle,
		Fields:    []zap.Field{zap.String("brokers", brokers)}}
}

func (l Logging) log() *zap.Logger {
	if l.Log == nil {
		return zap.NewNop()
	}
	return l.Log
}

// probeEvery: while a connection failure is unconfirmed or the brokers are
// down, how often they are asked for metadata. settle: how long they must
// answer, with no connection failure, to be reachable again (a starting
// broker answers metadata before its group coordinator takes connections).
// probeTimeout bounds one probe (and so how long Stop may wait for one).
var (
	probeEvery   = 2 * time.Second
	probeTimeout = time.Second
	settle       = 5 * time.Second
)

// Prepare sets what every client needs: logs to the Go channel, a
// client.id saying what the client is (after the operator's own, if any),
// and no line for each idle connection the broker closes.
func Prepare(cm kafka.ConfigMap, role string) {
	cm["go.logs.channel.enable"] = true
	id := "statesync"
	if v, ok := cm["client.id"].(string); ok && v != "" {
		id = v
	}
	cm["client.id"] = id + "-" + role
	setDefault(cm, "log.connection.close", "false")
}

// metadataClient is what the probe asks: the consumer, producer or admin
// client the lines come from.
type metadataClient interface {
	GetMetadata(topic *string, allTopics bool, timeoutMs int) (*kafka.Metadata, error)
}

// Watch forwards one client's log lines until the client is closed (its
// Logs channel closes), and handles its client-level errors (Event).
type Watch struct {
	l      Logging
	role   string
	client metadataClient
	limit  *limiter

	mu      sync.Mutex
	probing bool
	stopped bool
	probes  sync.WaitGroup
	stop    chan struct{}
}

// Watch starts forwarding the log lines of a client created with Prepare'd
// properties; client answers the probes of the brokers' condition. Call
// Stop before closing the client.
func (l Logging) Watch(role string, client metadataClient, logs chan kafka.LogEvent) *Watch {
	w := &Watch{l: l, role: role, client: client, stop: make(chan struct{}), limit: l.limit}
	if w.limit == nil {
		w.limit = &limiter{}
	}
	go func() {
		for e := range logs {
			w.line(e)
		}
	}()
	return w
}

// Stop ends the probes and waits for one in flight (at most probeTimeout):
// librdkafka must not be asked for metadata by a client being closed.
func (w *Watch) Stop() {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.stop)
	}
	w.mu.Unlock()
	w.probes.Wait()
}

// syslog levels librdkafka uses
func zapLevel(level int) zapcore.Level {
	switch {
	case level <= 3:
		return zapcore.ErrorLevel
	case level == 4:
		return zapcore.WarnLevel
	case level <= 6:
		return zapcore.InfoLevel
	}
	return zapcore.DebugLevel
}

func (w *Watch) line(e kafka.LogEvent) {
	fields := []zap.Field{zap.String("client", w.role), zap.String("tag", e.Tag), zap.Int("syslog_level", e.Level)}
	if refused(w.log(), w.role, e.Message) { // credentials or TLS, not reachability: see secure.go
		return
	}
	if connectionLine(e) {
		w.log().Debug("librdkafka: "+e.Message, fields...)
		w.suspect(errors.New(e.Message))
		return
	}
	lvl := zapLevel(e.Level)
	if n, ok := w.limit.allow(e.Tag+"|"+shape(e.Message), time.Now()); ok {
		if n > 0 {
			fields = append(fields, zap.Int("similar_suppressed", n))
		}
		if ce := w.log().Check(lvl, "librdkafka: "+e.Message); ce != nil {
			ce.Write(fields...)
		}
	}
}

func (w *Watch) log() *zap.Logger { return w.l.log() }

// Event handles a client-level error (not tied to a message): connection
// failures go to the brokers' condition, the rest is logged once a minute
// at most per kind. It reports whether the error is fatal.
func (w *Watch) Event(err kafka.Error) bool {
	if err.IsFatal() {
		w.log().Error("Kafka client fatal error", zap.String("client", w.role), zap.String("code", err.Code().String()), zap.Error(err))
		return true
	}
	if refused(w.log(), w.role, err.Error()) {
		return false
	}
	if connectionError(err) {
		w.suspect(err)
		return false
	}
	if n, ok := w.limit.allow("error|"+err.Code().String(), time.Now()); ok {
		lvl := zapcore.WarnLevel
		if err.Code() == kafka.ErrAuthentication || err.Code() == kafka.ErrSaslAuthenticationFailed || err.Code() == kafka.ErrTopicAuthorizationFailed ||
			err.Code() == kafka.ErrGroupAuthorizationFailed || err.Code() == kafka.ErrClusterAuthorizationFailed {
			lvl = zapcore.ErrorLevel
		}
		if ce := w.log().Check(lvl, "Kafka client error"); ce != nil {
			ce.Write(zap.String("client", w.role), zap.String("code", err.Code().String()), zap.Int("similar_suppressed", n), zap.Error(err))
		}
	}
	return false
}

// suspect starts asking the brokers for metadata: a connection line alone
// may be one broker of several, or a blip. The condition changes on the
// answer: failed while no broker answers, ok again once one does.
func (w *Watch) suspect(err error) {
	if w.l.Brokers == nil {
		if n, ok := w.limit.allow("connection", time.Now()); ok {
			w.log().Warn("Kafka connection failed", zap.String("client", w.role), zap.Int("similar_suppressed", n), zap.Error(err))
		}
		return
	}
	// Only the probe's answers change the condition: an idle client's
	// connection lines (librdkafka says "1/1 brokers are down" when it
	// closes an idle producer's only connection) say nothing of the others.
	w.probe(err)
}

// probe asks the brokers for metadata until they answer (and, once
// failed, until the condition has settled), unless a probe already runs.
func (w *Watch) probe(cause error) {
	w.mu.Lock()
	if w.l.Brokers == nil || w.probing || w.stopped {
		w.mu.Unlock()
		return
	}
	w.probing = true
	w.probes.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.probes.Done()
		defer func() { w.mu.Lock(); w.probing = false; w.mu.Unlock() }()
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			_, perr := w.client.GetMetadata(nil, false, int(probeTimeout.Milliseconds()))
			select {
			case <-w.stop:
				return // being closed: its error says nothing of the brokers
			default:
			}
			if perr == nil {
				w.l.Brokers.OK()
				if !w.l.Brokers.IsFailed() {
					return
				}
			} else if _, ok := Refused(); !ok { // a refusal was logged as such
				fields := []zap.Field{zap.String("client", w.role)}
				if cause != nil {
					fields = append(fields, zap.String("client_error", cause.Error()))
				}
				w.l.Brokers.Failed(perr, fields...)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(probeEvery):
			}
		}
	}()
}

// Recheck probes the brokers when their condition is failed: whoever
// learned they answer once (a start check) leaves the settling to this.
func (w *Watch) Recheck() {
	if w.l.Brokers != nil && w.l.Brokers.IsFailed() {
		w.probe(nil)
	}
}

// connectionLine: a log line about a connection to a broker failing or
// closing (FAIL, and the lines that only repeat it).
func connectionLine(e kafka.LogEvent) bool {
	switch e.Tag {
	case "FAIL", "ERROR", "CONNECT", "BROKERFAIL":
		return true
	}
	m := strings.ToLower(e.Message)
	for _, s := range []string{"transport failure", "connection refused", "all broker connections are down", "brokers are down",
		"disconnected", "failed to resolve", "timed out", "connect to ", "coordinator not available", "no route to host"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// connectionError: a client error that means brokers do not answer.
func connectionError(err kafka.Error) bool {
	switch err.Code() {
	case kafka.ErrAllBrokersDown, kafka.ErrTransport, kafka.ErrResolve, kafka.ErrTimedOut, kafka.ErrTimedOutQueue,
		kafka.ErrNetworkException, kafka.ErrRequestTimedOut, kafka.ErrCoordinatorNotAvailable, kafka.ErrNotCoordinator,
		kafka.ErrLeaderNotAvailable, kafka.ErrNotLeaderForPartition, kafka.ErrBrokerNotAvailable, kafka.ErrWaitCoord:
		return true
	}
	return false
}

// IsConnectionError reports whether err (from a commit, a produce, a
// metadata request) means the brokers did not answer.
func IsConnectionError(err error) bool {
	var ke kafka.Error
	return errors.As(err, &ke) && connectionError(ke)
}

// shape is a message with its numbers removed: lines that differ only in
// counts and offsets are one kind for the limiter.
func shape(msg string) string {
	var b strings.Builder
	for _, r := range msg {
		if r < '0' || r > '9' {
			b.WriteRune(r)
		}
	}
	if b.Len() > 120 {
		return b.String()[:120]
	}
	return b.String()
}

// limitEvery: a kind of line is logged at most once per limitEvery; the
// next one says how many were suppressed.
var limitEvery = time.Minute

type limiter struct {
	mu   sync.Mutex
	seen map[string]*seenLine
}

type seenLine struct {
	at         time.Time
	suppressed int
}

func (l *limiter) allow(key string, now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil || len(l.seen) > 1000 {
		l.seen = map[string]*seenLine{}
	}
	s := l.seen[key]
	if s == nil {
		l.seen[key] = &seenLine{at: now}
		return 0, true
	}
	if now.Sub(s.at) < limitEvery {
		s.suppressed++
		return 0, false
	}
	n := s.suppressed
	s.at, s.suppressed = now, 0
	return n, true
}

// CheckProperties has librdkafka itself check the properties: it creates
// a producer from them (without brokers, so nothing connects) and closes
// it. The error names the property librdkafka refused.
func CheckProperties(props map[string]string) error {
	cm := kafka.ConfigMap{}
	for k, v := range props {
		if k != "bootstrap.servers" {
			cm[k] = v
		}
	}
	cm["go.logs.channel.enable"] = true
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return err
	}
	go func() {
		for range p.Logs() { // "no bootstrap.servers": expected here
		}
	}()
	p.Close()
	return nil
}

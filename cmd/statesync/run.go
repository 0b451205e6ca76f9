package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/config"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/sink"
	"github.com/codr/statesync/statelog"
)

func cmdRun(ctx context.Context, e *env) error {
	if err := e.load(needAll); err != nil {
		return err
	}
	_, err := syncTopics(ctx, e, false)
	return err
}

// newLogger writes JSON lines to w, or console lines when the format says
// so (auto: on a terminal); colours only on a terminal, never into a file.
func newLogger(cfg config.Config, w io.Writer, terminal bool) (*zap.Logger, error) {
	lvl := zapcore.InfoLevel
	if cfg.LogLevel != "" {
		l, err := zapcore.ParseLevel(cfg.LogLevel)
		if err != nil {
			return nil, err
		}
		lvl = l
	}
	var enc zapcore.Encoder
	if cfg.LogFormat == "console" || ((cfg.LogFormat == "auto" || cfg.LogFormat == "") && terminal) {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		if terminal {
			ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.TimeKey = "ts"
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		ec.EncodeDuration = zapcore.StringDurationEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	ws := zapcore.Lock(zapcore.AddSync(w))
	return zap.New(zapcore.NewCore(enc, ws, lvl), zap.AddCaller(), zap.AddStacktrace(zapcore.DPanicLevel)), nil
}

// connectSink opens the MongoDB sink the configuration describes.
func connectSink(cfg config.Config) (*sink.Sink, error) {
	syncField := ""
	if cfg.SyncMetadata {
		syncField = cfg.SyncField
	}
	return sink.Connect(cfg.MongoURI, sink.Options{
		Database: cfg.MongoDatabase, WriteConcern: cfg.MongoWriteConcern, Timeout: cfg.MongoTimeout,
		SyncField: syncField, StaleGuard: cfg.StaleGuard, MaxBulkOps: cfg.MongoMaxBulkOps, BulkParallel: cfg.MongoBulkParallel,
	})
}

type writerFunc func(ctx context.Context, b *batch.Batch) error

func (f writerFunc) Apply(ctx context.Context, b *batch.Batch) error { return f(ctx, b) }

// brokerWait bounds the start check's wait for the brokers (and MongoDB)
// in the commands that end; run asks every runAsk (so SIGTERM is noticed)
// and logs when the brokers' reachability changes.
var (
	brokerWait = 10 * time.Second
	runAsk     = 2 * time.Second
)

// mongoAddresses are the hosts of a MongoDB URI, without credentials or
// options: what an error may name.
func mongoAddresses(uri string) string {
	cs, err := connstring.Parse(uri)
	if err != nil || len(cs.Hosts) == 0 {
		return "(see " + config.Prefix + "MONGO_URI)"
	}
	return strings.Join(cs.Hosts, ",")
}

// checkMongo is import's start check: MongoDB answers within brokerWait,
// else exit 5 naming its hosts.
func checkMongo(ctx context.Context, db *sink.Sink, cfg config.Config, hosts string) error {
	pctx, cancel := context.WithTimeout(ctx, brokerWait)
	defer cancel()
	err := db.Ping(pctx)
	if err == nil || ctx.Err() != nil {
		return nil // stopped: the caller notices
	}
	if msg, refused := mongoRefusal(err, cfg, hosts); refused { // credentials or TLS: see secure.go
		return &exitError{code: exitUnreachable, msg: msg}
	}
	return &exitError{code: exitUnreachable, msg: cfg.Redact(fmt.Sprintf(
		"MongoDB %s (%sMONGO_URI) is unreachable: no answer within %s (%v); check the address and that it is up and reachable from here",
		hosts, config.Prefix, brokerWait, err))}
}

// unreachable turns an *offsets.UnreachableError into exit 5, naming the
// brokers and their variable.
func unreachable(err error) error {
	var u *offsets.UnreachableError
	if !errors.As(err, &u) {
		return err
	}
	if msg, refused := kafkaRefused(); refused { // credentials or TLS: see secure.go
		return &exitError{code: exitUnreachable, msg: msg}
	}
	return &exitError{code: exitUnreachable, msg: fmt.Sprintf(
		"Kafka brokers %s (%sKAFKA_BROKERS) are unreachable: no answer within %s (%v); check the address and that they are up and reachable from here",
		u.Brokers, config.Prefix, u.Waited, u.Err)}
}

// askSlice bounds one request of ask.
const askSlice = time.Second

// ask calls f, which asks the brokers and waits at most the timeout it is
// given, in slices of at most askSlice until they answer, f fails otherwise
// than unreachable, total has passed (its last error), or ctx ends
// (errStopped): a signal is noticed within askSlice, and no request is left
// running behind a client about to be closed.
func ask(ctx context.Context, total time.Duration, f func(timeout time.Duration) error) error {
	start := time.Now()
	for {
		call := time.Now()
		err := f(min(askSlice, max(total-time.Since(start), 100*time.Millisecond)))
		var u *offsets.UnreachableError
		if err == nil || !errors.As(err, &u) {
			return err
		}
		if time.Since(start) >= total {
			u.Waited = time.Since(start).Round(time.Millisecond)
			return err
		}
		select {
		case <-ctx.Done():
			return errStopped
		case <-time.After(200*time.Millisecond - time.Since(call)):
		}
	}
}

// errStopped: the context ended while the start check waited for the brokers.
var errStopped = errors.New("stopped")

// checkKafka is the start check: the brokers answer, and the dead-letter
// topic exists (a poison record would otherwise hold its partition forever).
// import fails when the brokers do not answer within brokerWait; run keeps
// asking (not ready meanwhile), as it rides out a broker outage later on.
func checkKafka(ctx context.Context, c *offsets.Consumer, cfg config.Config, importMode bool, h *health, brokers *statelog.Condition) error {
	wait := brokerWait
	if !importMode {
		wait = min(runAsk, brokerWait)
	}
	for {
		start := time.Now()
		err := ask(ctx, wait, func(timeout time.Duration) error { return c.CheckTopic(cfg.DLTTopic, timeout) })
		var unreachableErr *offsets.UnreachableError
		var missing *offsets.MissingTopicError
		switch {
		case errors.Is(err, errStopped):
			return errStopped
		case err == nil:
			brokers.OK()
			c.RecheckBrokers() // until they have answered long enough to count as back
			h.kafkaUp.Store(true)
			return nil
		case errors.As(err, &missing):
			return &exitError{code: exitNoDLT, msg: fmt.Sprintf(
				"the dead-letter topic %s (%sDLT_TOPIC) does not exist: create it with `statesync topics create %s` "+
					"(same %sKAFKA_* variables), or set %sDLT_TOPIC to an existing topic",
				cfg.DLTTopic, config.Prefix, cfg.DLTTopic, config.Prefix, config.Prefix)}
		case errors.As(err, &unreachableErr):
			if importMode {
				return unreachable(err)
			}
			if _, refused := kafkaRefused(); !refused { // logged as such (secure.go)
				brokers.Failed(err, zap.String("start_check", "not ready until they answer"))
			}
		default:
			return fmt.Errorf("check the dead-letter topic %s (%sDLT_TOPIC): %w", cfg.DLTTopic, config.Prefix, err)
		}
		select {
		case <-ctx.Done():
			return errStopped
		case <-time.After(wait - time.Since(start)):
		}
	}
}

func serveHTTP(addr string, reg *prometheus.Registry, h *health, log *zap.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := h.ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (set STATESYNC_HTTP_ADDR to a free address, or off)", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server", zap.Error(err))
		}
	}()
	log.Info("serving /metrics, /healthz, /readyz", zap.String("addr", ln.Addr().String()))
	return srv, nil
}

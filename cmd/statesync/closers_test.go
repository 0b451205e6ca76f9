package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// line is a log entry as the closers tests compare it.
type line struct {
	level zapcore.Level
	msg   string
	err   string // the error field, if any
}

func closeLog(t *testing.T, cs closers) ([]line, []observer.LoggedEntry) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	cs.closeAll(zap.New(core))
	var out []line
	for _, e := range logs.All() {
		l := line{level: e.Level, msg: e.Message}
		if err, ok := e.ContextMap()["error"].(string); ok {
			l.err = err
		}
		out = append(out, l)
	}
	return out, logs.All()
}

func TestClosers(t *testing.T) {
	var order []string
	step := func(name string, err error) func() error {
		return func() error { order = append(order, name); return err }
	}
	cases := []struct {
		name  string
		build func(*closers) // the steps a build took
		order []string
		log   []line
	}{
		{"nothing built, nothing closed", func(*closers) {}, nil, nil},
		{"closed in reverse build order, each logged",
			func(cs *closers) {
				cs.add("HTTP server", step("HTTP server", nil))
				cs.add("MongoDB client", step("MongoDB client", nil))
				cs.add("dead-letter producer", step("dead-letter producer", nil))
				cs.add("MongoDB ping", step("MongoDB ping", nil))
			},
			[]string{"MongoDB ping", "dead-letter producer", "MongoDB client", "HTTP server"},
			[]line{
				{zapcore.InfoLevel, "closing MongoDB ping", ""}, {zapcore.InfoLevel, "closed MongoDB ping", ""},
				{zapcore.InfoLevel, "closing dead-letter producer", ""}, {zapcore.InfoLevel, "closed dead-letter producer", ""},
				{zapcore.InfoLevel, "closing MongoDB client", ""}, {zapcore.InfoLevel, "closed MongoDB client", ""},
				{zapcore.InfoLevel, "closing HTTP server", ""}, {zapcore.InfoLevel, "closed HTTP server", ""},
			}},
		{"a build that failed halfway closes what it built",
			func(cs *closers) {
				cs.add("HTTP server", step("HTTP server", nil))
				cs.add("MongoDB client", step("MongoDB client", nil))
			},
			[]string{"MongoDB client", "HTTP server"},
			[]line{
				{zapcore.InfoLevel, "closing MongoDB client", ""}, {zapcore.InfoLevel, "closed MongoDB client", ""},
				{zapcore.InfoLevel, "closing HTTP server", ""}, {zapcore.InfoLevel, "closed HTTP server", ""},
			}},
		{"a failing closer is logged with its error and the rest still run",
			func(cs *closers) {
				cs.add("HTTP server", step("HTTP server", nil))
				cs.add("MongoDB client", step("MongoDB client", errors.New("server selection timeout")))
				cs.add("consumer", step("consumer", errors.New("close consumer: librdkafka did not finish in time")))
			},
			[]string{"consumer", "MongoDB client", "HTTP server"},
			[]line{
				{zapcore.InfoLevel, "closing consumer", ""},
				{zapcore.WarnLevel, "close consumer", "close consumer: librdkafka did not finish in time"},
				{zapcore.InfoLevel, "closing MongoDB client", ""},
				{zapcore.WarnLevel, "close MongoDB client", "server selection timeout"},
				{zapcore.InfoLevel, "closing HTTP server", ""}, {zapcore.InfoLevel, "closed HTTP server", ""},
			}},
		{"a part whose closing was handed over is not closed again",
			func(cs *closers) {
				cs.add("dead-letter producer", step("dead-letter producer", nil))
				cs.add("consumer", step("consumer", nil))
				cs.add("MongoDB ping", step("MongoDB ping", nil))
				*cs = cs.without("consumer")
			},
			[]string{"MongoDB ping", "dead-letter producer"},
			[]line{
				{zapcore.InfoLevel, "closing MongoDB ping", ""}, {zapcore.InfoLevel, "closed MongoDB ping", ""},
				{zapcore.InfoLevel, "closing dead-letter producer", ""}, {zapcore.InfoLevel, "closed dead-letter producer", ""},
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			order = nil
			var cs closers
			tc.build(&cs)
			log, entries := closeLog(t, cs)
			if !slices.Equal(order, tc.order) {
				t.Errorf("closed %q, want %q", order, tc.order)
			}
			if !slices.Equal(log, tc.log) {
				t.Errorf("logged\n%v\nwant\n%v", log, tc.log)
			}
			for _, e := range entries {
				if _, ok := e.ContextMap()["took"]; !ok && !strings.HasPrefix(e.Message, "closing ") {
					t.Errorf("%q says not how long it took", e.Message)
				}
			}
		})
	}
}

// The duration logged is the closer's own.
func TestClosersLogHowLongEachTook(t *testing.T) {
	var cs closers
	cs.add("slow", func() error { time.Sleep(30 * time.Millisecond); return nil })
	cs.add("quick", func() error { return nil })
	_, entries := closeLog(t, cs)
	took := map[string]time.Duration{}
	for _, e := range entries {
		if d, ok := e.ContextMap()["took"].(time.Duration); ok {
			took[e.Message] = d
		}
	}
	if took["closed slow"] < 30*time.Millisecond || took["closed quick"] >= 30*time.Millisecond {
		t.Errorf("took %v, want slow ≥ 30ms and quick less", took)
	}
}

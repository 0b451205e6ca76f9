// Command statesync keeps MongoDB collections equal to the latest state
// carried by Codr state topics (codr.state.<entity>).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"

	"github.com/codr/statesync/metrics"
)

// version and commit are set at build time:
// -ldflags "-X main.version=1.2.0 -X main.commit=$(git rev-parse HEAD)".
// Without commit, the VCS revision Go stamped into the binary is used.
var (
	version = "dev"
	commit  = ""
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	os.Exit(withSignals(os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr}, sigs, os.Exit))
}

// withSignals runs the command line; the first SIGINT/SIGTERM cancels its
// context (the command stops cleanly: drain, commit, purge, close), a
// second one exits at once with 128 + the signal's number.
func withSignals(args []string, e *env, sigs <-chan os.Signal, exit func(int)) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		var first os.Signal
		select {
		case first = <-sigs:
		case <-done:
			return
		}
		e.say(fmt.Sprintf("received %s: stopping cleanly (send it again to exit at once)", signalName(first)))
		cancel()
		var second os.Signal
		select {
		case second = <-sigs:
		case <-done:
			return
		}
		e.say(fmt.Sprintf("received a second %s: exiting at once, without waiting for the shutdown", signalName(second)))
		e.sync()
		code := exitSignal + 2
		if s, ok := second.(syscall.Signal); ok {
			code = exitSignal + int(s)
		}
		exit(code)
	}()
	return execute(ctx, e, args)
}

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// say tells the operator something about the process itself: through the
// logger when the command has one (one stream of JSON lines), else on stderr.
func (e *env) say(msg string) {
	if l := e.loggerIfAny(); l != nil {
		l.Warn(msg)
		return
	}
	fmt.Fprintln(e.stderr, "statesync: "+msg)
}

// build is what statesync version and statesync_build_info say.
func build() metrics.Build {
	c := commit
	if c == "" {
		c = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					c = s.Value
				}
			}
		}
	}
	_, lib := kafka.LibraryVersion()
	return metrics.Build{Version: version, Commit: c, GoVersion: runtime.Version(), Librdkafka: lib}
}

func versionText() string {
	b := build()
	return fmt.Sprintf("statesync %s\n  commit:      %s\n  go:          %s\n  librdkafka:  %s\n  platform:    %s/%s",
		b.Version, b.Commit, b.GoVersion, b.Librdkafka, runtime.GOOS, runtime.GOARCH)
}

func buildFields() []zap.Field {
	b := build()
	return []zap.Field{zap.String("version", b.Version), zap.String("commit", b.Commit), zap.String("go", b.GoVersion), zap.String("librdkafka", b.Librdkafka)}
}

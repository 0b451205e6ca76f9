package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/sink"
)

func cmdImport(ctx context.Context, e *env, args []string) error {
	allowDLT := false
	for _, a := range args {
		switch a {
		case "--allow-dead-letters":
			allowDLT = true
		default:
			return usageError("import: unknown flag %q (known: --allow-dead-letters)", a)
		}
	}
	sum, err := syncTopics(ctx, e, true)
	fmt.Fprintf(e.stdout, "import summary: consumed %d, written %d, deleted %d, skipped %d (stale %d, collapsed %d), dead-lettered %d, elapsed %s, %.0f records/s\n",
		sum.Consumed, sum.Written, sum.Deleted, sum.Stale+sum.Collapsed, sum.Stale, sum.Collapsed, sum.DeadLettered,
		sum.Elapsed.Round(time.Millisecond), float64(sum.Consumed)/max(sum.Elapsed.Seconds(), 1e-9))
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return &exitError{code: exitFailure, msg: "interrupted before the end offsets were reached; run it again to continue"}
	}
	if sum.DeadLettered > 0 && !allowDLT {
		return &exitError{code: exitDeadLets, msg: fmt.Sprintf("%d records were dead-lettered (see the dead-letter topic; --allow-dead-letters exits 0)", sum.DeadLettered)}
	}
	return nil
}

// summary counts what a sync did; written from the write goroutines.
type summary struct {
	consumed, written, deleted, stale, collapsed, deadLettered atomic.Int64
	start                                                      time.Time
	elapsed                                                    time.Duration
}

func (s *summary) add(o sink.Outcome, b *batch.Batch) {
	s.consumed.Add(int64(b.Consumed))
	s.written.Add(int64(o.Written))
	s.deleted.Add(int64(o.Deleted))
	s.stale.Add(int64(o.Skipped))
	s.collapsed.Add(int64(b.Collapsed))
	s.deadLettered.Add(int64(o.DeadLettered))
}

type summaryView struct {
	Consumed, Written, Deleted, Stale, Collapsed, DeadLettered int64
	Elapsed                                                    time.Duration
}

func (s *summary) snapshot() summaryView {
	return summaryView{s.consumed.Load(), s.written.Load(), s.deleted.Load(), s.stale.Load(), s.collapsed.Load(), s.deadLettered.Load(), s.elapsed}
}

// startProgress reports import progress: a status line on a terminal,
// a log line every 10 s otherwise.
func startProgress(e *env, st *offsets.Status, sum *summary, log *zap.Logger) (stop func()) {
	term := isTerminal(e.stderr)
	every := 10 * time.Second
	if term {
		every = 500 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				if term {
					fmt.Fprintln(e.stderr)
				}
				return
			case <-t.C:
			}
			committed := st.Committed.Load()
			lag := st.Lag.Load()
			rate := float64(committed) / time.Since(start).Seconds()
			eta := "?"
			if rate > 0 {
				eta = (time.Duration(float64(lag)/rate) * time.Second).Round(time.Second).String()
			}
			if term {
				fmt.Fprintf(e.stderr, "\rimported %d records, %.0f records/s, lag %d, ETA %s   ", committed, rate, lag, eta)
			} else {
				log.Info("import progress", zap.Int64("records", committed), zap.Float64("records_per_s", rate),
					zap.Int64("lag", lag), zap.String("eta", eta), zap.Int64("dead_lettered", sum.deadLettered.Load()))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/sink"
)

func newImportCmd(e *env) *cobra.Command {
	var allowDLT bool
	cmd := &cobra.Command{
		Use:   "import",
		Short: "sync up to the end offsets seen at start, print a summary, exit",
		Long: `Sync every partition up to the end offset it has at start, commit, print what was
written, deleted, skipped and dead-lettered and each collection's document
count, and exit: 0, or 3 when records were dead-lettered. Progress (records/s,
lag, ETA) on a terminal, log lines otherwise.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmdImport(cmd.Context(), e, allowDLT) },
	}
	cmd.Flags().BoolVar(&allowDLT, "allow-dead-letters", false, "exit 0 even when records were dead-lettered")
	return cmd
}

func cmdImport(ctx context.Context, e *env, allowDLT bool) error {
	if err := e.load(needAll); err != nil {
		return err
	}
	sum, err := syncTopics(ctx, e, true)
	if err != nil && sum.Consumed == 0 {
		return err
	}
	fmt.Fprintf(e.stdout, "import summary: consumed %d, written %d, deleted %d, skipped %d (stale %d, collapsed %d), dead-lettered %d, elapsed %s, %.0f records/s\n",
		sum.Consumed, sum.Written, sum.Deleted, sum.Stale+sum.Collapsed, sum.Stale, sum.Collapsed, sum.DeadLettered,
		sum.Elapsed.Round(time.Millisecond), float64(sum.Consumed)/max(sum.Elapsed.Seconds(), 1e-9))
	for _, coll := range sortedKeys(sum.Documents) {
		fmt.Fprintf(e.stdout, "  %s.%s: %d documents\n", e.cfg.MongoDatabase, coll, sum.Documents[coll])
	}
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
	mu                                                         sync.Mutex
	topics                                                     map[string]bool
}

func (s *summary) add(o sink.Outcome, b *batch.Batch) {
	s.consumed.Add(int64(b.Consumed))
	s.written.Add(int64(o.Written))
	s.deleted.Add(int64(o.Deleted))
	s.stale.Add(int64(o.Skipped))
	s.collapsed.Add(int64(b.Collapsed))
	s.deadLettered.Add(int64(o.DeadLettered))
	s.topic(b.Topic)
}

type summaryView struct {
	Consumed, Written, Deleted, Stale, Collapsed, DeadLettered int64
	Elapsed                                                    time.Duration
	Documents                                                  map[string]int64 // collection → documents after an import
}

func (s *summary) snapshot() summaryView {
	return summaryView{Consumed: s.consumed.Load(), Written: s.written.Load(), Deleted: s.deleted.Load(), Stale: s.stale.Load(),
		Collapsed: s.collapsed.Load(), DeadLettered: s.deadLettered.Load(), Elapsed: s.elapsed}
}

// topics remembers which topics a batch came from, for the import's
// per-collection document counts.
func (s *summary) topic(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.topics == nil {
		s.topics = map[string]bool{}
	}
	s.topics[name] = true
}

func (s *summary) topicNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.topics))
	for t := range s.topics {
		names = append(names, t)
	}
	sort.Strings(names)
	return names
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

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

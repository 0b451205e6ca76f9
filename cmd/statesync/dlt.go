package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/codr/statesync/deadletter"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/record"
)

func newDLTCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlt",
		Short: "work with the dead-letter topic",
		Args:  noArgs,
		RunE:  needSubcommand,
	}
	var f replayFlags
	replay := &cobra.Command{
		Use:   "replay",
		Short: "re-publish dead letters to their origin topics (or write them to MongoDB)",
		Long: `Re-publish the dead letters of STATESYNC_DLT_TOPIC to their origin topics, with
their original key and headers (or write them straight into MongoDB with
--to-mongo), filtered by origin topic, error class and time. Of several dead
letters of one key only the newest is replayed. --dry-run lists and changes
nothing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmdDLTReplay(cmd.Context(), e, f) },
	}
	fl := replay.Flags()
	fl.StringVar(&f.origin, "topic", "", "replay only dead letters from this origin topic")
	fl.StringVar(&f.since, "since", "", "replay only dead letters written at or after this time (RFC 3339, or a duration ago such as 24h)")
	fl.StringVar(&f.until, "until", "", "replay only dead letters written before this time (RFC 3339, or a duration ago)")
	fl.StringVar(&f.class, "class", "", "replay only dead letters of this error class")
	fl.BoolVar(&f.dryRun, "dry-run", false, "list what would be replayed, change nothing")
	fl.BoolVar(&f.toMongo, "to-mongo", false, "write the records straight into MongoDB instead of re-publishing them")
	cmd.AddCommand(replay)
	return cmd
}

type replayFlags struct {
	origin, since, until, class string
	dryRun, toMongo             bool
}

// cmdDLTReplay: `statesync dlt replay` re-publishes dead letters after a hotfix.
func cmdDLTReplay(ctx context.Context, e *env, f replayFlags) error {
	n := needKafka
	if f.toMongo {
		n = needAll
	}
	if err := e.load(n); err != nil {
		return err
	}
	filter, err := f.filter(time.Now())
	if err != nil {
		return err
	}
	apply, closeTarget, err := replayTarget(ctx, e, f)
	if err != nil {
		return err
	}
	defer closeTarget()

	letters, err := deadletter.ReadTopic(ctx, e.cfg.KafkaConfig(), e.cfg.DLTTopic, brokerWait, e.kafkaLogging())
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: exitFailure, msg: "interrupted while reading " + e.cfg.DLTTopic + ": nothing replayed"}
		}
		return unreachable(err)
	}
	sel := deadletter.Select(letters, filter)
	replayed, superseded, failed := replay(ctx, e.stdout, sel, apply, f.dryRun)
	fmt.Fprintf(e.stdout, "%d dead letters read from %s, %d matched, %d replayed, %d superseded, %d failed%s\n",
		len(letters), e.cfg.DLTTopic, len(sel.Matched), replayed, superseded, failed, map[bool]string{true: " (dry run: nothing changed)", false: ""}[f.dryRun])
	if failed > 0 {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("%d dead letters could not be replayed", failed)}
	}
	return nil
}

// replay applies each selected dead letter that is the newest of its key,
// printing a line for each letter: replayed, skipped (superseded or
// unreadable) or failed; an unreadable one counts as failed.
func replay(ctx context.Context, w io.Writer, sel deadletter.Selection, apply func(context.Context, deadletter.Letter) error,
	dryRun bool) (replayed, superseded, failed int) {
	for _, u := range sel.Unreadable {
		fmt.Fprintf(w, "skip %s[%d]@%d: not a dead letter statesync can read: %v\n", u.Msg.Topic, u.Msg.Partition, u.Msg.Offset, u.Err)
	}
	verb := "replay"
	if dryRun {
		verb = "would replay"
	}
	failed = len(sel.Unreadable)
	for _, c := range sel.Matched {
		m, d := c.Msg, c.Letter
		if n := c.SupersededBy; n != nil {
			fmt.Fprintf(w, "skip %s[%d]@%d: superseded by the newer dead letter %s[%d]@%d of key %s\n", m.Topic, m.Partition, m.Offset, n.Topic, n.Partition, n.Offset, d.Key)
			superseded++
			continue
		}
		line := fmt.Sprintf("%s %s[%d]@%d → %s key=%s class=%s at=%s", verb, m.Topic, m.Partition, m.Offset, d.Topic, d.Key, d.Class, d.At.Format(time.RFC3339))
		if err := apply(ctx, d); err != nil {
			fmt.Fprintf(w, "%s: FAILED: %v\n", line, err)
			failed++
			continue
		}
		fmt.Fprintln(w, line)
		replayed++
	}
	return replayed, superseded, failed
}

// filter is the selection the flags ask for; a duration counts back from now.
func (f replayFlags) filter(now time.Time) (deadletter.Filter, error) {
	since, err := parseWhen(f.since, now)
	if err != nil {
		return deadletter.Filter{}, usageError("--since: %v", err)
	}
	until, err := parseWhen(f.until, now)
	if err != nil {
		return deadletter.Filter{}, usageError("--until: %v", err)
	}
	return deadletter.Filter{Topic: f.origin, Class: f.class, Since: since, Until: until}, nil
}

// replayTarget is where a replay sends a dead letter's original: nowhere
// (--dry-run), straight into MongoDB (--to-mongo), or back to its origin
// topic. closeTarget releases the client it opened.
func replayTarget(ctx context.Context, e *env, f replayFlags) (apply func(context.Context, deadletter.Letter) error, closeTarget func(), err error) {
	switch {
	case f.dryRun:
		return func(context.Context, deadletter.Letter) error { return nil }, func() {}, nil
	case f.toMongo:
		db, err := connectSink(e.cfg)
		if err != nil {
			return nil, nil, err
		}
		closeDB := func() { _ = db.Close(context.Background()) }
		if err := checkMongo(ctx, db, e.cfg, mongoAddresses(e.cfg.MongoURI)); err != nil {
			closeDB()
			return nil, nil, err
		}
		return func(ctx context.Context, d deadletter.Letter) error {
			rec, err := record.Decode(d.Original, record.DecodeOptions{})
			if err != nil {
				return fmt.Errorf("still poison: %w", err)
			}
			res, err := db.Write(ctx, e.cfg.Collection(d.Topic), []record.Record{rec})
			if err != nil {
				return err
			}
			if len(res.Rejected) > 0 {
				return res.Rejected[0].Err
			}
			return nil
		}, closeDB, nil
	default:
		p, err := offsets.NewProducer(e.cfg.KafkaConfig(), "dlt-replay", e.kafkaLogging())
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context, d deadletter.Letter) error {
			return p.Produce(ctx, d.Topic, d.Original.Key, d.Original.Value, d.Original.Headers)
		}, func() { p.Close(10 * time.Second) }, nil
	}
}

func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-11-25T10:00:00Z) nor a duration (24h)", s)
	}
	return t, nil
}

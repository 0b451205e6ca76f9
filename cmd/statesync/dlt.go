package main

import (
	"context"
	"fmt"
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
	origin, class, dryRun, toMongo := &f.origin, &f.class, &f.dryRun, &f.toMongo
	now := time.Now()
	from, err := parseWhen(f.since, now)
	if err != nil {
		return usageError("--since: %v", err)
	}
	to, err := parseWhen(f.until, now)
	if err != nil {
		return usageError("--until: %v", err)
	}
	keep := func(d deadletter.Letter) bool {
		return (*origin == "" || d.Topic == *origin) && (*class == "" || d.Class == *class) &&
			(from.IsZero() || !d.At.Before(from)) && (to.IsZero() || d.At.Before(to))
	}

	var apply func(ctx context.Context, d deadletter.Letter) error
	switch {
	case *dryRun:
		apply = func(context.Context, deadletter.Letter) error { return nil }
	case *toMongo:
		db, err := connectSink(e.cfg)
		if err != nil {
			return err
		}
		defer db.Close(context.Background())
		if err := checkMongo(ctx, db, e.cfg, mongoAddresses(e.cfg.MongoURI)); err != nil {
			return err
		}
		apply = func(ctx context.Context, d deadletter.Letter) error {
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
		}
	default:
		p, err := offsets.NewProducer(e.cfg.KafkaConfig(), "dlt-replay", e.kafkaLogging())
		if err != nil {
			return err
		}
		defer p.Close(10 * time.Second)
		apply = func(ctx context.Context, d deadletter.Letter) error {
			return p.Produce(ctx, d.Topic, d.Original.Key, d.Original.Value, d.Original.Headers)
		}
	}

	letters, err := deadletter.ReadTopic(ctx, e.cfg.KafkaConfig(), e.cfg.DLTTopic, brokerWait, e.kafkaLogging())
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: exitFailure, msg: "interrupted while reading " + e.cfg.DLTTopic + ": nothing replayed"}
		}
		return unreachable(err)
	}
	// A key's newest dead letter supersedes its older ones: a state topic
	// keeps only the last record of a key, and a replayed record that fails
	// again is dead-lettered anew, so a second replay over the same window
	// would otherwise send it twice, and an older state after a newer one.
	type letter struct {
		m record.Message
		d deadletter.Letter
	}
	var picked []letter
	newest := map[[2]string]int{} // origin topic, key -> index in picked
	var matched, replayed, superseded, failed int
	for _, m := range letters {
		d, err := deadletter.Parse(m.Key, m.Value, m.Headers)
		if err != nil {
			fmt.Fprintf(e.stdout, "skip %s[%d]@%d: not a dead letter statesync can read: %v\n", m.Topic, m.Partition, m.Offset, err)
			failed++
			continue
		}
		if !keep(d) {
			continue
		}
		matched++
		picked = append(picked, letter{m, d})
		k := [2]string{d.Topic, string(d.Key)}
		if i, ok := newest[k]; !ok || !d.At.Before(picked[i].d.At) {
			newest[k] = len(picked) - 1
		}
	}
	for i, l := range picked {
		m, d := l.m, l.d
		verb := "replay"
		if *dryRun {
			verb = "would replay"
		}
		line := fmt.Sprintf("%s %s[%d]@%d → %s key=%s class=%s at=%s", verb, m.Topic, m.Partition, m.Offset, d.Topic, d.Key, d.Class, d.At.Format(time.RFC3339))
		if j := newest[[2]string{d.Topic, string(d.Key)}]; j != i {
			n := picked[j].m
			fmt.Fprintf(e.stdout, "skip %s[%d]@%d: superseded by the newer dead letter %s[%d]@%d of key %s\n", m.Topic, m.Partition, m.Offset, n.Topic, n.Partition, n.Offset, d.Key)
			superseded++
			continue
		}
		if err := apply(ctx, d); err != nil {
			fmt.Fprintf(e.stdout, "%s: FAILED: %v\n", line, err)
			failed++
			continue
		}
		fmt.Fprintln(e.stdout, line)
		replayed++
	}
	fmt.Fprintf(e.stdout, "%d dead letters read from %s, %d matched, %d replayed, %d superseded, %d failed%s\n",
		len(letters), e.cfg.DLTTopic, matched, replayed, superseded, failed, map[bool]string{true: " (dry run: nothing changed)", false: ""}[*dryRun])
	if failed > 0 {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("%d dead letters could not be replayed", failed)}
	}
	return nil
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

package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/codr/statesync/topics"
)

func cmdTopics(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError("topics needs a subcommand: check or create")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("topics "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	replicas := fs.Int("replicas", 2, "replicas of the service consuming the topics (partitions >= replicas, and >= 2)")
	rf := fs.Int("replication-factor", -1, "with create: replication factor (-1: the broker default)")
	fix := fs.Bool("fix", false, "with create: change existing topics to follow the conventions")
	if err := fs.Parse(args); err != nil {
		return usageError("%v", err)
	}
	if err := e.needKafka(); err != nil {
		return err
	}
	admin, err := topics.NewAdmin(e.cfg.KafkaConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	switch sub {
	case "check":
		ts, err := admin.Describe(ctx, fs.Args()...)
		if err != nil {
			return err
		}
		var violations []topics.Violation
		for _, t := range ts {
			violations = append(violations, topics.Check(t, *replicas)...)
		}
		if len(violations) == 0 {
			fmt.Fprintf(e.stdout, "%d topics checked: all follow the Codr conventions\n", len(ts))
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tRULE\tHAVE\tWANT")
		for _, v := range violations {
			have := v.Have
			if have == "" {
				have = "(unset)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Topic, v.Rule, have, v.Want)
		}
		tw.Flush()
		return &exitError{code: exitFailure, msg: fmt.Sprintf("%d violation(s) in %d topics checked", len(violations), len(ts))}
	case "create":
		if fs.NArg() == 0 {
			return usageError("topics create needs topic names")
		}
		report, err := admin.Ensure(ctx, fs.Args(), *replicas, *rf, *fix)
		for _, l := range report {
			fmt.Fprintln(e.stdout, l)
		}
		return err
	default:
		return usageError("topics %s: use check or create", sub)
	}
}

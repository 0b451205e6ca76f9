package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/codr/statesync/topics"
)

func newTopicsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "check and create topics by the Codr conventions",
		Args:  noArgs,
		RunE:  needSubcommand,
	}
	var replicas, rf int
	var fix bool
	check := &cobra.Command{
		Use:   "check [TOPIC...]",
		Short: "list the topics (all, or the named ones) that break the Codr conventions",
		Long: `List the topics (all non-internal ones, or those named) that break the Codr
conventions: names, partitions (at least 2, and one per replica), retention
and compaction. Exits 1 when any does, 5 when the brokers do not answer.`,
		RunE: func(cmd *cobra.Command, args []string) error { return cmdTopicsCheck(cmd.Context(), e, args, replicas) },
	}
	check.Flags().IntVar(&replicas, "replicas", 2, "replicas of the service consuming the topics (partitions >= replicas, and >= 2)")
	create := &cobra.Command{
		Use:   "create TOPIC...",
		Short: "create the named topics with the conventions' settings",
		Long: `Create the named topics with the Codr conventions' partitions, retention and
compaction. Existing topics are left alone and reported, or changed to follow
the conventions with --fix.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("%s needs topic names", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdTopicsCreate(cmd.Context(), e, args, replicas, rf, fix)
		},
	}
	create.Flags().IntVar(&replicas, "replicas", 2, "replicas of the service consuming the topics (partitions >= replicas, and >= 2)")
	create.Flags().IntVar(&rf, "replication-factor", -1, "replication factor (-1: the broker default)")
	create.Flags().BoolVar(&fix, "fix", false, "change existing topics to follow the conventions")
	cmd.AddCommand(check, create)
	return cmd
}

// adminFor loads the Kafka configuration and connects an admin client
// whose brokers answered within brokerWait (exit 5 otherwise).
func adminFor(ctx context.Context, e *env) (*topics.Admin, error) {
	if err := e.load(needKafka); err != nil {
		return nil, err
	}
	admin, err := topics.NewAdmin(e.cfg.KafkaConfig(), e.kafkaLogging())
	if err != nil {
		return nil, err
	}
	if err := ask(ctx, brokerWait, admin.Reachable); err != nil {
		admin.Close()
		if err == errStopped {
			return nil, &exitError{code: exitFailure, msg: "interrupted before the brokers answered: nothing done"}
		}
		return nil, unreachable(err)
	}
	return admin, nil
}

func cmdTopicsCheck(ctx context.Context, e *env, names []string, replicas int) error {
	admin, err := adminFor(ctx, e)
	if err != nil {
		return err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ts, err := admin.Describe(ctx, names...)
	if err != nil {
		return err
	}
	var violations []topics.Violation
	for _, t := range ts {
		violations = append(violations, topics.Check(t, replicas)...)
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
}

func cmdTopicsCreate(ctx context.Context, e *env, names []string, replicas, rf int, fix bool) error {
	admin, err := adminFor(ctx, e)
	if err != nil {
		return err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	report, err := admin.Ensure(ctx, names, replicas, rf, fix)
	for _, l := range report {
		fmt.Fprintln(e.stdout, l)
	}
	return err
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/codr/statesync/config"
)

const usage = `statesync keeps MongoDB collections equal to the latest state in Codr state topics.

Usage:
  statesync [run]            sync continuously (the sidecar)
  statesync import           sync up to the end offsets seen at start, print a summary, exit
  statesync publish --entity NAME [FILE]
                             publish an NDJSON or JSON-array dataset to codr.state.NAME
  statesync dlt replay [--topic T] [--since T] [--until T] [--to-mongo] [--dry-run]
                             re-publish dead letters to their origin topics (or write them to MongoDB)
  statesync topics check [--replicas N]   list topics that break the Codr conventions
  statesync topics create [--replicas N] [--fix] TOPIC...
  statesync config           print the effective configuration, secrets masked
  statesync version

Configuration is read from STATESYNC_* environment variables: see README.md.
`

// exit codes
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitDeadLets = 3 // import finished but dead-lettered records
	exitNoDLT    = 4 // run/import: the dead-letter topic does not exist
)

// cli dispatches subcommands and turns errors into exit codes.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if cmd == "version" || cmd == "--version" {
		fmt.Fprintln(stdout, "statesync", version)
		return exitOK
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	handler, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "statesync: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	cfg, err := config.Load()
	if err != nil && !handler.partialConfig {
		fmt.Fprintf(stderr, "statesync: %v\n", err)
		return exitUsage
	}
	env := &env{cfg: cfg, cfgErr: err, stdout: stdout, stderr: stderr}
	err = handler.run(ctx, env, args)
	var ec *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ec):
		if ec.msg != "" {
			fmt.Fprintf(stderr, "statesync %s: %s\n", cmd, ec.msg)
		}
		return ec.code
	default:
		fmt.Fprintf(stderr, "statesync %s: %v\n", cmd, err)
		return exitFailure
	}
}

type env struct {
	cfg            config.Config
	cfgErr         error // set when the command accepted a partial configuration
	stdout, stderr io.Writer
}

type command struct {
	run func(ctx context.Context, e *env, args []string) error
	// partialConfig: the command needs only some variables (it checks them).
	partialConfig bool
}

var commands = map[string]command{
	"run":     {run: cmdRun},
	"import":  {run: cmdImport},
	"config":  {run: cmdConfig, partialConfig: true},
	"publish": {run: cmdPublish, partialConfig: true},
	"dlt":     {run: cmdDLT, partialConfig: true},
	"topics":  {run: cmdTopics, partialConfig: true},
}

type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...) + "\n(see statesync help)"}
}

func cmdConfig(_ context.Context, e *env, _ []string) error {
	for _, l := range e.cfg.Masked() {
		fmt.Fprintln(e.stdout, l)
	}
	if e.cfgErr != nil {
		return &exitError{code: exitUsage, msg: e.cfgErr.Error()}
	}
	return nil
}

// needKafka checks the variables a Kafka-only command needs.
func (e *env) needKafka() error {
	if strings.TrimSpace(e.cfg.KafkaBrokers) == "" {
		return usageError("%sKAFKA_BROKERS is required: set it to the bootstrap servers", config.Prefix)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

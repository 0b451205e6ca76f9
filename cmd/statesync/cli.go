package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
	"go.uber.org/zap"

	"github.com/codr/statesync/config"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/statelog"
)

// Exit codes: the one table. The README's "Exit codes" table and
// `statesync --help` are generated from it, and a test keeps the README
// equal to it.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitDeadLets    = 3   // import finished but dead-lettered records
	exitNoDLT       = 4   // run/import: the dead-letter topic does not exist
	exitUnreachable = 5   // the Kafka brokers or MongoDB did not answer (the message names the addresses)
	exitSignal      = 128 // + the signal's number: a second SIGINT/SIGTERM ended the process at once
)

var exitCodes = []struct {
	code    string
	meaning string
}{
	{"0", "done (`run`: stopped cleanly on SIGTERM/SIGINT)"},
	{"1", "runtime failure, including a command interrupted before it finished (it says what was left undone, e.g. how many records `publish` purged unacknowledged)"},
	{"2", "usage or configuration error: an unknown command or flag, a bad or misspelled variable (every problem listed once, secrets never echoed)"},
	{"3", "`import` finished but dead-lettered records (`--allow-dead-letters` exits 0)"},
	{"4", "`run`/`import`: the dead-letter topic does not exist; create it with `statesync topics create <STATESYNC_DLT_TOPIC>`"},
	{"5", "cannot reach Kafka or MongoDB: the brokers (`import`, `publish`, `dlt`, `topics`) or MongoDB (`import`, `dlt replay --to-mongo`) did not answer in time; the message names the addresses and the variable (`run` does not exit: it waits, not ready, and logs it)"},
	{"130, 143", "a second SIGINT (130) or SIGTERM (143) during the clean shutdown: exited at once, without waiting for in-flight writes (nothing is committed that was not written)"},
}

func exitCodeMarkdown() string {
	var b strings.Builder
	b.WriteString("| exit code | meaning |\n|---|---|\n")
	for _, c := range exitCodes {
		fmt.Fprintf(&b, "| %s | %s |\n", c.code, c.meaning)
	}
	return b.String()
}

func exitCodeText() string {
	var b strings.Builder
	for _, c := range exitCodes {
		fmt.Fprintf(&b, "  %-9s %s\n", c.code, strings.ReplaceAll(c.meaning, "`", ""))
	}
	return b.String()
}

type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// env is what a command runs with: the configuration once loaded, the
// logger, the output, the brokers' condition shared by its Kafka clients.
type env struct {
	cfg            config.Config
	cfgErr         error // the configuration's problems, when the command tolerates some
	stdout, stderr io.Writer

	mu      sync.Mutex
	log     *zap.Logger
	brokers *statelog.Condition
}

// cli runs the command line and returns the exit code.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return execute(ctx, &env{stdout: stdout, stderr: stderr}, args)
}

func execute(ctx context.Context, e *env, args []string) int {
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	defer e.sync()
	if err == nil {
		return exitOK
	}
	name := "statesync"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	msg := e.cfg.Redact(err.Error())
	var ec *exitError
	if errors.As(err, &ec) {
		if ec.msg != "" {
			fmt.Fprintf(e.stderr, "%s: %s\n", name, e.cfg.Redact(ec.msg))
		}
		if ec.code == exitUsage && cmd != nil {
			fmt.Fprintf(e.stderr, "(see %s --help)\n", cmd.CommandPath())
		}
		return ec.code
	}
	fmt.Fprintf(e.stderr, "%s: %s\n", name, msg)
	return exitFailure
}

// logger is the process's zap logger (JSON, or console on a terminal as
// STATESYNC_LOG_FORMAT says), built on first use.
func (e *env) logger() *zap.Logger {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.log == nil {
		l, err := newLogger(e.cfg, e.stderr, isTerminal(e.stderr))
		if err != nil {
			l = zap.NewNop()
		}
		e.log = l
	}
	return e.log
}

// loggerIfAny is the logger when one was built (for the signal handler).
func (e *env) loggerIfAny() *zap.Logger {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log
}

func (e *env) sync() {
	if l := e.loggerIfAny(); l != nil {
		_ = l.Sync()
	}
}

// kafkaLogging is where the librdkafka clients' lines go, with the
// brokers' reachability logged when it changes.
func (e *env) kafkaLogging() offsets.Logging {
	log := e.logger()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.brokers == nil {
		e.brokers = offsets.BrokersCondition(log, e.cfg.KafkaBrokers)
	}
	return offsets.Logging{Log: log, Brokers: e.brokers}
}

// needs says which part of the configuration a command uses: problems with
// the other variables do not stop it.
type needs struct{ kafka, mongo bool }

var (
	needAll   = needs{kafka: true, mongo: true}
	needKafka = needs{kafka: true}
)

var mongoVars = []string{config.Prefix + "MONGO_URI", config.Prefix + "MONGO_URI_FILE", config.Prefix + "MONGO_DATABASE"}

// load reads and checks the configuration: the variables, then the MongoDB
// URI with the driver's own parser and the librdkafka properties with
// librdkafka itself. Problems with variables the command does not use are
// kept in cfgErr; the others are a configuration error (exit 2).
func (e *env) load(n needs) error {
	cfg, err := config.Load()
	var problems []config.Problem
	var ce *config.Error
	if errors.As(err, &ce) {
		problems = ce.List
	} else if err != nil {
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	problems = append(problems, driverProblems(cfg, problems, n)...)
	e.cfg = cfg
	for _, w := range cfg.Warnings() {
		e.logger().Warn(w)
	}
	var fatal []config.Problem
	for _, p := range problems {
		if !n.mongo && contains(mongoVars, p.Var) {
			continue
		}
		fatal = append(fatal, p)
	}
	if len(problems) > 0 {
		e.cfgErr = config.NewError(problems)
	}
	if len(fatal) > 0 {
		return &exitError{code: exitUsage, msg: config.NewError(fatal).Error()}
	}
	return nil
}

// driverProblems checks what only the drivers can: the MongoDB URI (when
// its variable has no problem yet) and the librdkafka properties.
func driverProblems(cfg config.Config, known []config.Problem, n needs) []config.Problem {
	bad := map[string]bool{}
	for _, p := range known {
		bad[p.Var] = true
	}
	var out []config.Problem
	uriVar := config.Prefix + "MONGO_URI"
	if n.mongo && cfg.MongoURI != "" && !bad[uriVar] && !bad[uriVar+"_FILE"] {
		if _, err := connstring.ParseAndValidate(cfg.MongoURI); err != nil {
			out = append(out, config.Problem{Var: uriVar, Msg: fmt.Sprintf("%s is not a connection string the MongoDB driver accepts: %s",
				uriVar, cfg.Redact(strings.TrimPrefix(strings.TrimPrefix(err.Error(), "error parsing uri: "), "error validating uri: ")))})
		}
	}
	if n.kafka && !bad[config.Prefix+"KAFKA_PROPERTIES"] {
		if err := offsets.CheckProperties(cfg.KafkaConfig()); err != nil {
			out = append(out, config.Problem{Var: config.Prefix + "KAFKA_PROPERTIES", Msg: fmt.Sprintf("%sKAFKA_PROPERTIES (or the SASL variables): librdkafka refuses them: %s",
				config.Prefix, cfg.Redact(err.Error()))})
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ---------------------------------------------------------------------------------------------
// the command tree

const rootLong = `statesync keeps MongoDB collections equal to the latest state in Codr state
topics (codr.state.<entity>). Without a command it runs the sidecar (statesync run).

Configuration comes from STATESYNC_* environment variables: statesync env lists
them, statesync config shows the effective values (secrets masked).

Exit codes:
`

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "statesync",
		Short:         "keep MongoDB collections equal to the latest state in Codr state topics",
		Long:          rootLong + exitCodeText(),
		Args:          noArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmdRun(cmd.Context(), e) },
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.Version = versionText()
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError("%v", err)
	})
	root.AddCommand(newRunCmd(e), newImportCmd(e), newPublishCmd(e), newDLTCmd(e), newTopicsCmd(e),
		newConfigCmd(e), newEnvCmd(), newVersionCmd(e))
	return root
}

// noArgs refuses arguments as a usage error, suggesting a command for a
// misspelled one.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		return usageError("unknown command %q for %s: did you mean %s?", args[0], cmd.CommandPath(), strings.Join(s, " or "))
	}
	if cmd.HasSubCommands() {
		return usageError("unknown command %q for %s", args[0], cmd.CommandPath())
	}
	return usageError("%s takes no arguments (got %q)", cmd.CommandPath(), args[0])
}

// needSubcommand is the RunE of a command that only groups others.
func needSubcommand(cmd *cobra.Command, _ []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return usageError("needs a command: %s", strings.Join(names, ", "))
}

func newRunCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "sync continuously (the sidecar; the default command)",
		Long: `Sync continuously: consume the state topics, write MongoDB, commit offsets after
the writes are acknowledged. The first SIGTERM or SIGINT drains, commits and
closes within STATESYNC_SHUTDOWN_GRACE; a second one exits at once.

Serves /metrics, /healthz and /readyz on STATESYNC_HTTP_ADDR.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmdRun(cmd.Context(), e) },
	}
}

func newConfigCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "print the effective configuration, secrets masked, and check it",
		Long: `Print the effective configuration (every variable, defaults included, secrets
masked) and check it as run does: the variables, the MongoDB URI with the
driver's parser, the librdkafka properties with librdkafka. Exits 2 when
anything is wrong, listing each problem once.

Variables:
` + config.Reference(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := e.load(needAll)
			for _, l := range e.cfg.Masked() {
				fmt.Fprintln(e.stdout, l)
			}
			return err
		},
	}
}

func newEnvCmd() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "env",
		Short: "list the STATESYNC_* variables: default and meaning (the configuration reference)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if markdown {
				fmt.Fprint(cmd.OutOrStdout(), config.ReferenceMarkdown())
				return nil
			}
			fmt.Fprint(cmd.OutOrStdout(), config.Reference())
			return nil
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the README's Markdown table")
	return cmd
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version, commit, Go and librdkafka versions",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(e.stdout, versionText())
			return nil
		},
	}
}

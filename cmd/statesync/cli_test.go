package main

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/codr/statesync/config"
	"github.com/codr/statesync/metrics"
)

// emptyEnvironment removes every STATESYNC_* variable for the test.
func emptyEnvironment(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "STATESYNC_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// environment sets exactly these STATESYNC_* variables.
func environment(t *testing.T, vars map[string]string) {
	t.Helper()
	emptyEnvironment(t)
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut lockedBuffer
	code = cli(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// lockedBuffer: the logger's goroutines may still write while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// commandPaths lists every command of the tree (root first), as arguments.
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	paths := [][]string{prefix}
	for _, sub := range c.Commands() {
		if sub.Hidden {
			continue
		}
		paths = append(paths, commandPaths(sub, append(append([]string{}, prefix...), sub.Name()))...)
	}
	return paths
}

// --help works on every command and subcommand with no configuration at
// all, exits 0, and shows that command's own flags.
func TestHelpWorksOnEveryCommandWithAnEmptyEnvironment(t *testing.T) {
	emptyEnvironment(t)
	root := newRoot(&env{})
	paths := commandPaths(root, nil)
	if len(paths) < 12 {
		t.Fatalf("only %d commands found: %v", len(paths), paths)
	}
	for _, p := range paths {
		for _, form := range [][]string{append(append([]string{}, p...), "--help"), append([]string{"help"}, p...)} {
			name := strings.Join(form, " ")
			t.Run(name, func(t *testing.T) {
				code, stdout, stderr := run(t, form...)
				if code != exitOK {
					t.Fatalf("statesync %s: exit %d, want 0\nstderr: %s", name, code, stderr)
				}
				if !strings.Contains(stdout, "Usage:") || stderr != "" {
					t.Errorf("statesync %s: stdout has no usage, or stderr is not empty:\n%s\nstderr: %s", name, stdout, stderr)
				}
			})
		}
	}
	t.Run("topics check lists its own flags, not create's", func(t *testing.T) {
		_, stdout, _ := run(t, "topics", "check", "--help")
		if !strings.Contains(stdout, "--replicas") || strings.Contains(stdout, "--fix") || strings.Contains(stdout, "--replication-factor") {
			t.Errorf("topics check --help:\n%s", stdout)
		}
	})
	t.Run("config --help is the configuration reference", func(t *testing.T) {
		_, stdout, _ := run(t, "config", "--help")
		for _, w := range []string{"STATESYNC_KAFKA_BROKERS (required)", "STATESYNC_BATCH_MAX_WAIT (default 200ms)", "STATESYNC_SHUTDOWN_GRACE"} {
			if !strings.Contains(stdout, w) {
				t.Errorf("config --help does not say %q", w)
			}
		}
	})
	t.Run("the root help lists the exit codes", func(t *testing.T) {
		_, stdout, _ := run(t, "--help")
		for _, c := range exitCodes {
			if !strings.Contains(stdout, "  "+c.code+" ") {
				t.Errorf("statesync --help does not list exit code %s", c.code)
			}
		}
	})
	t.Run("completion scripts come with it", func(t *testing.T) {
		for _, shell := range []string{"bash", "zsh", "fish"} {
			if code, stdout, _ := run(t, "completion", shell); code != 0 || len(stdout) < 100 {
				t.Errorf("completion %s: exit %d, %d bytes", shell, code, len(stdout))
			}
		}
	})
}

// Unknown commands, flags and arguments are usage errors (exit 2), before
// any configuration is read, and say what to do.
func TestUnknownCommandsAndFlagsExit2(t *testing.T) {
	emptyEnvironment(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"config", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"publish", "--entity", "user", "--nope"}, "unknown flag: --nope"},
		{[]string{"import", "--allow-dead-letter"}, "unknown flag: --allow-dead-letter"},
		{[]string{"topics", "create", "--bogus", "x"}, "unknown flag: --bogus"},
		{[]string{"rn"}, "did you mean run"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"dlt"}, "needs a command: replay"},
		{[]string{"dlt", "replai"}, "did you mean replay"},
		{[]string{"topics"}, "needs a command: check, create"},
		{[]string{"topics", "create"}, "needs topic names"},
		{[]string{"run", "extra"}, "takes no arguments"},
		{[]string{"publish", "--entity", "user", "a", "b"}, "reads one FILE"},
		{[]string{"publish", "--entity", "User"}, "lower-case words joined by hyphens"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "--help)") || stdout != "" {
				t.Errorf("stderr does not say %q and where to look:\n%s\nstdout: %s", tc.want, stderr, stdout)
			}
		})
	}
}

// Each configuration error is reported once, naming its variable, by
// statesync config as by run (exit 2 both), the MongoDB URI checked by the
// driver and the librdkafka properties by librdkafka.
func TestConfigurationErrorsAreTheSameInConfigAndRun(t *testing.T) {
	base := map[string]string{
		"STATESYNC_KAFKA_BROKERS":  "127.0.0.1:1",
		"STATESYNC_MONGO_URI":      "mongodb://127.0.0.1:1",
		"STATESYNC_MONGO_DATABASE": "x",
		"STATESYNC_HTTP_ADDR":      "off",
	}
	cases := []struct {
		name, variable, value string
		want                  string
	}{
		{"a port that is not a number, by the driver's parser", "STATESYNC_MONGO_URI", "mongodb://host:notaport", "STATESYNC_MONGO_URI is not a connection string the MongoDB driver accepts"},
		{"an option the driver does not know", "STATESYNC_MONGO_URI", "mongodb://host/?w=majority&journal=maybe", "STATESYNC_MONGO_URI is not a connection string the MongoDB driver accepts"},
		{"a misspelled librdkafka property, by librdkafka", "STATESYNC_KAFKA_PROPERTIES", "securty.protocol=SSL", `No such configuration property: "securty.protocol"`},
		{"a bad librdkafka value, by librdkafka", "STATESYNC_KAFKA_PROPERTIES", "security.protocol=TLS", "security.protocol"},
		{"a duration that does not parse", "STATESYNC_BATCH_MAX_WAIT", "abc", `STATESYNC_BATCH_MAX_WAIT="abc" is not a duration`},
		{"a misspelled variable", "STATESYNC_KAFKA_BROKER", "kafka:9092", "did you mean STATESYNC_KAFKA_BROKERS?"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			for k, v := range base {
				vars[k] = v
			}
			vars[tc.variable] = tc.value
			environment(t, vars)
			var msgs []string
			for _, cmd := range []string{"config", "run", "import"} {
				code, _, stderr := run(t, cmd)
				if code != exitUsage {
					t.Errorf("%s: exit %d, want %d\n%s", cmd, code, exitUsage, stderr)
				}
				if n := strings.Count(stderr, tc.want); n != 1 {
					t.Errorf("%s: %q said %d times, want once:\n%s", cmd, tc.want, n, stderr)
				}
				msg, _, _ := strings.Cut(stderr, "\n(see")
				_, msg, _ = strings.Cut(msg, ": ")
				msgs = append(msgs, msg)
			}
			if msgs[0] != msgs[1] || msgs[1] != msgs[2] {
				t.Errorf("config, run and import report differently:\n%s", strings.Join(msgs, "\n--\n"))
			}
		})
	}
	t.Run("a Kafka-only command ignores the MongoDB variables", func(t *testing.T) {
		environment(t, map[string]string{"STATESYNC_KAFKA_BROKERS": "127.0.0.1:1", "STATESYNC_KAFKA_PROPERTIES": "securty.protocol=SSL"})
		code, _, stderr := run(t, "topics", "check")
		if code != exitUsage || !strings.Contains(stderr, "securty.protocol") || strings.Contains(stderr, "MONGO") {
			t.Errorf("exit %d:\n%s", code, stderr)
		}
	})
}

// A secret given in any form never appears in any output of any command:
// statesync config, configuration errors (including the drivers' own),
// logs.
func TestNoSecretAppearsInAnyOutput(t *testing.T) {
	defer func(d time.Duration) { brokerWait = d }(brokerWait)
	brokerWait = 2 * time.Second
	forms := []struct {
		name   string
		vars   map[string]string
		secret string
	}{
		{"a URI password holding an unescaped @ (the driver refuses it)", map[string]string{"STATESYNC_MONGO_URI": "mongodb://u:S3cr@tPWd@127.0.0.1:1"}, "S3cr@tPWd"},
		{"the tail of that password", map[string]string{"STATESYNC_MONGO_URI": "mongodb://u:S3cr@tPWd@127.0.0.1:1"}, "tPWd"},
		{"a URI password", map[string]string{"STATESYNC_MONGO_URI": "mongodb://u:Pl4inPWd@127.0.0.1:1/?journal=maybe"}, "Pl4inPWd"},
		{"an AWS session token in the URI", map[string]string{"STATESYNC_MONGO_URI": "mongodb://AKIA:S3cretKey@127.0.0.1:1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:FQoGZXIvYXdz"}, "FQoGZXIvYXdz"},
		{"a TLS key password in the URI", map[string]string{"STATESYNC_MONGO_URI": "mongodb://127.0.0.1:1/?tlsCertificateKeyFilePassword=K3yFilePw&tls=maybe"}, "K3yFilePw"},
		{"a property list that does not parse", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "sasl.password:KP4ssword"}, "KP4ssword"},
		{"sasl.password beside a property librdkafka refuses", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "sasl.password=KP4ssword;securty.protocol=SSL"}, "KP4ssword"},
		{"a private key librdkafka cannot read", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "security.protocol=SSL;ssl.key.pem=-----BEGIN PRIVATE KEY-----MIIEvQIBADAN-----END PRIVATE KEY-----"}, "MIIEvQIBADAN"},
		{"the OAuth configuration", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "security.protocol=SASL_PLAINTEXT;sasl.mechanism=OAUTHBEARER;sasl.oauthbearer.config=principal=svc token=Unsec0rdJwt"}, "Unsec0rdJwt"},
		{"an OAuth client secret", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "sasl.oauthbearer.client.secret=C1ientS3cret"}, "C1ientS3cret"},
		{"the SASL password variable", map[string]string{"STATESYNC_KAFKA_SASL_PASSWORD": "Sasl-Pw-42", "STATESYNC_KAFKA_SASL_USERNAME": "svc",
			"STATESYNC_KAFKA_PROPERTIES": "security.protocol=SASL_PLAINTEXT;sasl.mechanism=PLAIN"}, "Sasl-Pw-42"},
	}
	commands := [][]string{{"config"}, {"run"}, {"import"}, {"publish", "--entity", "user", "--generate", "1"}, {"topics", "check"}, {"dlt", "replay", "--dry-run"}}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			vars := map[string]string{
				"STATESYNC_KAFKA_BROKERS":  "127.0.0.1:1",
				"STATESYNC_MONGO_URI":      "mongodb://127.0.0.1:1",
				"STATESYNC_MONGO_DATABASE": "x",
				"STATESYNC_HTTP_ADDR":      "off",
				"STATESYNC_LOG_LEVEL":      "debug",
				"STATESYNC_LOG_FORMAT":     "json",
			}
			for k, v := range f.vars {
				vars[k] = v
			}
			environment(t, vars)
			for _, args := range commands {
				if args[0] == "run" || args[0] == "import" {
					if _, _, stderr := run(t, "config"); !strings.Contains(stderr, "invalid configuration") {
						continue // a valid configuration would start syncing: the start is covered by publish, topics, dlt
					}
				}
				code, stdout, stderr := run(t, args...)
				if strings.Contains(stdout+stderr, f.secret) {
					t.Errorf("statesync %s (exit %d) shows %q:\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, f.secret, stdout, stderr)
				}
			}
		})
	}
}

// The README's exit-code table is the one the code uses.
func TestTheREADMEHasTheExitCodeTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), exitCodeMarkdown()) {
		t.Errorf("README.md does not hold the exit-code table of cli.go; it should read:\n%s", exitCodeMarkdown())
	}
	codes := map[int]string{exitOK: "0", exitFailure: "1", exitUsage: "2", exitDeadLets: "3", exitNoDLT: "4", exitUnreachable: "5"}
	for code, s := range codes {
		found := false
		for _, c := range exitCodes {
			found = found || c.code == s
		}
		if !found {
			t.Errorf("exit code %d is not in the table", code)
		}
	}
}

func TestVersionSaysCommitGoAndLibrdkafka(t *testing.T) {
	emptyEnvironment(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, _ := run(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, w := range []string{"statesync " + version, "commit:", "go:          " + runtime.Version(), "librdkafka:  2."} {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v does not say %q:\n%s", args, w, stdout)
			}
		}
	}
}

// Brokers or MongoDB that do not answer are exit 5, within the start
// check's bound, naming the addresses and their variable (topics check
// took 60 s and exited like "violations found", without an address).
func TestUnreachableKafkaOrMongoIsExit5NamingTheAddresses(t *testing.T) {
	defer func(d time.Duration) { brokerWait = d }(brokerWait)
	brokerWait = 2 * time.Second
	environment(t, map[string]string{
		"STATESYNC_KAFKA_BROKERS":  "127.0.0.1:1",
		"STATESYNC_MONGO_URI":      "mongodb://u:pw12345@127.0.0.1:1,127.0.0.1:2/?replicaSet=rs0",
		"STATESYNC_MONGO_DATABASE": "x",
		"STATESYNC_HTTP_ADDR":      "off",
		"STATESYNC_LOG_LEVEL":      "error",
	})
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"topics", "check"}, "Kafka brokers 127.0.0.1:1 (STATESYNC_KAFKA_BROKERS) are unreachable"},
		{[]string{"topics", "create", "codr.state.user"}, "Kafka brokers 127.0.0.1:1 (STATESYNC_KAFKA_BROKERS) are unreachable"},
		{[]string{"publish", "--entity", "user", "--generate", "1"}, "Kafka brokers 127.0.0.1:1 (STATESYNC_KAFKA_BROKERS) are unreachable"},
		{[]string{"dlt", "replay", "--dry-run"}, "Kafka brokers 127.0.0.1:1 (STATESYNC_KAFKA_BROKERS) are unreachable"},
		{[]string{"import"}, "MongoDB 127.0.0.1:1,127.0.0.1:2 (STATESYNC_MONGO_URI) is unreachable"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			start := time.Now()
			code, _, stderr := run(t, tc.args...)
			took := time.Since(start)
			if code != exitUnreachable || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want %d saying %q:\n%s", code, exitUnreachable, tc.want, stderr)
			}
			if strings.Contains(stderr, "pw12345") {
				t.Errorf("the message shows the password:\n%s", stderr)
			}
			if took > 20*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
}

// statesync_build_info carries what statesync version says.
func TestBuildInfoMetricCarriesTheVersions(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.RegisterBuildInfo(reg, build())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "statesync_build_info" {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
	labels := map[string]string{}
	for _, l := range mfs[0].Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	b := build()
	if labels["version"] != b.Version || labels["commit"] != b.Commit || labels["goversion"] != runtime.Version() || !strings.HasPrefix(labels["librdkafka"], "2.") {
		t.Errorf("labels = %v", labels)
	}
	if v := mfs[0].Metric[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("value %v, want 1", v)
	}
}

// Console logs are coloured on a terminal only: a file gets no escape codes.
func TestConsoleLogsHaveNoColourCodesOutsideATerminal(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(config.Config{LogFormat: "console", LogLevel: "info"}, &buf, false)
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("hello")
	if strings.Contains(buf.String(), "\x1b[") || !strings.Contains(buf.String(), "WARN") {
		t.Errorf("console line into a file: %q", buf.String())
	}
}

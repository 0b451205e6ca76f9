package e2e

// Secure connections, on the local stack's secure listeners (docs/local-stack.md, "Secure
// listeners"): Kafka SASL_SSL with SCRAM-SHA-512, FerretDB with TLS and a password, FerretDB with
// TLS and a client certificate. Every secret reaches the binary as a file, as a Kubernetes Secret
// mount gives it (STATESYNC_KAFKA_SASL_PASSWORD_FILE, STATESYNC_MONGO_URI_FILE), the CA through
// ssl.ca.location and tlsCAFile. Every byte the processes wrote is searched for the secrets.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/test/testenv"
)

// secrets is what must never appear in anything statesync writes, and everything it wrote.
type secrets struct {
	mu      sync.Mutex
	values  map[string]string // secret → what it is
	written []written
}

type written struct{ what, text string }

func (s *secrets) add(what, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[string]string{}
	}
	if len(value) >= 8 {
		s.values[value] = what
	}
}

// addKey adds the body lines of a PEM private key (each a run of base64 the key is made of).
func (s *secrets) addKey(t *testing.T, what, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("PRIVATE KEY")) {
		t.Fatalf("%s is no PEM private key", path)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "-----") {
			s.add(what+" (PEM body)", line)
		}
	}
}

func (s *secrets) saw(what, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written = append(s.written, written{what, text})
}

// sawProc records what a process wrote: stdout, stderr (its log and error output) and, while it
// runs, its /metrics body.
func (s *secrets) sawProc(p *proc) {
	if p.running() {
		if code, body := p.get("/metrics"); code == http.StatusOK {
			s.saw(p.name+" /metrics", body)
		}
		if _, body := p.get("/readyz"); body != "" {
			s.saw(p.name+" /readyz", body)
		}
	}
	s.saw(p.name+" stdout", p.stdout())
	s.saw(p.name+" stderr", p.stderr())
}

// check fails the test for each secret found in what the processes wrote.
func (s *secrets) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int
	for _, w := range s.written {
		n += len(w.text)
		for v, what := range s.values {
			if strings.Contains(w.text, v) {
				t.Errorf("SECRET LEAKED: %s appears in %s", what, w.what)
			}
		}
	}
	t.Logf("secrets: %d secret strings searched for in %d outputs (%d bytes): none found unless reported above", len(s.values), len(s.written), n)
}

// secureFiles are the files a Secret mount would give statesync, in a directory of the test's.
type secureFiles struct {
	sec                  testenv.Secure
	dir                  string
	kafkaPassword        string // path: the SCRAM password of user statesync
	mongoURI, mongoMTLS  string // paths: TLS + password; TLS + client certificate + password
	mongoPassword        string // the value
	clientPEM, otherPEM  string // paths: client certificate and key in one file (tlsCertificateKeyFile)
	kafkaProps, otherCAs string // STATESYNC_KAFKA_PROPERTIES trusting the stack's CA / another CA
}

func writeSecret(t *testing.T, path, content string) string {
	t.Helper()
	// as kubelet updates a Secret mount: a new file renamed over the old one
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func newSecureFiles(t *testing.T, sec testenv.Secure, sc *secrets) *secureFiles {
	t.Helper()
	f := &secureFiles{sec: sec, dir: t.TempDir()}
	kpw := sec.Read(t, "kafka-statesync.password")
	f.mongoPassword = sec.Read(t, "mongo-"+sec.MongoUser+".password")
	f.kafkaPassword = writeSecret(t, filepath.Join(f.dir, "kafka-password"), kpw+"\n")
	ca := sec.File("ca.pem")
	f.mongoURI = writeSecret(t, filepath.Join(f.dir, "mongo-uri"), mongoURI(sec.MongoUser, f.mongoPassword, sec.MongoTLSHost, "tls=true&tlsCAFile="+ca))
	f.clientPEM = writeSecret(t, filepath.Join(f.dir, "client.pem"), sec.Read(t, "client.pem")+"\n"+sec.Read(t, "client.key")+"\n")
	f.otherPEM = writeSecret(t, filepath.Join(f.dir, "other-client.pem"), sec.Read(t, "other-client.pem")+"\n"+sec.Read(t, "other-client.key")+"\n")
	f.mongoMTLS = writeSecret(t, filepath.Join(f.dir, "mongo-mtls-uri"),
		mongoURI(sec.MongoUser, f.mongoPassword, sec.MongoMTLSHost, "tls=true&tlsCAFile="+ca+"&tlsCertificateKeyFile="+f.clientPEM))
	f.kafkaProps = "security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-512;ssl.ca.location=" + ca
	f.otherCAs = "security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-512;ssl.ca.location=" + sec.File("other-ca.pem")

	sc.add("the Kafka SASL password", kpw)
	sc.add("the MongoDB password", f.mongoPassword)
	sc.add("the Kafka keystore password", sec.Read(t, "keystore.password"))
	sc.add("the Kafka test user's password", sec.Read(t, "kafka-statesync-test.password"))
	for _, k := range []string{"server.key", "expired.key", "client.key", "other-client.key", "ca.key", "other-ca.key"} {
		sc.addKey(t, k, sec.File(k))
	}
	return f
}

func mongoURI(user, password, host, options string) string {
	return fmt.Sprintf("mongodb://%s:%s@%s/?authMechanism=PLAIN&%s", user, password, host, options)
}

// env is the scenario's environment switched to the secure listeners; over changes it further.
func (f *secureFiles) env(over map[string]string) map[string]string {
	e := map[string]string{
		"STATESYNC_KAFKA_BROKERS":            f.sec.SASLBrokers,
		"STATESYNC_KAFKA_PROPERTIES":         f.kafkaProps,
		"STATESYNC_KAFKA_SASL_USERNAME":      "statesync",
		"STATESYNC_KAFKA_SASL_PASSWORD_FILE": f.kafkaPassword,
		"STATESYNC_MONGO_URI":                "", // the scenario's plaintext one: the file replaces it
		"STATESYNC_MONGO_URI_FILE":           f.mongoURI,
	}
	for k, v := range over {
		e[k] = v
	}
	return e
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// exitOf waits for a command that ends, recording what it wrote.
func exitOf(t *testing.T, p *proc, sc *secrets, timeout time.Duration) int {
	t.Helper()
	code, err := p.wait(timeout)
	sc.sawProc(p)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// stopCleanly stops a running command with SIGTERM and wants exit 0, recording what it wrote before
// the stop (its /metrics and /readyz too) and after.
func stopCleanly(t *testing.T, p *proc, sc *secrets) {
	t.Helper()
	sc.sawProc(p)
	if code, _ := p.term(30 * time.Second); code != 0 {
		t.Errorf("%s: exit %d after SIGTERM, want 0", p.name, code)
	}
	sc.sawProc(p)
}

func TestSecureConnectionsSyncWithSecretsFromFiles(t *testing.T) {
	start := time.Now()
	sec := testenv.SecureStack(t)
	s := newScenario(t, 2, nil)
	sc := &secrets{}
	t.Cleanup(func() { sc.check(t) })
	f := newSecureFiles(t, sec, sc)
	env := f.env(nil)

	// topics create and check over SASL_SSL
	extra := s.topic + "-sec"
	t.Cleanup(func() { testenv.DeleteTopics(t, s.brokers, extra) })
	if code := exitOf(t, s.start("topics-create", env, "topics", "create", extra), sc, time.Minute); code != 0 {
		t.Fatalf("topics create over SASL_SSL: exit %d", code)
	}
	if code := exitOf(t, s.start("topics-check", env, "topics", "check", extra), sc, time.Minute); code != 0 {
		t.Fatalf("topics check over SASL_SSL: exit %d", code)
	}
	// publish over SASL_SSL, read back over PLAINTEXT
	if code := exitOf(t, s.start("publish", env, "publish", "--entity", s.entity+"-sec", "--generate", "50"), sc, time.Minute); code != 0 {
		t.Fatalf("publish over SASL_SSL: exit %d", code)
	}
	if n := sumOffsets(testenv.EndOffsets(t, s.brokers, extra)); n != 50 {
		t.Fatalf("publish over SASL_SSL: %d records in %s, want 50", n, extra)
	}

	// run: a dataset and one poison record
	st := newStream(15, 150)
	msgs := st.gen(600, 3)
	poison := bson.NewObjectID()
	msgs = append(msgs, testenv.Msg{Key: []byte(poison.Hex()), Value: []byte(`{"payload": {"a": 1}`),
		Headers: map[string]string{"key": poison.Hex(), "traceId": "5ec0e000-0000-4000-8000-000000000001", "processedAt": st.at(st.next).Format(time.RFC3339Nano)}})
	testenv.Produce(t, s.brokers, s.topic, msgs)
	run := s.start("run", env, "run")
	s.waitCommitted(2*time.Minute, run)
	s.checkExact(st)
	if n := sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt)); n != 1 {
		t.Errorf("%d dead letters over SASL_SSL, want the 1 poison record", n)
	}
	if code, body := run.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d %q, want 200", code, body)
	}
	stopCleanly(t, run, sc)

	// import, MongoDB through the listener that requires a client certificate
	importDB := s.db + "_import"
	testenv.ThrowawayDatabase(t, s.uri, importDB)
	imp := s.start("import", f.env(map[string]string{"STATESYNC_MONGO_URI_FILE": f.mongoMTLS, "STATESYNC_MONGO_DATABASE": importDB,
		"STATESYNC_KAFKA_GROUP_ID": s.group + "-import"}), "import", "--allow-dead-letters")
	if code := exitOf(t, imp, sc, 2*time.Minute); code != 0 {
		t.Fatalf("import over SASL_SSL and MongoDB TLS with a client certificate: exit %d", code)
	}
	if n, err := s.mongo.Database(importDB).Collection(s.entity).CountDocuments(t.Context(), bson.D{}); err != nil || n != int64(st.live()) {
		t.Errorf("import: %d documents (%v), want %d", n, err, st.live())
	}

	// dlt replay, a dry run over SASL_SSL: the poison record's letters (run's and import's: one key)
	rep := s.start("dlt-replay", env, "dlt", "replay", "--dry-run")
	if code := exitOf(t, rep, sc, time.Minute); code != 0 || countPrefix(rep.stdout(), "would replay ") != 1 {
		t.Errorf("dlt replay --dry-run over SASL_SSL: exit %d, want 0 and 1 letter:\n%s", code, rep.stdout())
	}
	// and for real: the letter goes back to its origin topic through the SASL_SSL producer
	before := sumOffsets(testenv.EndOffsets(t, s.brokers, s.topic))
	if code := exitOf(t, s.start("dlt-replay-real", env, "dlt", "replay"), sc, time.Minute); code != 0 {
		t.Errorf("dlt replay over SASL_SSL: exit %d", code)
	}
	if after := sumOffsets(testenv.EndOffsets(t, s.brokers, s.topic)); after != before+1 {
		t.Errorf("dlt replay over SASL_SSL: origin topic grew by %d records, want 1", after-before)
	}
	// statesync config with the secrets in files
	if code := exitOf(t, s.start("config", env, "config"), sc, 30*time.Second); code != 0 {
		t.Errorf("statesync config: exit %d", code)
	}
	report(t, "FIGURES secure: %d records, %d keys, 1 poison, topics/publish/run/import/dlt replay (dry run and real)/config over SASL_SSL and TLS, %s",
		len(msgs), len(st.want), time.Since(start).Round(time.Second))
}

// refusal is one wrong credential or certificate, and what statesync must say about it.
type refusal struct {
	name string
	env  func(f *secureFiles) map[string]string
	want []string // in the one line that explains it
}

func TestSecureConnectionsRefusedFailClearlyAndSafely(t *testing.T) {
	sec := testenv.SecureStack(t)
	s := newScenario(t, 2, nil)
	sc := &secrets{}
	t.Cleanup(func() { sc.check(t) })
	f := newSecureFiles(t, sec, sc)
	st := newStream(16, 50)
	testenv.Produce(t, s.brokers, s.topic, st.gen(200, 0))
	dltEnd := sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt))

	wrongKafka := randomSecret(t)
	sc.add("a wrong Kafka password", wrongKafka)
	wrongKafkaFile := writeSecret(t, filepath.Join(f.dir, "wrong-kafka-password"), wrongKafka)
	wrongMongo := randomSecret(t)
	sc.add("a wrong MongoDB password", wrongMongo)
	ca := sec.File("ca.pem")

	cases := []refusal{
		{"wrong SASL password", func(f *secureFiles) map[string]string {
			return map[string]string{"STATESYNC_KAFKA_SASL_PASSWORD_FILE": wrongKafkaFile}
		}, []string{"Kafka " + sec.SASLBrokers + " refused authentication for user statesync (SASL/SCRAM-SHA-512)", "STATESYNC_KAFKA_SASL_PASSWORD_FILE"}},
		{"unknown user", func(f *secureFiles) map[string]string {
			return map[string]string{"STATESYNC_KAFKA_SASL_USERNAME": "nobody"}
		}, []string{"refused authentication for user nobody", "STATESYNC_KAFKA_SASL_USERNAME"}},
		{"untrusted broker certificate", func(f *secureFiles) map[string]string {
			return map[string]string{"STATESYNC_KAFKA_PROPERTIES": f.otherCAs}
		}, []string{"Kafka " + sec.SASLBrokers + ": TLS handshake failed", "signed by", "ssl.ca.location"}},
		{"expired broker certificate", func(f *secureFiles) map[string]string {
			return map[string]string{"STATESYNC_KAFKA_BROKERS": sec.ExpiredBrokers}
		}, []string{"Kafka " + sec.ExpiredBrokers + ": TLS handshake failed", "expired", "renew the broker's certificate"}},
		{"wrong MongoDB password", func(f *secureFiles) map[string]string {
			return map[string]string{"STATESYNC_MONGO_URI_FILE": writeSecret(t, filepath.Join(f.dir, "mongo-uri-wrong-password"),
				mongoURI(sec.MongoUser, wrongMongo, sec.MongoTLSHost, "tls=true&tlsCAFile="+ca))}
		}, []string{"MongoDB " + sec.MongoTLSHost + " refused authentication for user " + sec.MongoUser, "STATESYNC_MONGO_URI_FILE"}},
		{"MongoDB TLS required but no tls in the URI", func(f *secureFiles) map[string]string {
			return map[string]string{"STATESYNC_MONGO_URI_FILE": writeSecret(t, filepath.Join(f.dir, "mongo-uri-no-tls"),
				mongoURI(sec.MongoUser, f.mongoPassword, sec.MongoTLSHost, "appName=statesync"))}
		}, []string{"MongoDB " + sec.MongoTLSHost + " closed the connection", "add tls=true", "STATESYNC_MONGO_URI_FILE"}},
		{"client certificate refused", func(f *secureFiles) map[string]string {
			return map[string]string{"STATESYNC_MONGO_URI_FILE": writeSecret(t, filepath.Join(f.dir, "mongo-uri-other-client"),
				mongoURI(sec.MongoUser, f.mongoPassword, sec.MongoMTLSHost, "tls=true&tlsCAFile="+ca+"&tlsCertificateKeyFile="+f.otherPEM))}
		}, []string{"MongoDB " + sec.MongoMTLSHost + " refused the TLS client certificate", "STATESYNC_MONGO_URI_FILE"}},
	}
	// every case at once (one wait for all), each with its own group and database
	const watch = 10 * time.Second
	procs := make([]*proc, len(cases))
	for i, c := range cases {
		testenv.ThrowawayDatabase(t, s.uri, fmt.Sprintf("%s_refused_%d", s.db, i))
		procs[i] = s.start(fmt.Sprintf("refused-%d", i), f.env(mergeEnv(c.env(f), map[string]string{
			"STATESYNC_KAFKA_GROUP_ID": fmt.Sprintf("%s-refused-%d", s.group, i), "STATESYNC_MONGO_DATABASE": fmt.Sprintf("%s_refused_%d", s.db, i)})), "run")
	}
	time.Sleep(watch)
	for i, c := range cases {
		t.Run("run/"+c.name, func(t *testing.T) {
			p := procs[i]
			if !p.running() {
				t.Fatalf("%s: run exited (%v): it must wait, not ready, and not crash", c.name, p.exit)
			}
			code, body := p.get("/readyz")
			if code != http.StatusServiceUnavailable {
				t.Errorf("%s: /readyz %d %q, want 503", c.name, code, body)
			}
			if strings.HasPrefix(c.want[0], "Kafka") && !strings.Contains(body, c.want[0]) {
				t.Errorf("%s: /readyz says %q, want the refusal (%q)", c.name, strings.TrimSpace(body), c.want[0])
			}
			sc.sawProc(p)
			checkOneClearLine(t, c, p.stderr(), watch)
			if strings.HasPrefix(c.want[0], "MongoDB") && p.logCount(`"refused":"`) > 0 {
				t.Errorf("%s: Kafka refused the good credentials too: the MongoDB refusal was not tested on its own:\n%s", c.name, p.stderr())
			}
			if n, _ := s.mongo.Database(fmt.Sprintf("%s_refused_%d", s.db, i)).Collection(s.entity).CountDocuments(t.Context(), bson.D{}); n != 0 {
				t.Errorf("%s: %d documents written", c.name, n)
			}
			for part, off := range testenv.Committed(t, s.brokers, fmt.Sprintf("%s-refused-%d", s.group, i), s.topic) {
				if off >= 0 {
					t.Errorf("%s: committed offset %d on partition %d", c.name, off, part)
				}
			}
		})
	}
	// SIGTERM: a clean stop, even with writes that MongoDB refuses (they wait for the shutdown grace)
	for _, p := range procs {
		if p.running() {
			p.signal(syscall.SIGTERM)
		}
	}
	for i, p := range procs {
		code, err := p.wait(30 * time.Second)
		sc.sawProc(p)
		if err != nil || code != 0 {
			t.Errorf("%s: exit %d (%v) after SIGTERM, want 0", cases[i].name, code, err)
		}
	}
	if n := sumOffsets(testenv.EndOffsets(t, s.brokers, s.dlt)); n != dltEnd {
		t.Errorf("%d records dead-lettered while credentials were refused, want none", n-dltEnd)
	}

	// the commands that end: exit 5 (the brokers or MongoDB did not answer) with the same words
	t.Run("commands that end", func(t *testing.T) {
		for _, c := range []struct {
			name string
			refusal
			args []string
		}{
			{"topics check", cases[0], []string{"topics", "check", s.topic}},
			{"import", cases[4], []string{"import"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				p := s.start(strings.ReplaceAll(c.name, " ", "-"), f.env(mergeEnv(c.env(f), map[string]string{"STATESYNC_KAFKA_GROUP_ID": s.group + "-cmd"})), c.args...)
				code := exitOf(t, p, sc, time.Minute)
				if code != 5 {
					t.Errorf("%s with a %s: exit %d, want 5", c.name, c.refusal.name, code)
				}
				last := lastLine(p.stderr())
				for _, w := range c.want {
					if !strings.Contains(last, w) {
						t.Errorf("%s with a %s: the error %q does not say %q", c.name, c.refusal.name, last, w)
					}
				}
			})
		}
	})
}

func mergeEnv(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

// checkOneClearLine: the refusal is explained by one log line with every expected fragment (not
// repeated per client or retry), and the log is not flooded: no message repeats.
func checkOneClearLine(t *testing.T, c refusal, log string, over time.Duration) {
	t.Helper()
	lines := splitNonEmpty(log)
	var clear int
	var warnings []string
	times := map[string]int{}
	for _, l := range lines {
		var entry struct{ Level, Msg string }
		_ = json.Unmarshal([]byte(l), &entry)
		times[entry.Msg]++
		if entry.Level == "warn" || entry.Level == "error" {
			warnings = append(warnings, entry.Msg)
		}
		all := true
		for _, w := range c.want {
			if !strings.Contains(l, w) {
				all = false
			}
		}
		if all {
			clear++
		}
	}
	t.Logf("%s: %d log lines in %s, %d explain it; warnings and errors: %q", c.name, len(lines), over, clear, warnings)
	// MongoDB's condition repeats its line only every few minutes; a Kafka refusal is logged once
	// by the first client that meets it
	if clear != 1 {
		t.Errorf("%s: %d log lines say %q, want exactly 1:\n%s", c.name, clear, c.want, log)
	}
	// besides it, for MongoDB the write path's own condition line ("bulk writes to collection ...
	// fail; retried with backoff", the driver's words), and on a loaded machine a start check that
	// timed out before the first answer: each once
	for msg, n := range times {
		if n > 2 {
			t.Errorf("%s: %q logged %d times in %s: a flood:\n%s", c.name, msg, n, over, log)
		}
	}
	if len(warnings) > 6 || len(lines) > 25 {
		t.Errorf("%s: %d lines (%d warnings/errors) in %s: a flood:\n%s", c.name, len(lines), len(warnings), over, log)
	}
}

// TestSecretRotationNeedsARestart: the SCRAM password changes (the broker, then the mounted file)
// while run runs. Kafka checks a password when a connection is made: the running process goes on
// over the connections it has; librdkafka was given the password at start and never reads the file
// again, so a new connection after the change would be refused. A restart reads the new file and
// syncs everything, nothing lost.
func TestSecretRotationNeedsARestart(t *testing.T) {
	sec := testenv.SecureStack(t)
	s := newScenario(t, 2, nil)
	sc := &secrets{}
	t.Cleanup(func() { sc.check(t) })
	f := newSecureFiles(t, sec, sc)
	user := "rotate-" + s.group
	old, rotated := randomSecret(t), randomSecret(t)
	sc.add("the password before rotation", old)
	sc.add("the password after rotation", rotated)
	testenv.SetScramPassword(t, s.brokers, user, old)
	t.Cleanup(func() {
		if err := testenv.DeleteScramUser(s.brokers, user); err != nil {
			t.Log(err)
		}
	})
	pwFile := writeSecret(t, filepath.Join(f.dir, "rotating-password"), old)
	oldCopy := writeSecret(t, filepath.Join(f.dir, "old-password"), old)
	env := f.env(map[string]string{"STATESYNC_KAFKA_SASL_USERNAME": user, "STATESYNC_KAFKA_SASL_PASSWORD_FILE": pwFile})

	st := newStream(17, 120)
	testenv.Produce(t, s.brokers, s.topic, st.gen(300, 3))
	first := s.start("run-before", env, "run")
	s.waitCommitted(time.Minute, first)

	// rotate: the broker first, then the file (as an operator would, and kubelet renames the file)
	testenv.SetScramPassword(t, s.brokers, user, rotated)
	writeSecret(t, pwFile, rotated)
	testenv.Produce(t, s.brokers, s.topic, st.gen(300, 3))
	s.waitCommitted(time.Minute, first)
	t.Logf("after the rotation the running process synced the new records over the connections it had (%d refusal lines)",
		first.logCount("refused authentication"))
	if code, body := first.get("/readyz"); code != http.StatusOK {
		t.Errorf("running process after the rotation: /readyz %d %q", code, body)
	}
	stopCleanly(t, first, sc)

	// records while it is down; a process still given the old password is refused, clearly;
	// one restarted with the (new) file syncs everything
	testenv.Produce(t, s.brokers, s.topic, st.gen(200, 3))
	stale := s.start("run-old-password", mergeEnv(env, map[string]string{"STATESYNC_KAFKA_SASL_PASSWORD_FILE": oldCopy,
		"STATESYNC_KAFKA_GROUP_ID": s.group + "-stale"}), "run")
	second := s.start("run-after", env, "run")
	s.waitCommitted(time.Minute, second)
	s.checkExact(st)
	testenv.Eventually(t, 15*time.Second, "the process with the old password says it was refused", func() bool {
		return stale.logCount("refused authentication for user "+user, "STATESYNC_KAFKA_SASL_PASSWORD_FILE") == 1
	})
	if code, _ := stale.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("process with the old password: /readyz %d, want 503", code)
	}
	for _, p := range []*proc{stale, second} {
		stopCleanly(t, p, sc)
	}
	report(t, "FIGURES rotation: 800 records, %d keys, password rotated while running: synced on; restarted with the new file: exact", len(st.want))
}

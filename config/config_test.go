package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func minimal() map[string]string {
	return map[string]string{
		"STATESYNC_KAFKA_BROKERS":  "127.0.0.1:9092",
		"STATESYNC_MONGO_URI":      "mongodb://127.0.0.1:27017",
		"STATESYNC_MONGO_DATABASE": "codr",
	}
}

func TestDefaultsNeedOnlyBrokersURIAndDatabase(t *testing.T) {
	c, err := Parse(minimal())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"group id", c.KafkaGroupID, "statesync"},
		{"topics", c.Topics, `^codr\.state\..+`},
		{"dlt", c.DLTTopic, "codr.svc.mongo.dlt"},
		{"http", c.HTTPAddr, ":8080"},
		{"write concern", c.MongoWriteConcern, "majority"},
		{"batch docs", c.BatchMaxDocs, 1000},
		{"batch wait", c.BatchMaxWait, 200 * time.Millisecond},
		{"sync field", c.SyncField, "_sync"},
		{"sync metadata", c.SyncMetadata, true},
		{"stale guard", c.StaleGuard, true},
		{"grace", c.ShutdownGrace, 30 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestEveryBadVariableIsReportedAtOnce(t *testing.T) {
	env := map[string]string{
		"STATESYNC_TOPICS":              "^codr.state.(",
		"STATESYNC_BATCH_MAX_DOCS":      "0",
		"STATESYNC_WRITE_CONCURRENCY":   "-1",
		"STATESYNC_BATCH_MAX_WAIT":      "soon",
		"STATESYNC_MONGO_WRITE_CONCERN": "most",
		"STATESYNC_LOG_LEVEL":           "loud",
		"STATESYNC_LOG_FORMAT":          "xml",
		"STATESYNC_SYNC_FIELD":          "$meta",
		"STATESYNC_KAFKA_PROPERTIES":    "group.id=other",
		"STATESYNC_COLLECTIONS":         "user=bad$name",
	}
	_, err := Parse(env)
	if err == nil {
		t.Fatal("Parse accepted a bad configuration")
	}
	want := []string{
		"STATESYNC_KAFKA_BROKERS is required",
		"STATESYNC_MONGO_URI is required",
		"STATESYNC_MONGO_DATABASE is required",
		"STATESYNC_TOPICS",
		"STATESYNC_BATCH_MAX_DOCS=0",
		"STATESYNC_WRITE_CONCURRENCY=-1",
		"STATESYNC_BATCH_MAX_WAIT",
		"STATESYNC_MONGO_WRITE_CONCERN=\"most\"",
		"STATESYNC_LOG_LEVEL=\"loud\"",
		"STATESYNC_LOG_FORMAT=\"xml\"",
		"STATESYNC_SYNC_FIELD=\"$meta\"",
		"KAFKA_PROPERTIES sets group.id",
		"STATESYNC_COLLECTIONS",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
}

func TestMongoURIMustBeAConnectionString(t *testing.T) {
	env := minimal()
	env["STATESYNC_MONGO_URI"] = "127.0.0.1:27017"
	if _, err := Parse(env); err == nil || !strings.Contains(err.Error(), "mongodb://") {
		t.Fatalf("err = %v, want a hint about mongodb://", err)
	}
}

func TestSecretsAreReadFromFiles(t *testing.T) {
	dir := t.TempDir()
	uriFile := filepath.Join(dir, "uri")
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(uriFile, []byte("mongodb://u:s3cret@db:27017\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := minimal()
	delete(env, "STATESYNC_MONGO_URI")
	env["STATESYNC_MONGO_URI_FILE"] = uriFile
	env["STATESYNC_KAFKA_SASL_PASSWORD_FILE"] = pwFile
	env["STATESYNC_KAFKA_SASL_USERNAME"] = "svc"
	c, err := Parse(env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.MongoURI != "mongodb://u:s3cret@db:27017" {
		t.Errorf("MongoURI = %q", c.MongoURI)
	}
	kc := c.KafkaConfig()
	if kc["sasl.password"] != "hunter2" || kc["sasl.username"] != "svc" {
		t.Errorf("KafkaConfig = %v", kc)
	}
	masked := strings.Join(c.Masked(), "\n")
	for _, secret := range []string{"s3cret", "hunter2"} {
		if strings.Contains(masked, secret) {
			t.Errorf("Masked leaks %q:\n%s", secret, masked)
		}
	}
	if !strings.Contains(masked, "STATESYNC_MONGO_URI=mongodb://u:****@db:27017") {
		t.Errorf("Masked URI not shown with the password hidden:\n%s", masked)
	}
}

func TestBothSecretAndFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "uri")
	if err := os.WriteFile(f, []byte("mongodb://db"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := minimal()
	env["STATESYNC_MONGO_URI_FILE"] = f
	if _, err := Parse(env); err == nil || !strings.Contains(err.Error(), "keep one") {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingSecretFileIsReported(t *testing.T) {
	env := minimal()
	env["STATESYNC_KAFKA_SASL_PASSWORD_FILE"] = "/nonexistent/pw"
	if _, err := Parse(env); err == nil || !strings.Contains(err.Error(), "/nonexistent/pw") {
		t.Fatalf("err = %v", err)
	}
}

func TestTopicSelection(t *testing.T) {
	cases := []struct {
		name, topics string
		in, out      []string
	}{
		{"the default regex selects state topics only", `^codr\.state\..+`, []string{"codr.state.user", "codr.state.user-preference"}, []string{"codr.event.user", "codr.svc.mongo.dlt"}},
		{"a list selects exactly its names", "codr.state.user, codr.state.org", []string{"codr.state.user", "codr.state.org"}, []string{"codr.state.user-preference"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := minimal()
			env["STATESYNC_TOPICS"] = tc.topics
			c, err := Parse(env)
			if err != nil {
				t.Fatal(err)
			}
			sel, _ := c.TopicSelection()
			for _, tp := range tc.in {
				if !sel.Matches(tp) {
					t.Errorf("%s not selected", tp)
				}
			}
			for _, tp := range tc.out {
				if sel.Matches(tp) {
					t.Errorf("%s selected", tp)
				}
			}
		})
	}
}

func TestCollectionDefaultsToTheEntityName(t *testing.T) {
	env := minimal()
	env["STATESYNC_COLLECTIONS"] = "user-preference=prefs"
	c, err := Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{
		"codr.state.user":            "user",
		"codr.state.user-preference": "prefs",
	} {
		if got := c.Collection(topic); got != want {
			t.Errorf("Collection(%q) = %q, want %q", topic, got, want)
		}
	}
}

func TestKafkaPropertiesPassThrough(t *testing.T) {
	env := minimal()
	env["STATESYNC_KAFKA_PROPERTIES"] = "security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-512;ssl.key.password=x"
	c, err := Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	kc := c.KafkaConfig()
	if kc["security.protocol"] != "SASL_SSL" || kc["sasl.mechanism"] != "SCRAM-SHA-512" {
		t.Errorf("KafkaConfig = %v", kc)
	}
	if m := strings.Join(c.Masked(), "\n"); !strings.Contains(m, "ssl.key.password=****") {
		t.Errorf("password property not masked:\n%s", m)
	}
}

// The README's configuration table is the users' reference: every variable
// must be in it.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(minimal())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range c.Masked() {
		name, _, _ := strings.Cut(line, "=")
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

// The dead-letter topic is never consumed: a topic list naming it is a
// configuration error that says what to change; a regex matching it is
// fine (the consumer skips it).
func TestATopicListNamingTheDeadLetterTopicIsRejected(t *testing.T) {
	env := minimal()
	env["STATESYNC_TOPICS"] = "codr.state.loop,codr.svc.advloop.dlt"
	env["STATESYNC_DLT_TOPIC"] = "codr.svc.advloop.dlt"
	_, err := Parse(env)
	if err == nil {
		t.Fatal("Parse accepted a topic list that names the dead-letter topic")
	}
	for _, w := range []string{"STATESYNC_TOPICS", "codr.svc.advloop.dlt", "STATESYNC_DLT_TOPIC", "remove it from STATESYNC_TOPICS"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}

	for _, topics := range []string{`^codr\.(state\.loop|svc\.advloop\.dlt)$`, `^codr\..+`} {
		env["STATESYNC_TOPICS"] = topics
		if _, err := Parse(env); err != nil {
			t.Errorf("TOPICS=%s: a regex that matches the dead-letter topic is valid (the consumer skips it): %v", topics, err)
		}
	}
}

func TestFutureSkewIsAPositiveDurationShownByConfig(t *testing.T) {
	c, err := Parse(minimal())
	if err != nil {
		t.Fatal(err)
	}
	if c.FutureSkew != 5*time.Minute {
		t.Errorf("FutureSkew = %s, want 5m by default", c.FutureSkew)
	}
	if m := strings.Join(c.Masked(), "\n"); !strings.Contains(m, "STATESYNC_FUTURE_SKEW=5m0s") {
		t.Errorf("statesync config does not show FUTURE_SKEW:\n%s", m)
	}
	for _, bad := range []string{"0s", "-1m", "soon"} {
		env := minimal()
		env["STATESYNC_FUTURE_SKEW"] = bad
		if _, err := Parse(env); err == nil || !strings.Contains(err.Error(), "STATESYNC_FUTURE_SKEW") {
			t.Errorf("FUTURE_SKEW=%s: err = %v, want it reported", bad, err)
		}
	}
}

package config

import (
	"errors"
	"fmt"
	"net/url"
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

// The README's configuration table is the users' reference: it is the
// table generated from the struct tags (statesync env --markdown), verbatim.
func TestREADMEConfigurationTableIsTheGeneratedReference(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := ReferenceMarkdown()
	if !strings.Contains(string(readme), want) {
		t.Errorf("README.md's configuration table differs from the struct tags: replace it with the output of `statesync env --markdown`:\n%s", want)
	}
	for _, v := range Vars() {
		if v.Desc == "" {
			t.Errorf("%s has no desc tag", v.Name)
		}
		if strings.Count(v.Desc, "'")%2 != 0 {
			t.Errorf("%s: desc has an odd number of ' (they quote code): %s", v.Name, v.Desc)
		}
	}
	for _, line := range mustParse(t, minimal()).Masked() {
		name, _, _ := strings.Cut(line, "=")
		if !strings.Contains(want, "`"+name+"`") {
			t.Errorf("statesync config shows %s, which the reference does not document", name)
		}
	}
}

func mustParse(t *testing.T, env map[string]string) Config {
	t.Helper()
	c, err := Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Each configuration error names its variable, once, says what to change,
// and never quotes a value that could be secret.
func TestEachConfigurationErrorNamesItsVariableOnce(t *testing.T) {
	cases := []struct {
		name, variable, value string
		want                  []string // in the one problem about variable
		never                 string   // must not appear anywhere
	}{
		{"a duration that does not parse is one error, not a second about 0s", "BATCH_MAX_WAIT", "abc", []string{`STATESYNC_BATCH_MAX_WAIT="abc" is not a duration`, "200ms"}, "=0s"},
		{"a number that does not parse", "BATCH_MAX_DOCS", "many", []string{`STATESYNC_BATCH_MAX_DOCS="many" is not a whole number`}, "must be at least 1"},
		{"a bool that does not parse", "SYNC_METADATA", "yes please", []string{`STATESYNC_SYNC_METADATA="yes please": use true or false`}, "STALE_GUARD"},
		{"a property list entry without = never echoes the entry", "KAFKA_PROPERTIES", "security.protocol=SSL;sasl.password:KP4ss", []string{"STATESYNC_KAFKA_PROPERTIES: entry 2 of 2 has no =", "key=value;key=value"}, "KP4ss"},
		{"a trailing separator is named", "KAFKA_PROPERTIES", "security.protocol=SSL;", []string{"entry 2 of 2 is empty"}, ""},
		{"a collection entry without = is quoted (not secret)", "COLLECTIONS", "user", []string{`STATESYNC_COLLECTIONS: entry 1 of 1 ("user") has no =`}, ""},
		{"a URI without the scheme never echoes the URI", "MONGO_URI", "u:S3cretPW@db:27017", []string{"STATESYNC_MONGO_URI must start with mongodb://"}, "S3cretPW"},
		{"a bad log level", "LOG_LEVEL", "loud", []string{`STATESYNC_LOG_LEVEL="loud": use debug, info, warn or error`}, ""},
		{"a negative duration", "SHUTDOWN_GRACE", "-5s", []string{"STATESYNC_SHUTDOWN_GRACE=-5s: must be a positive duration"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := minimal()
			env[Prefix+tc.variable] = tc.value
			_, err := Parse(env)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a configuration error", err)
			}
			var about []string
			for _, p := range ce.List {
				if strings.Contains(p.Msg, Prefix+tc.variable) {
					about = append(about, p.Msg)
					if p.Var != Prefix+tc.variable {
						t.Errorf("problem %q is filed under %s", p.Msg, p.Var)
					}
				}
			}
			if len(about) != 1 {
				t.Fatalf("%d problems name %s, want 1:\n%s", len(about), tc.variable, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(about[0], w) {
					t.Errorf("problem %q does not say %q", about[0], w)
				}
			}
			if tc.never != "" && strings.Contains(err.Error(), tc.never) {
				t.Errorf("error says %q:\n%s", tc.never, err)
			}
		})
	}
}

// A misspelled variable is not ignored: the error names the closest known
// one. Other unknown STATESYNC_* variables are warnings; the tooling's
// (local stack, tests) are neither.
func TestUnknownVariablesNameTheClosestKnownOne(t *testing.T) {
	env := minimal()
	delete(env, "STATESYNC_KAFKA_BROKERS")
	env["STATESYNC_KAFKA_BROKER"] = "kafka:9092"
	env["STATESYNC_BATCH_MAX_WAITS"] = "1s"
	env["STATESYNC_SOMETHING_ELSE_ENTIRELY"] = "x"
	env["STATESYNC_TEST_KAFKA_BROKERS"] = "127.0.0.1:19092"
	env["STATESYNC_STACK_DIR"] = "/tmp/x"
	env["STATESYNC_POD_NAME"] = "statesync-0" // the chart's, for group.instance.id
	c, err := Parse(env)
	if err == nil {
		t.Fatal("Parse accepted a misspelled variable")
	}
	for _, w := range []string{
		"STATESYNC_KAFKA_BROKER is not a statesync variable: did you mean STATESYNC_KAFKA_BROKERS?",
		"STATESYNC_BATCH_MAX_WAITS is not a statesync variable: did you mean STATESYNC_BATCH_MAX_WAIT?",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
	for _, never := range []string{"SOMETHING_ELSE", "TEST_KAFKA", "STACK_DIR", "POD_NAME"} {
		if strings.Contains(err.Error(), never) {
			t.Errorf("error mentions %s:\n%v", never, err)
		}
	}
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "STATESYNC_SOMETHING_ELSE_ENTIRELY is not a statesync variable and is ignored") || strings.Contains(w, "TEST_") || strings.Contains(w, "POD_NAME") {
		t.Errorf("warnings = %q", w)
	}
}

// Every secret form is masked by statesync config and removed by Redact
// from any text (errors of the drivers quoting the value).
func TestEverySecretFormIsMasked(t *testing.T) {
	cases := []struct {
		name   string
		env    map[string]string
		secret string
	}{
		{"a URI password", map[string]string{"STATESYNC_MONGO_URI": "mongodb://u:S3cretPW@db:27017/x"}, "S3cretPW"},
		{"a URI password holding an unescaped @", map[string]string{"STATESYNC_MONGO_URI": "mongodb://u:S3cr@tPW@db:27017"}, "tPW"},
		{"the head of a URI password holding an unescaped @", map[string]string{"STATESYNC_MONGO_URI": "mongodb://u:S3cr@tPW@db:27017"}, "S3cr"},
		{"a URI password percent-encoded", map[string]string{"STATESYNC_MONGO_URI": "mongodb://u:p%40ssW0rd@db:27017"}, "ssW0rd"},
		{"an AWS session token in the URI", map[string]string{"STATESYNC_MONGO_URI": "mongodb+srv://AKIA:SECRETKEY@cluster.example.net/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:FQoGZXIvYXdzEtoken"}, "FQoGZXIvYXdzEtoken"},
		{"a TLS key password in the URI", map[string]string{"STATESYNC_MONGO_URI": "mongodb://db/?tls=true&tlsCertificateKeyFilePassword=KeyPassw0rd"}, "KeyPassw0rd"},
		{"a URI read from a file", map[string]string{"STATESYNC_MONGO_URI": "", "STATESYNC_MONGO_URI_FILE": "@file:mongodb://u:FileSecret1@db"}, "FileSecret1"},
		{"the SASL password", map[string]string{"STATESYNC_KAFKA_SASL_PASSWORD": "SaslPassw0rd"}, "SaslPassw0rd"},
		{"sasl.password as a property", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "sasl.password=KP4ssword"}, "KP4ssword"},
		{"an OAuth client secret", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "sasl.oauthbearer.client.secret=OauthS3cret"}, "OauthS3cret"},
		{"the OAuth configuration", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "sasl.oauthbearer.config=principal=svc scope=x token=UnsecJwt"}, "UnsecJwt"},
		{"a private key in PEM", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "ssl.key.pem=-----BEGIN PRIVATE KEY-----MIIEvQIBADANBg"}, "MIIEvQIBADANBg"},
		{"a key password", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "ssl.key.password=KeyP4ss"}, "KeyP4ss"},
		{"a keystore password", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "ssl.keystore.password=StoreP4ss"}, "StoreP4ss"},
		{"a SASL JAAS-like config", map[string]string{"STATESYNC_KAFKA_PROPERTIES": "sasl.jaas.config=user pass=JaasS3cret"}, "JaasS3cret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := minimal()
			for k, v := range tc.env {
				env[k] = v
			}
			if f, ok := strings.CutPrefix(env["STATESYNC_MONGO_URI_FILE"], "@file:"); ok {
				path := filepath.Join(t.TempDir(), "uri")
				if err := os.WriteFile(path, []byte(f), 0o600); err != nil {
					t.Fatal(err)
				}
				env["STATESYNC_MONGO_URI_FILE"] = path
				delete(env, "STATESYNC_MONGO_URI")
			}
			c, err := Parse(env)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			masked := strings.Join(c.Masked(), "\n")
			if strings.Contains(masked, tc.secret) {
				t.Errorf("statesync config shows %q:\n%s", tc.secret, masked)
			}
			if !strings.Contains(masked, "****") {
				t.Errorf("nothing masked:\n%s", masked)
			}
			// what a driver's error may quote: the URI, a property's value
			quoted := fmt.Sprintf("error parsing %q: %v (%s)", c.MongoURI, tc.env, c.KafkaConfig())
			if u, err := url.PathUnescape(c.MongoURI); err == nil {
				quoted += " " + u
			}
			if r := c.Redact(quoted); strings.Contains(r, tc.secret) {
				t.Errorf("Redact leaves %q in %s", tc.secret, r)
			}
		})
	}
	t.Run("what is not secret stays readable", func(t *testing.T) {
		env := minimal()
		env["STATESYNC_MONGO_URI"] = "mongodb://svc:pw123@db-0:27017,db-1:27017/codr?replicaSet=rs0&authSource=admin"
		env["STATESYNC_KAFKA_PROPERTIES"] = "security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-512;ssl.ca.location=/etc/ca.pem"
		env["STATESYNC_KAFKA_SASL_USERNAME"] = "svc"
		masked := strings.Join(mustParse(t, env).Masked(), "\n")
		for _, w := range []string{
			"STATESYNC_MONGO_URI=mongodb://svc:****@db-0:27017,db-1:27017/codr?replicaSet=rs0&authSource=admin",
			"STATESYNC_KAFKA_PROPERTIES=sasl.mechanism=SCRAM-SHA-512;security.protocol=SASL_SSL;ssl.ca.location=/etc/ca.pem",
			"STATESYNC_KAFKA_SASL_USERNAME=svc",
		} {
			if !strings.Contains(masked, w) {
				t.Errorf("statesync config does not show %q:\n%s", w, masked)
			}
		}
	})
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

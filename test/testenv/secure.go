package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Secure is the local stack's secure listeners (scripts/stack, docs/local-stack.md "Secure
// listeners"): Kafka SASL_SSL with SCRAM-SHA-512, a second SASL_SSL listener whose certificate has
// expired, FerretDB with TLS, and FerretDB with TLS that requires a client certificate. Dir holds
// the CA, certificates, keys and passwords the stack made (see File).
type Secure struct {
	Dir            string // STATESYNC_TEST_SECURE_DIR
	SASLBrokers    string // STATESYNC_TEST_KAFKA_SASL_BROKERS: SASL_SSL, certificate signed by ca.pem
	ExpiredBrokers string // STATESYNC_TEST_KAFKA_EXPIRED_BROKERS: SASL_SSL, expired certificate
	MongoTLSHost   string // STATESYNC_TEST_MONGO_TLS_HOST: TLS, password (PLAIN) for MongoUser
	MongoMTLSHost  string // STATESYNC_TEST_MONGO_MTLS_HOST: TLS with a client certificate signed by ca.pem
	MongoUser      string // STATESYNC_TEST_MONGO_USER: its password is File("mongo-<user>.password")
}

// SecureStack returns the secure listeners of the local stack; without them the test skips
// (fails with CI=true), as Kafka and Mongo do.
func SecureStack(t testing.TB) Secure {
	t.Helper()
	s := Secure{Dir: os.Getenv("STATESYNC_TEST_SECURE_DIR"), SASLBrokers: os.Getenv("STATESYNC_TEST_KAFKA_SASL_BROKERS"),
		ExpiredBrokers: os.Getenv("STATESYNC_TEST_KAFKA_EXPIRED_BROKERS"), MongoTLSHost: os.Getenv("STATESYNC_TEST_MONGO_TLS_HOST"),
		MongoMTLSHost: os.Getenv("STATESYNC_TEST_MONGO_MTLS_HOST"), MongoUser: os.Getenv("STATESYNC_TEST_MONGO_USER")}
	missing := ""
	if s.Dir == "" || s.SASLBrokers == "" || s.ExpiredBrokers == "" || s.MongoTLSHost == "" || s.MongoMTLSHost == "" || s.MongoUser == "" {
		missing = "the STATESYNC_TEST_SECURE_DIR, _KAFKA_SASL_BROKERS, _KAFKA_EXPIRED_BROKERS, _MONGO_TLS_HOST, _MONGO_MTLS_HOST and _MONGO_USER variables are not all set"
	} else if _, err := os.Stat(filepath.Join(s.Dir, "ca.pem")); err != nil {
		missing = err.Error()
	}
	if missing != "" {
		msg := "testenv: secure listeners: " + missing + ": " + howToStart
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return s
}

// File is the path of one of the stack's secure files: ca.pem, other-ca.pem (a CA that signed
// nothing the stack serves), server.pem/.key, expired.pem, client.pem/.key and other-client.pem/.key
// (client certificates signed by ca.pem and other-ca.pem), kafka-<user>.password,
// mongo-<user>.password.
func (s Secure) File(name string) string { return filepath.Join(s.Dir, name) }

// Read returns a secure file's content without a trailing newline.
func (s Secure) Read(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(s.File(name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(string(b), "\n")
}

// SetScramPassword creates or changes the SCRAM-SHA-512 credential of user through the admin API
// of brokers (the stack's PLAINTEXT listener: no authorizer, so no credentials needed).
func SetScramPassword(t testing.TB, brokers, user, password string) {
	t.Helper()
	a, ctx, done, err := admin(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	res, err := a.AlterUserScramCredentials(ctx, []kafka.UserScramCredentialUpsertion{{User: user,
		ScramCredentialInfo: kafka.ScramCredentialInfo{Mechanism: kafka.ScramMechanismSHA512, Iterations: 4096},
		Password:            []byte(password)}}, nil)
	if err != nil {
		t.Fatalf("set the SCRAM password of %s: %v", user, err)
	}
	for u, e := range res.Errors {
		if e.Code() != kafka.ErrNoError {
			t.Fatalf("set the SCRAM password of %s: %v", u, e)
		}
	}
}

// DeleteScramUser removes user's SCRAM-SHA-512 credential, ignoring errors (cleanup).
func DeleteScramUser(brokers, user string) error {
	a, ctx, done, err := admin(brokers)
	if err != nil {
		return err
	}
	defer done()
	_, err = a.AlterUserScramCredentials(ctx, nil, []kafka.UserScramCredentialDeletion{{User: user, Mechanism: kafka.ScramMechanismSHA512}})
	if err != nil {
		return fmt.Errorf("delete the SCRAM user %s: %w", user, err)
	}
	return nil
}

// Package testenv gives integration and end-to-end tests the Kafka and MongoDB endpoints to run
// against, in this order:
//
//  1. STATESYNC_TEST_KAFKA_BROKERS / STATESYNC_TEST_MONGO_URI, when set (CI and the local stack:
//     scripts/stack up, then eval "$(scripts/stack env)"; `make test` does both);
//  2. containers started with testcontainers-go, when a Docker engine is reachable (once per test
//     binary, removed when the process exits);
//  3. otherwise the test fails when CI=true, and skips itself everywhere else.
package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	tcmongodb "github.com/testcontainers/testcontainers-go/modules/mongodb"
)

const (
	// KafkaEnv names the variable holding the bootstrap brokers, comma-separated.
	KafkaEnv = "STATESYNC_TEST_KAFKA_BROKERS"
	// MongoEnv names the variable holding the MongoDB connection string.
	MongoEnv = "STATESYNC_TEST_MONGO_URI"

	// Images used on the testcontainers path.
	KafkaImage = "apache/kafka-native:4.1.1"
	MongoImage = "mongo:7.0"

	howToStart = `run "scripts/stack up" then eval "$(scripts/stack env)", or run "make test"`

	containerStartTimeout = 3 * time.Minute
)

// Kafka returns the bootstrap brokers of a Kafka cluster for the test.
func Kafka(t testing.TB) string {
	t.Helper()
	return endpoint(t, "kafka", KafkaEnv, &kafkaContainer)
}

// Mongo returns the connection string of a MongoDB-wire server for the test. On the local stack
// this is FerretDB 1.x on PostgreSQL: see docs/local-stack.md for what it does not support.
func Mongo(t testing.TB) string {
	t.Helper()
	return endpoint(t, "mongo", MongoEnv, &mongoContainer)
}

func endpoint(t testing.TB, name, env string, c *lazyContainer) string {
	t.Helper()
	if v := strings.TrimSpace(os.Getenv(env)); v != "" {
		t.Logf("testenv: %s from %s=%s", name, env, v)
		return v
	}
	if dockerAvailable() {
		v, err := c.get()
		if err != nil {
			t.Fatalf("testenv: %s: %s is not set and starting a container failed: %v", name, env, err)
		}
		t.Logf("testenv: %s from a testcontainers container: %s", name, v)
		return v
	}
	msg := fmt.Sprintf("testenv: %s: %s is not set and no Docker engine is reachable: %s", name, env, howToStart)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

var (
	dockerOnce sync.Once
	dockerOK   bool
)

// dockerAvailable reports whether a Docker engine answers; checked once per process.
func dockerAvailable() bool {
	dockerOnce.Do(func() {
		defer func() {
			// testcontainers panics on some environments without a socket; that means "no".
			if recover() != nil {
				dockerOK = false
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			return
		}
		defer cli.Close()
		_, err = cli.Ping(ctx)
		dockerOK = err == nil
	})
	return dockerOK
}

// lazyContainer starts its container once per test binary. Ryuk (testcontainers' reaper) removes
// it when the process exits, however it exits; Terminate is the best-effort path when Ryuk is off.
type lazyContainer struct {
	once     sync.Once
	start    func(ctx context.Context) (testcontainers.Container, string, error)
	endpoint string
	err      error
}

func (c *lazyContainer) get() (string, error) {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), containerStartTimeout)
		defer cancel()
		var ctr testcontainers.Container
		ctr, c.endpoint, c.err = c.start(ctx)
		if ctr != nil {
			registerCleanup(ctr)
		}
	})
	return c.endpoint, c.err
}

var kafkaContainer = lazyContainer{start: func(ctx context.Context) (testcontainers.Container, string, error) {
	ctr, err := tckafka.Run(ctx, KafkaImage, tckafka.WithClusterID("statesync-test"),
		testcontainers.WithEnv(map[string]string{
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
			"KAFKA_MESSAGE_MAX_BYTES":                        "20971520",
			"KAFKA_REPLICA_FETCH_MAX_BYTES":                  "20971520",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		}))
	if err != nil {
		return ctr, "", fmt.Errorf("start %s: %w", KafkaImage, err)
	}
	brokers, err := ctr.Brokers(ctx)
	if err != nil {
		return ctr, "", fmt.Errorf("kafka container brokers: %w", err)
	}
	return ctr, strings.Join(brokers, ","), nil
}}

var mongoContainer = lazyContainer{start: func(ctx context.Context) (testcontainers.Container, string, error) {
	ctr, err := tcmongodb.Run(ctx, MongoImage)
	if err != nil {
		return ctr, "", fmt.Errorf("start %s: %w", MongoImage, err)
	}
	uri, err := ctr.ConnectionString(ctx)
	if err != nil {
		return ctr, "", fmt.Errorf("mongodb container connection string: %w", err)
	}
	return ctr, uri, nil
}}

var (
	cleanupMu  sync.Mutex
	containers []testcontainers.Container
)

func registerCleanup(c testcontainers.Container) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	containers = append(containers, c)
}

// Terminate stops the containers this package started. Call it from TestMain after m.Run when
// Ryuk is disabled (TESTCONTAINERS_RYUK_DISABLED=true); otherwise Ryuk removes them on exit.
func Terminate() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	for _, c := range containers {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = testcontainers.TerminateContainer(c, testcontainers.StopContext(ctx))
		cancel()
	}
	containers = nil
}

package main

import (
	"testing"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/config"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/sink"
)

// A default lives in the package that applies it. config's envDefault tags
// stay literal (statesync env and the README's table are generated from
// them, and config depends on nothing of statesync's), so this test keeps
// each equal to its package's constant.
func TestEachDefaultOfTheConfigurationIsItsPackagesDefault(t *testing.T) {
	cfg, err := config.Parse(map[string]string{
		config.Prefix + "KAFKA_BROKERS":  "127.0.0.1:1",
		config.Prefix + "MONGO_URI":      "mongodb://127.0.0.1:1/",
		config.Prefix + "MONGO_DATABASE": "d",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		variable          string
		config, inPackage any
	}{
		{"BATCH_MAX_DOCS", cfg.BatchMaxDocs, batch.DefaultMaxDocs},
		{"BATCH_MAX_BYTES", cfg.BatchMaxBytes, batch.DefaultMaxBytes},
		{"WRITE_CONCURRENCY", cfg.WriteConcurrency, offsets.DefaultConcurrency},
		{"SHUTDOWN_GRACE", cfg.ShutdownGrace, offsets.DefaultShutdownGrace},
		{"MONGO_WRITE_CONCERN", cfg.MongoWriteConcern, sink.DefaultWriteConcern},
		{"MONGO_TIMEOUT", cfg.MongoTimeout, sink.DefaultTimeout},
		{"RETRY_MAX_BACKOFF", cfg.RetryMaxBackoff, sink.DefaultMaxBackoff},
		{"UNWRITABLE_AFTER", cfg.UnwritableAfter, sink.DefaultUnwritableAfter},
	}
	for _, tt := range tests {
		t.Run(config.Prefix+tt.variable+" defaults to its package's constant", func(t *testing.T) {
			if tt.config != tt.inPackage {
				t.Errorf("%s%s defaults to %v, its package to %v: change the envDefault tag in config/config.go", config.Prefix, tt.variable, tt.config, tt.inPackage)
			}
		})
	}
}

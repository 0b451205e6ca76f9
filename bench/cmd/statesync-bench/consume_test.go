package main

import (
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// The consume-only ceiling reads with the import's consumer settings
// (offsets.ConsumerConfig), plus what the bench passes through.
func TestImportPropsAreTheImportsConsumerSettings(t *testing.T) {
	cm := importProps("b:9092", "g", "fetch.wait.max.ms=7; queued.max.messages.kbytes = 1024")
	for k, want := range map[string]kafka.ConfigValue{
		"bootstrap.servers":                  "b:9092",
		"group.id":                           "g",
		"enable.partition.eof":               true, // the import stops at the end offsets
		"enable.auto.offset.store":           false,
		"partition.assignment.strategy":      "cooperative-sticky",
		"topic.metadata.refresh.interval.ms": "30000",
		"fetch.queue.backoff.ms":             "20",
		"fetch.wait.max.ms":                  "7",    // passed through
		"queued.max.messages.kbytes":         "1024", // passed through, over statesync's default
	} {
		if got := cm[k]; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
}

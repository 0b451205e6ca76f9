package batch

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/codr/statesync/dataset"
	"github.com/codr/statesync/record"
)

// BenchmarkDecodeBatch measures the per-record cost of the pipeline's pure
// part: decode a ~1 KiB entity (record-only shape, IMessage headers in Kafka
// headers) and add it to a partition's batch. "fast" is the production
// decoder, "stock" the reference (encoding/json + bson.UnmarshalExtJSON).
// Run with -cpu 1 for the per-core figure.
func BenchmarkDecodeBatch(b *testing.B) {
	const n = 4096
	msgs := make([]record.Message, n)
	for i := range msgs {
		id, payload := dataset.Entity(1, i)
		value := append(append([]byte(`{"payload":`), payload...), '}')
		msgs[i] = record.Message{
			Topic: "codr.state.user", Partition: 0, Key: []byte(id.Hex()), Value: value,
			Headers: []record.Header{
				{Key: record.HeaderKey, Value: []byte(id.Hex())},
				{Key: record.HeaderTraceID, Value: []byte("7d1f0c8e-2b4a-4c5e-9f3a-" + strconv.Itoa(100000000000+i))},
				{Key: record.HeaderProcessedAt, Value: []byte("2024-05-01T12:00:00.123Z")},
			},
		}
	}
	for _, bc := range []struct {
		name string
		opts record.DecodeOptions
	}{
		{"fast", record.DecodeOptions{}},
		{"stock", record.DecodeOptions{Reference: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			acc := New(Options{MaxDocs: 1000, MaxWait: time.Second})
			now := time.Unix(1714564800, 0)
			var bytes int64
			b.ReportAllocs()
			cpu0 := cpuTime()
			for i := 0; b.Loop(); i++ {
				m := msgs[i%n]
				m.Offset = int64(i)
				bytes += int64(len(m.Value))
				r, err := record.Decode(m, bc.opts)
				if err != nil {
					b.Fatal(err)
				}
				acc.Add(r, now)
			}
			b.SetBytes(bytes / int64(b.N))
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			// CPU time is steadier than wall time on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/record")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package batch

import (
	"encoding/json"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/codr/statesync/dataset"
	"github.com/codr/statesync/record"
)

// The CPU reference of the issue "Freshness and sidecar cost": the CPU per
// record of decoding and batching, as a multiple of encoding/json.Valid's CPU
// over the same values in the same process. The values are the bench's:
// dataset.Entity payloads published as cmd/statesync's stateMessage does
// (record-only value {"payload":...}, key the hex ObjectId, Kafka headers key,
// traceId, processedAt), batched with statesync's default options.
//
//	go test -run '^TestCPURatio$' -v ./batch/ -args -ratio.rounds=40
//	go test -run XXX -bench '^BenchmarkCPURef$' -count 8 ./batch/ | benchstat -col /kind -
var ratioRounds = flag.Int("ratio.rounds", 5, "TestCPURatio: interleaved rounds (each runs every kind over every value)")

const cpuRefValues = 1000

// cpuRefMessages builds n messages of the bench's shape on partition 0.
func cpuRefMessages(n int) []record.Message {
	msgs := make([]record.Message, n)
	processedAt := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	for i := range msgs {
		id, payload := dataset.Entity(1, i)
		value := make([]byte, 0, len(payload)+12)
		value = append(value, `{"payload":`...)
		value = append(value, payload...)
		value = append(value, '}')
		key := []byte(id.Hex())
		msgs[i] = record.Message{
			Topic: "codr.state.user", Partition: 0, Offset: int64(i), Key: key, Value: value,
			Headers: []record.Header{
				{Key: record.HeaderKey, Value: key},
				{Key: record.HeaderTraceID, Value: fmt.Appendf(nil, "7d1f0c8e-2b4a-4c5e-9f3a-%012x", i)},
				{Key: record.HeaderProcessedAt, Value: []byte(processedAt.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano))},
			},
		}
	}
	return msgs
}

// cpuRefOptions are statesync's default batch options.
var cpuRefOptions = Options{MaxDocs: DefaultMaxDocs, MaxBytes: DefaultMaxBytes, MaxWait: 200 * time.Millisecond, StaleGuard: true}

// cpuRefKind is one of the three measured loops: it handles msgs[i]. The
// state (an Accumulator, the offset numbering messages so that the
// partition's offsets keep increasing across passes) is the kind's own.
type cpuRefKind struct {
	name string
	new  func() func(m *record.Message) bool
}

var cpuRefKinds = []cpuRefKind{
	{"valid", func() func(*record.Message) bool {
		return func(m *record.Message) bool { return json.Valid(m.Value) }
	}},
	{"decode", func() func(*record.Message) bool {
		return func(m *record.Message) bool {
			_, err := record.Decode(*m, record.DecodeOptions{})
			return err == nil
		}
	}},
	{"decode+batch", func() func(*record.Message) bool {
		acc := New(cpuRefOptions)
		now := time.Unix(1714564800, 0)
		var offset int64
		return func(m *record.Message) bool {
			mm := *m
			offset++
			mm.Offset = offset
			r, err := record.Decode(mm, record.DecodeOptions{})
			if err != nil {
				return false
			}
			acc.Add(r, now) // a full batch is dropped, as the bench's counting sink drops it
			return true
		}
	}},
}

// BenchmarkCPURef: one op is one value. Compare the kinds' cpu-ns/value (or
// sec/op) within one run; TestCPURatio prints the ratios.
func BenchmarkCPURef(b *testing.B) {
	msgs := cpuRefMessages(cpuRefValues)
	var bytes int
	for _, m := range msgs {
		bytes += len(m.Value)
	}
	for _, k := range cpuRefKinds {
		b.Run("kind="+k.name, func(b *testing.B) {
			run := k.new()
			b.SetBytes(int64(bytes / len(msgs)))
			b.ReportAllocs()
			runtime.GC()
			cpu0 := cpuTime()
			for i := 0; b.Loop(); i++ {
				if !run(&msgs[i%len(msgs)]) {
					b.Fatal("a value failed")
				}
			}
			// CPU time is steadier than wall time on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/value")
		})
	}
}

// TestCPURatio logs decode's and decode+batch's CPU per value as multiples of
// json.Valid's, measured interleaved (the order of the kinds rotates every
// round, each pass after a GC) over the same values. It asserts nothing about
// time: run it with -v (and -ratio.rounds=40 for a steady figure).
func TestCPURatio(t *testing.T) {
	msgs := cpuRefMessages(cpuRefValues)
	rounds := *ratioRounds
	if testing.Short() {
		rounds = 1
	}
	const passes = 5 // per kind and round: ~1-2 ms of CPU each
	cpu := make([][]float64, len(cpuRefKinds))
	ratios := make([][]float64, len(cpuRefKinds))
	runs := make([]func(*record.Message) bool, len(cpuRefKinds))
	for k, kind := range cpuRefKinds {
		runs[k] = kind.new()
	}
	for round := range rounds + 1 {
		per := make([]float64, len(cpuRefKinds))
		for j := range cpuRefKinds {
			k := (round + j) % len(cpuRefKinds)
			runtime.GC()
			t0 := cpuTime()
			ok := true
			for range passes {
				for i := range msgs {
					ok = runs[k](&msgs[i]) && ok
				}
			}
			if !ok {
				t.Fatalf("%s: a value failed", cpuRefKinds[k].name)
			}
			per[k] = float64((cpuTime() - t0).Nanoseconds()) / float64(passes*len(msgs))
		}
		if round == 0 {
			continue // warm-up
		}
		for k := range cpuRefKinds {
			cpu[k] = append(cpu[k], per[k])
			ratios[k] = append(ratios[k], per[k]/per[0])
		}
	}
	var valueBytes int
	for _, m := range msgs {
		valueBytes += len(m.Value)
	}
	t.Logf("%d values of %d bytes on average, %d rounds of %d passes per kind; CPU (rusage) per value, medians:", len(msgs), valueBytes/len(msgs), rounds, passes)
	for k, kind := range cpuRefKinds {
		t.Logf("  %-13s %7.0f ns/value  %.3f× json.Valid (median of per-round ratios; p25 %.3f, p75 %.3f)",
			kind.name, median(cpu[k]), median(ratios[k]), quantile(ratios[k], 0.25), quantile(ratios[k], 0.75))
	}
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

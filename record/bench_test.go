package record

import (
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codr/statesync/dataset"
)

// BenchmarkDecode measures Decode alone on a few payload shapes: the
// dataset's ~1 KiB entity (record-only, IMessage headers in Kafka headers),
// the same as an envelope, a wide object (100 fields: the duplicate-name
// check's large-object path) and an array of many small objects. "fast" is
// the production decoder, "stock" the reference.
func BenchmarkDecode(b *testing.B) {
	const n = 1024
	entity := func(i int) Message {
		id, payload := dataset.Entity(1, i)
		return Message{
			Key:   []byte(id.Hex()),
			Value: append(append([]byte(`{"payload":`), payload...), '}'),
			Headers: []Header{
				{HeaderKey, []byte(id.Hex())},
				{HeaderTraceID, []byte("7d1f0c8e-2b4a-4c5e-9f3a-" + strconv.Itoa(100000000000+i))},
				{HeaderProcessedAt, []byte("2024-05-01T12:00:00.123Z")},
			},
		}
	}
	envelope := func(i int) Message {
		id, payload := dataset.Entity(1, i)
		v := `{"headers":{"key":"` + id.Hex() + `","traceId":"7d1f0c8e-2b4a-4c5e-9f3a-` + strconv.Itoa(100000000000+i) +
			`","processedAt":"2024-05-01T12:00:00.123Z"},"record":{"payload":` + string(payload) + `}}`
		return Message{Key: []byte(id.Hex()), Value: []byte(v)}
	}
	wide := func(i int) Message {
		var sb strings.Builder
		sb.WriteString(`{"payload":{`)
		for f := range 100 {
			if f > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(`"field` + strconv.Itoa(f) + `":` + strconv.Itoa(i*f))
		}
		sb.WriteString(`}}`)
		return Message{Key: []byte(testKey), Value: []byte(sb.String())}
	}
	smallObjects := func(i int) Message {
		var sb strings.Builder
		sb.WriteString(`{"payload":{"items":[`)
		for e := range 40 {
			if e > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(`{"sku":"s-` + strconv.Itoa(i+e) + `","qty":` + strconv.Itoa(e) + `,"price":1.5}`)
		}
		sb.WriteString(`]}}`)
		return Message{Key: []byte(testKey), Value: []byte(sb.String())}
	}
	for _, shape := range []struct {
		name string
		msg  func(int) Message
	}{{"entity", entity}, {"envelope", envelope}, {"wide", wide}, {"small-objects", smallObjects}} {
		msgs := make([]Message, n)
		for i := range msgs {
			msgs[i] = shape.msg(i)
		}
		for _, path := range []struct {
			name string
			opts DecodeOptions
		}{{"fast", DecodeOptions{}}, {"stock", DecodeOptions{Reference: true}}} {
			b.Run(shape.name+"/"+path.name, func(b *testing.B) {
				var bytes int64
				b.ReportAllocs()
				cpu0 := cpuTime()
				for i := 0; b.Loop(); i++ {
					m := msgs[i%n]
					bytes += int64(len(m.Value))
					if _, err := Decode(m, path.opts); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(bytes / int64(b.N))
				// CPU time is steadier than wall time on a shared machine.
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCPURef measures, over the same 1,000 values, encoding/json.Valid
// and Decode (the fast path) per value: the values are dataset.Entity
// payloads published as cmd/statesync's stateMessage does (record-only value,
// hex key, Kafka headers key, traceId, processedAt). One op is one value;
// compare the kinds' cpu-ns/value within a run. batch.TestCPURatio prints the
// ratios, with batching too.
//
//	go test -run XXX -bench '^BenchmarkCPURef$' -count 8 ./record/ | benchstat -col /kind -
func BenchmarkCPURef(b *testing.B) {
	msgs := make([]Message, 1000)
	var bytes int
	for i := range msgs {
		id, payload := dataset.Entity(1, i)
		key := []byte(id.Hex())
		msgs[i] = Message{
			Topic: "codr.state.user", Offset: int64(i), Key: key,
			Value: append(append([]byte(`{"payload":`), payload...), '}'),
			Headers: []Header{
				{HeaderKey, key},
				{HeaderTraceID, []byte("7d1f0c8e-2b4a-4c5e-9f3a-" + strconv.Itoa(100000000000+i))},
				{HeaderProcessedAt, []byte(time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC).Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano))},
			},
		}
		bytes += len(msgs[i].Value)
	}
	for _, kind := range []string{"valid", "decode"} {
		b.Run("kind="+kind, func(b *testing.B) {
			b.SetBytes(int64(bytes / len(msgs)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for i := 0; b.Loop(); i++ {
				m := &msgs[i%len(msgs)]
				if kind == "valid" {
					if !json.Valid(m.Value) {
						b.Fatal("invalid")
					}
				} else if _, err := Decode(*m, DecodeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/value")
		})
	}
}

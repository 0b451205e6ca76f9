package main

// cpuref: the CPU reference rows. It reads the topic's values once (chunk by
// chunk, into memory) and measures, over the SAME values, the CPU per value
// of the Go side of this process (every thread's time on CPU from
// /proc/self/task/*/schedstat, in nanoseconds, but librdkafka's "rdk:"
// threads, which go on fetching into their bounded queue meanwhile; pausing
// the partitions instead costs up to a second per resume) of
//   - encoding/json.Valid on the value (the reference: any consumer that
//     looks at the JSON at all pays at least this), and
//   - decode+batch: record.Decode (the fast decoder, statesync's options) and
//     batch.Accumulator.Add with statesync's default batch options, exactly
//     the per-record work of offsets.Consumer.handle after FromKafka.
// The conversion from librdkafka's message (offsets.FromKafka) happens
// before the clock starts. Each chunk gets --reps passes of each, alternating
// which goes first; each pass is preceded by a GC, so neither pays for the
// other's garbage (decode+batch pays for its own: the GC it triggers is
// counted, as it is in statesync). Figures are means over all passes.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/record"
)

// goCPU is the time on CPU of this process's threads but librdkafka's.
func goCPU() time.Duration {
	dir, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	var total int64
	for _, t := range dir {
		comm, err := os.ReadFile("/proc/self/task/" + t.Name() + "/comm")
		if err != nil || strings.HasPrefix(string(comm), "rdk:") {
			continue
		}
		st, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(st)); len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			total += v
		}
	}
	return time.Duration(total)
}

func cmdCPURef(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cpuref", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap servers")
	topic := fs.String("topic", "", "topic")
	chunk := fs.Int("chunk", 5000, "values held and measured at a time")
	reps := fs.Int("reps", 1, "passes of each over a chunk (which goes first alternates between passes and chunks)")
	staleGuard := fs.Bool("stale-guard", true, "batch options' StaleGuard (statesync's default: true)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokers == "" || *topic == "" {
		return errors.New("--brokers and --topic are required")
	}
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers": *brokers, "group.id": fmt.Sprintf("statesync-bench-cpuref-%d", time.Now().UnixNano()),
		"enable.auto.commit": false, "enable.partition.eof": true,
		"fetch.max.bytes": 4194304, "max.partition.fetch.bytes": 524288, "fetch.queue.backoff.ms": 20, "queued.max.messages.kbytes": 8192,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	md, err := c.GetMetadata(topic, false, 10000)
	if err != nil {
		return err
	}
	tm, ok := md.Topics[*topic]
	if !ok || len(tm.Partitions) == 0 {
		return fmt.Errorf("topic %s not found", *topic)
	}
	var tps []kafka.TopicPartition
	ends := map[int32]int64{}
	var want int64
	for _, p := range tm.Partitions {
		lo, hi, err := c.QueryWatermarkOffsets(*topic, p.ID, 10000)
		if err != nil {
			return err
		}
		want += hi - lo
		ends[p.ID] = hi
		tps = append(tps, kafka.TopicPartition{Topic: topic, Partition: p.ID, Offset: kafka.Offset(lo)})
	}
	if err := c.Assign(tps); err != nil {
		return err
	}

	opts := batch.Options{MaxDocs: batch.DefaultMaxDocs, MaxBytes: batch.DefaultMaxBytes, MaxWait: 200 * time.Millisecond, StaleGuard: *staleGuard}
	var n, valueBytes, invalid, poison int64
	var validCPU, decodeCPU time.Duration
	msgs := make([]record.Message, 0, *chunk)
	measure := func(turn int) error {
		if len(msgs) == 0 {
			return nil
		}
		valid := func() {
			runtime.GC()
			t0 := goCPU()
			for i := range msgs {
				if !json.Valid(msgs[i].Value) {
					invalid++
				}
			}
			validCPU += goCPU() - t0
		}
		decode := func() {
			acc := batch.New(opts)
			runtime.GC()
			now := time.Now()
			t0 := goCPU()
			for i := range msgs {
				rec, err := record.Decode(msgs[i], record.DecodeOptions{})
				if err != nil {
					poison++
					continue
				}
				acc.Add(rec, now) // a full batch is dropped, as the counting sink drops it
			}
			acc.TakeAll()
			decodeCPU += goCPU() - t0
		}
		for r := 0; r < *reps; r++ {
			if (turn+r)%2 == 0 {
				valid()
				decode()
			} else {
				decode()
				valid()
			}
		}
		n += int64(len(msgs))
		msgs = msgs[:0]
		return nil
	}
	done := map[int32]bool{}
	for p, end := range ends {
		if end <= 0 {
			done[p] = true
		}
	}
	turn := 0
	for len(done) < len(ends) && ctx.Err() == nil {
		switch e := c.Poll(100).(type) {
		case *kafka.Message:
			msgs = append(msgs, offsets.FromKafka(e))
			valueBytes += int64(len(e.Value))
			if int64(e.TopicPartition.Offset)+1 >= ends[e.TopicPartition.Partition] {
				done[e.TopicPartition.Partition] = true
			}
			if len(msgs) == *chunk {
				if err := measure(turn); err != nil {
					return err
				}
				turn++
			}
		case kafka.Error:
			if e.IsFatal() {
				return e
			}
		}
	}
	if err := measure(turn); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("read %d records, the topic holds %d", n, want)
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(max(n*int64(*reps), 1)) }
	fmt.Printf("RESULT kind=cpuref records=%d value_bytes_avg=%.0f json_valid_us=%.3f decode_batch_us=%.3f decode_batch_x=%.2f invalid=%d poison=%d\n",
		n, float64(valueBytes)/float64(max(n, 1)), us(validCPU), us(decodeCPU), us(decodeCPU)/max(us(validCPU), 1e-9), invalid, poison)
	return nil
}

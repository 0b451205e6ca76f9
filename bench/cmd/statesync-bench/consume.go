package main

// consume: librdkafka reading the topic to its end and discarding, the
// Kafka-side ceiling of the counting pipeline. It must bound the pipeline, so
// it is configured and started as `statesync import` is: the consumer
// properties as offsets.New (importProps: offsets.ConsumerConfig) and the same start (subscribe with
// cooperative-sticky, then in the assignment callback: end offsets, committed
// offsets, and an explicit start at the low watermark, not OffsetBeginning,
// whose auto.offset.reset lookup waits a fixed 100 ms before the first
// fetch). The clock starts before Subscribe, as the pipeline's starts before
// offsets.Consumer.Run subscribes.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/codr/statesync/offsets"
)

// importProps are the librdkafka properties of the consumer of `statesync
// import` (offsets.ConsumerConfig with StopAtEnd and
// STATESYNC_TOPIC_REFRESH_INTERVAL's default 30s); props (k=v;k=v, as
// STATESYNC_KAFKA_PROPERTIES) are passed through as statesync passes them.
func importProps(brokers, group, props string) kafka.ConfigMap {
	pass := map[string]string{"bootstrap.servers": brokers}
	for _, kv := range strings.Split(props, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			pass[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return offsets.ConsumerConfig(offsets.Options{Kafka: pass, GroupID: group, StopAtEnd: true, RefreshInterval: 30 * time.Second})
}

func cmdConsume(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("consume", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap servers")
	topic := fs.String("topic", "", "topic")
	props := fs.String("kafka-properties", "", "librdkafka properties k=v;k=v (as STATESYNC_KAFKA_PROPERTIES)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokers == "" || *topic == "" {
		return errors.New("--brokers and --topic are required")
	}
	cm := importProps(*brokers, fmt.Sprintf("statesync-bench-consume-%d", time.Now().UnixNano()), *props)
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return err
	}
	go func() {
		for range c.Logs() { // offsets.Prepare turns the log channel on: drain it
		}
	}()
	defer c.Close()

	ends := map[int32]int64{} // end offset at assignment, per partition
	done := map[int32]bool{}  // partitions read to that end
	var want int64
	var assignErr error
	rebalance := func(kc *kafka.Consumer, ev kafka.Event) error {
		switch e := ev.(type) {
		case kafka.AssignedPartitions:
			parts := e.Partitions
			lows := map[int32]int64{}
			for _, tp := range parts {
				lo, hi, err := kc.QueryWatermarkOffsets(*tp.Topic, tp.Partition, 10000)
				if err != nil {
					assignErr = err
					return err
				}
				lows[tp.Partition], ends[tp.Partition] = lo, hi
				want += hi - lo
				if hi <= lo {
					done[tp.Partition] = true // empty: nothing to wait for
				}
			}
			if committed, err := kc.Committed(parts, 5000); err == nil {
				for i, tp := range committed {
					if tp.Offset >= 0 {
						parts[i].Offset = tp.Offset
					} else {
						parts[i].Offset = kafka.Offset(lows[tp.Partition])
					}
				}
			}
			return kc.IncrementalAssign(parts)
		case kafka.RevokedPartitions:
			return kc.IncrementalUnassign(e.Partitions)
		}
		return nil
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	if err := c.SubscribeTopics([]string{*topic}, rebalance); err != nil {
		return err
	}
	var n, bytes int64
	var first time.Time
	deadline := time.Now().Add(60 * time.Second)
	for ctx.Err() == nil {
		if len(ends) > 0 && len(done) == len(ends) {
			break
		}
		if len(ends) == 0 && time.Now().After(deadline) {
			return fmt.Errorf("no partition of %s assigned within 60s", *topic)
		}
		if assignErr != nil {
			return assignErr
		}
		switch e := c.Poll(100).(type) {
		case *kafka.Message:
			if first.IsZero() {
				first = time.Now()
			}
			n++
			bytes += int64(len(e.Key) + len(e.Value))
			if int64(e.TopicPartition.Offset)+1 >= ends[e.TopicPartition.Partition] {
				done[e.TopicPartition.Partition] = true
			}
		case kafka.PartitionEOF:
			if int64(e.Offset) >= ends[e.Partition] {
				done[e.Partition] = true
			}
		case kafka.Error:
			if e.IsFatal() {
				return e
			}
		}
	}
	el := time.Since(start)
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	if err := ctx.Err(); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("read %d records, the topic holds %d", n, want)
	}
	cpu := tv(ru1.Utime) + tv(ru1.Stime) - tv(ru0.Utime) - tv(ru0.Stime)
	fmt.Fprintf(os.Stderr, "consume: first message %.3f s after subscribing\n", first.Sub(start).Seconds())
	fmt.Printf("RESULT kind=consume records=%d bytes=%d elapsed_s=%.3f rate=%.0f mib_s=%.1f first_message_s=%.3f cpu_s=%.3f cpu_us_per_record=%.2f peak_rss_kib=%d\n",
		n, bytes, el.Seconds(), float64(n)/el.Seconds(), float64(bytes)/el.Seconds()/(1<<20), first.Sub(start).Seconds(),
		cpu, cpu*1e6/max(float64(n), 1), vmHWM())
	return nil
}

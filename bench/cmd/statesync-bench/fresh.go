package main

// fresh: produce-to-readable latency, measured from outside the sink.
//
// A producer sends records at a fixed rate for a fixed time to a topic that a
// sink (`statesync run`, or Kafka Connect's MongoDB sink) writes into a
// collection. Record s (s = 1, 2, ...) is a version of key s mod --keys and
// carries benchSeq: s in its payload (a dataset entity, ~1.2 KiB). A reader
// polls the collection all the time with find({benchSeq: {$gte: c}}) (c: the
// oldest record not yet readable; at most --keys small documents come back,
// projected to benchSeq) and records when each record became readable:
// record s is readable once its key's document holds benchSeq >= s (a state
// topic's newer version of a key supersedes the older; a sink that collapses
// versions never writes the older one itself, and the newer one was produced
// later, so this never flatters). The time is the midpoint between the
// snapshot of the last poll that did not see it (or its produce time, if
// later) and that of the poll that did, a poll's snapshot taken as the middle
// of its round trip; "resolution" is the mean time between two snapshots.
// The start of a record is the moment it was handed to the producer (its
// Kafka CreateTime, which statesync_produce_to_written_seconds starts from).
//
// One warm-up record (benchSeq 0) goes first and must become readable
// before the clock starts (group join, connector start-up). With --metrics,
// statesync's /metrics is scraped after the warm-up and at the end, and the
// quantiles of statesync_produce_to_written_seconds{topic} are estimated
// from the bucket deltas (as histogram_quantile does); "-" when statesync
// does not export that histogram.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codr/statesync/dataset"
	"github.com/codr/statesync/record"
)

const histName = "statesync_produce_to_written_seconds"

func cmdFresh(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fresh", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap servers")
	topic := fs.String("topic", "", "topic the sink consumes")
	var mf mongoFlags
	mf.register(fs)
	coll := fs.String("coll", "", "collection the sink writes")
	rate := fs.Int("rate", 50, "records per second")
	duration := fs.Duration("duration", 20*time.Second, "how long to produce")
	keys := fs.Int("keys", 1000, "distinct keys, cycled")
	seed := fs.Int64("seed", 7, "dataset seed of the payloads")
	pollGap := fs.Duration("poll-gap", 2*time.Millisecond, "pause between two polls of the collection")
	drain := fs.Duration("drain", 60*time.Second, "after the last record, wait at most this for the rest to become readable")
	warmup := fs.Duration("warmup-timeout", 3*time.Minute, "wait at most this for the warm-up record")
	metricsURL := fs.String("metrics", "", "statesync's /metrics URL (\"\": none)")
	lingerMs := fs.Int("linger-ms", 1, "producer linger.ms")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokers == "" || *topic == "" || *mf.uri == "" || *coll == "" || *rate <= 0 || *keys <= 0 {
		return errors.New("--brokers, --topic, --uri, --coll, --rate and --keys are required")
	}
	total := int(float64(*rate) * duration.Seconds())
	if total < 1 {
		return errors.New("--rate x --duration is less than one record")
	}

	// payload templates per key: {"payload":{"_id":…,"benchSeq":<s>,<rest of the entity>}}
	type tmpl struct{ key, pre, post []byte }
	tm := make([]tmpl, *keys)
	for k := range tm {
		id, payload := dataset.Entity(*seed, k)
		cut := bytes.Index(payload, []byte(`"},`))
		if cut < 0 {
			return fmt.Errorf("dataset entity %d has no _id element to follow", k)
		}
		cut += 3
		pre := append([]byte(`{"payload":`), payload[:cut]...)
		pre = append(pre, `"benchSeq":`...)
		post := append([]byte{','}, payload[cut:]...)
		post = append(post, '}')
		tm[k] = tmpl{key: []byte(id.Hex()), pre: pre, post: post}
	}
	keyOf := map[bson.ObjectID]int{}
	for k := range tm {
		id, _ := bson.ObjectIDFromHex(string(tm[k].key))
		keyOf[id] = k
	}

	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers": *brokers, "acks": "all", "enable.idempotence": true,
		"linger.ms": *lingerMs, "compression.type": "lz4", "allow.auto.create.topics": false,
	})
	if err != nil {
		return err
	}
	defer p.Close()
	produced := make([]int64, total+1) // unix nanos handed to the producer, by seq
	acked := make([]int64, total+1)    // unix nanos of the delivery report
	var deliveryErrs atomic.Int64
	go func() {
		for ev := range p.Events() {
			if m, ok := ev.(*kafka.Message); ok {
				if m.TopicPartition.Error != nil {
					deliveryErrs.Add(1)
					continue
				}
				if s, ok := m.Opaque.(int); ok {
					atomic.StoreInt64(&acked[s], time.Now().UnixNano())
				}
			}
		}
	}()
	var sent atomic.Int64 // records 0..sent-1 were handed to the producer (their produced[] is set)
	produce := func(s int) error {
		k := s % *keys
		v := make([]byte, 0, len(tm[k].pre)+len(tm[k].post)+12)
		v = append(v, tm[k].pre...)
		v = strconv.AppendInt(v, int64(s), 10)
		v = append(v, tm[k].post...)
		for {
			now := time.Now()
			msg := &kafka.Message{
				TopicPartition: kafka.TopicPartition{Topic: topic, Partition: kafka.PartitionAny},
				Key:            tm[k].key, Value: v, Opaque: s, Timestamp: now,
				Headers: []kafka.Header{
					{Key: record.HeaderKey, Value: tm[k].key},
					{Key: record.HeaderTraceID, Value: []byte(fmt.Sprintf("00000000-0000-4000-8000-%012d", s))},
					{Key: record.HeaderProcessedAt, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
				},
			}
			err := p.Produce(msg, nil)
			if err == nil {
				produced[s] = now.UnixNano()
				sent.Store(int64(s) + 1)
				return nil
			}
			var ke kafka.Error
			if errors.As(err, &ke) && ke.Code() == kafka.ErrQueueFull && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
				continue
			}
			return err
		}
	}

	c, closeDB, err := mf.collection(*coll)
	if err != nil {
		return err
	}
	defer closeDB()

	// the reader
	readable := make([]int64, total+1) // unix nanos, by seq; 0: not yet
	next := make([]int, *keys)         // per key, its oldest seq not yet readable
	for k := range next {
		next[k] = k
	}
	cursor := 0 // oldest seq not yet readable
	var scans int
	var scanTime, gapTime time.Duration
	var scanDurations []time.Duration
	var lastMid int64
	findOpts := options.Find().SetProjection(bson.D{{Key: "benchSeq", Value: 1}}).SetBatchSize(int32(min(*keys+10, 100000)))
	poll := func() error {
		t0 := time.Now()
		cur, err := c.Find(ctx, bson.D{{Key: "benchSeq", Value: bson.D{{Key: "$gte", Value: cursor}}}}, findOpts)
		if err != nil {
			return err
		}
		var docs []struct {
			ID  bson.ObjectID `bson:"_id"`
			Seq int64         `bson:"benchSeq"`
		}
		err = cur.All(ctx, &docs)
		t1 := time.Now()
		if err != nil {
			return err
		}
		mid := t0.UnixNano() + t1.Sub(t0).Nanoseconds()/2
		scans++
		scanTime += t1.Sub(t0)
		scanDurations = append(scanDurations, t1.Sub(t0))
		if lastMid > 0 {
			gapTime += time.Duration(mid - lastMid)
		}
		have := int(sent.Load()) // records produced so far: 0..have-1
		for _, d := range docs {
			k, ok := keyOf[d.ID]
			if !ok {
				continue
			}
			for next[k] <= int(d.Seq) && next[k] < have {
				s := next[k]
				lo := max(lastMid, produced[s])
				if lastMid == 0 {
					lo = max(produced[s], mid) // no earlier snapshot: it was readable by this one
				}
				readable[s] = max((lo+mid)/2, produced[s]) // a snapshot estimated late never makes it negative
				next[k] += *keys
			}
		}
		for cursor < have && readable[cursor] != 0 {
			cursor++
		}
		lastMid = mid
		return nil
	}

	// warm-up: record 0 must become readable (the sink is running and assigned)
	if err := produce(0); err != nil {
		return err
	}
	wdeadline := time.Now().Add(*warmup)
	for readable[0] == 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(wdeadline) {
			return fmt.Errorf("the warm-up record was not readable within %s: is the sink running?", *warmup)
		}
		if err := poll(); err != nil {
			fmt.Fprintf(os.Stderr, "fresh: poll: %v\n", err)
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "fresh: warm-up record readable after %.1f s\n", float64(readable[0]-produced[0])/1e9)
	time.Sleep(500 * time.Millisecond) // let the warm-up's metrics settle
	var before map[float64]float64
	if *metricsURL != "" {
		if before, err = scrapeHist(*metricsURL, *topic); err != nil {
			return err
		}
	}
	scans, scanTime, gapTime, scanDurations, lastMid = 0, 0, 0, nil, 0

	// producer at a fixed rate, reader polling meanwhile
	prodErr := make(chan error, 1)
	start := time.Now()
	go func() {
		per := time.Second / time.Duration(*rate)
		for s := 1; s <= total; {
			due := int(time.Since(start)/per) + 1
			for ; s <= min(due, total); s++ {
				if err := produce(s); err != nil {
					prodErr <- err
					return
				}
			}
			if s > total {
				break
			}
			if d := time.Until(start.Add(time.Duration(s-1) * per)); d > 0 {
				time.Sleep(d)
			}
			if ctx.Err() != nil {
				prodErr <- ctx.Err()
				return
			}
		}
		prodErr <- nil
	}()
	var produceDone time.Time
	var deadline time.Time
	for {
		if produceDone.IsZero() {
			select {
			case err := <-prodErr:
				if err != nil {
					return err
				}
				produceDone = time.Now()
				deadline = produceDone.Add(*drain)
			default:
			}
		}
		if err := poll(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(os.Stderr, "fresh: poll: %v\n", err)
			time.Sleep(50 * time.Millisecond)
		}
		if !produceDone.IsZero() && (cursor > total || time.Now().After(deadline)) {
			break
		}
		time.Sleep(*pollGap)
	}
	sendSpan := time.Duration(produced[total] - produced[1])
	hist := "hist_p50_ms=- hist_p99_ms=- hist_count=-"
	if *metricsURL != "" {
		time.Sleep(200 * time.Millisecond)
		after, err := scrapeHist(*metricsURL, *topic)
		if err != nil {
			return err
		}
		if after != nil {
			d := map[float64]float64{}
			for le, v := range after {
				d[le] = v - before[le]
			}
			hist = fmt.Sprintf("hist_p50_ms=%.1f hist_p99_ms=%.1f hist_count=%.0f", 1000*histQuantile(0.5, d), 1000*histQuantile(0.99, d), d[math.Inf(1)])
		}
	}

	lat := make([]float64, 0, total)
	var unseen int
	var ackLat []float64
	for s := 1; s <= total; s++ {
		if a := atomic.LoadInt64(&acked[s]); a > 0 {
			ackLat = append(ackLat, float64(a-produced[s])/1e6)
		}
		if readable[s] == 0 {
			unseen++
			lat = append(lat, math.Inf(1))
			continue
		}
		lat = append(lat, float64(readable[s]-produced[s])/1e6)
	}
	sort.Float64s(lat)
	sort.Float64s(ackLat)
	sort.Slice(scanDurations, func(i, j int) bool { return scanDurations[i] < scanDurations[j] })
	ms := func(v float64) string {
		if math.IsInf(v, 1) {
			return "inf"
		}
		return fmt.Sprintf("%.1f", v)
	}
	res := 0.0
	if scans > 1 {
		res = float64(gapTime.Milliseconds()) / float64(scans-1)
	}
	fmt.Printf("RESULT kind=fresh rate=%d records=%d achieved_rate=%.0f p50_ms=%s p99_ms=%s max_ms=%s unseen=%d resolution_ms=%.1f scan_ms=%.1f scan_p99_ms=%.1f ack_p50_ms=%s ack_p99_ms=%s delivery_errors=%d %s\n",
		*rate, total, float64(total-1)/max(sendSpan.Seconds(), 1e-9),
		ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99)), ms(lat[len(lat)-1]), unseen,
		res, float64(scanTime.Microseconds())/1e3/float64(max(scans, 1)), float64(quantileD(scanDurations, 0.99).Microseconds())/1e3,
		ms(quantile(ackLat, 0.5)), ms(quantile(ackLat, 0.99)), deliveryErrs.Load(), hist)
	return nil
}

// quantile of sorted values (nearest rank); NaN when empty.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func quantileD(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// scrapeHist reads the cumulative buckets (le -> count) of histName for
// topic from a Prometheus text page; nil when the page has no such series.
func scrapeHist(url, topic string) (map[float64]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	return parseHist(bufio.NewScanner(resp.Body), topic)
}

func parseHist(sc *bufio.Scanner, topic string) (map[float64]float64, error) {
	var out map[float64]float64
	prefix := histName + "_bucket{"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		labels, value := line[len(prefix):end], strings.TrimSpace(line[end+1:])
		if !strings.Contains(labels, `topic="`+topic+`"`) {
			continue
		}
		i := strings.Index(labels, `le="`)
		if i < 0 {
			continue
		}
		leS := labels[i+4:]
		leS = leS[:strings.IndexByte(leS, '"')]
		le, err := strconv.ParseFloat(leS, 64)
		if err != nil {
			return nil, fmt.Errorf("bucket le %q: %w", leS, err)
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bucket value %q: %w", value, err)
		}
		if out == nil {
			out = map[float64]float64{}
		}
		out[le] += v
	}
	return out, sc.Err()
}

// histQuantile estimates the q-quantile from cumulative bucket counts as
// Prometheus's histogram_quantile does: linear within the bucket, the
// highest finite bound when it falls in +Inf. NaN without observations.
func histQuantile(q float64, buckets map[float64]float64) float64 {
	les := make([]float64, 0, len(buckets))
	for le := range buckets {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 || buckets[les[len(les)-1]] <= 0 {
		return math.NaN()
	}
	total := buckets[les[len(les)-1]]
	rank := q * total
	prevLe, prevCount := 0.0, 0.0
	for _, le := range les {
		cnt := buckets[le]
		if cnt >= rank {
			if math.IsInf(le, 1) {
				return prevLe
			}
			if cnt == prevCount {
				return le
			}
			return prevLe + (le-prevLe)*(rank-prevCount)/(cnt-prevCount)
		}
		prevLe, prevCount = le, cnt
	}
	return prevLe
}

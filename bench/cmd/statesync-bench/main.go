// Command statesync-bench holds the Go halves of bench/run: the raw
// mongo-driver ceiling, statesync's pipeline into a counting sink, a
// consume-only librdkafka run, the CPU reference rows (cpuref: json.Valid and
// decode+batch over a topic's values), the freshness prober (fresh), the
// wait-for-Kafka-Connect poller, and the correctness checks of the smoke mode. Every subcommand prints one result
// line "RESULT key=value ..." that bench/run parses.
//
// The dataset is the one `statesync publish --generate N --seed S --keys K`
// produces: record i is dataset.Entity(S+i/K, i%K), so the last version of key
// k is the record with the largest i < N and i%K == k.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.uber.org/zap"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/dataset"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/record"
	"github.com/codr/statesync/sink"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: statesync-bench ceiling|pipeline|consume|cpuref|fresh|await-connect|verify|drop|count|records|delete-topics [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmds := map[string]func(context.Context, []string) error{
		"ceiling":       cmdCeiling,
		"pipeline":      cmdPipeline,
		"consume":       cmdConsume,
		"await-connect": cmdAwaitConnect,
		"verify":        cmdVerify,
		"drop":          cmdDrop,
		"count":         cmdCount,
		"records":       cmdRecords,
		"cpuref":        cmdCPURef,
		"fresh":         cmdFresh,
		"delete-topics": cmdDeleteTopics,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "statesync-bench: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "statesync-bench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// dataFlags are the dataset coordinates shared by several subcommands.
type dataFlags struct {
	n, keys int
	seed    int64
	topic   string
}

func (d *dataFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&d.n, "n", 0, "records in the topic")
	fs.IntVar(&d.keys, "keys", 0, "distinct keys (0: n)")
	fs.Int64Var(&d.seed, "seed", 1, "dataset seed")
	fs.StringVar(&d.topic, "topic", "", "topic name (for sync metadata of the ceiling's documents)")
}

func (d *dataFlags) distinct() int {
	if d.keys <= 0 || d.keys > d.n {
		return d.n
	}
	return d.keys
}

// message is record i of the dataset as publish sends it (headers included).
func (d *dataFlags) message(i int, partition int32, offset int64, now time.Time) record.Message {
	k := d.distinct()
	// as publish's generated(): later rounds carry the payload of another
	// seed under the key's first-round _id
	id, payload := dataset.Entity(d.seed+int64(i/k), i%k)
	if i >= k {
		first, _ := dataset.Entity(d.seed, i%k)
		payload = bytes.Replace(payload, []byte(id.Hex()), []byte(first.Hex()), 1)
		id = first
	}
	value := make([]byte, 0, len(payload)+12)
	value = append(value, `{"payload":`...)
	value = append(value, payload...)
	value = append(value, '}')
	key := []byte(id.Hex())
	return record.Message{
		Topic: d.topic, Partition: partition, Offset: offset, Key: key, Value: value,
		Headers: []record.Header{
			{Key: "key", Value: key},
			{Key: "traceId", Value: []byte(fmt.Sprintf("00000000-0000-4000-8000-%012d", i))},
			{Key: "processedAt", Value: []byte(now.UTC().Format(time.RFC3339Nano))},
		},
	}
}

// mongoFlags are the --uri and --db flags of the subcommands that use MongoDB.
type mongoFlags struct{ uri, db *string }

func (m *mongoFlags) register(fs *flag.FlagSet) {
	m.uri = fs.String("uri", "", "MongoDB URI")
	m.db = fs.String("db", "bench", "database")
}

// open connects to --uri and returns the --db database and a func that disconnects.
func (m *mongoFlags) open() (*mongo.Database, func(), error) {
	client, err := mongo.Connect(options.Client().ApplyURI(*m.uri).
		SetWriteConcern(writeconcern.Majority()).SetRetryWrites(true).
		SetServerSelectionTimeout(10 * time.Second).SetConnectTimeout(5 * time.Second).
		SetMaxPoolSize(200))
	if err != nil {
		return nil, nil, err
	}
	return client.Database(*m.db), func() { _ = client.Disconnect(context.Background()) }, nil
}

// collection is open for the one collection a subcommand reads or writes.
func (m *mongoFlags) collection(name string) (*mongo.Collection, func(), error) {
	db, closeDB, err := m.open()
	if err != nil {
		return nil, nil, err
	}
	return db.Collection(name), closeDB, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, v)
	}
	return out, nil
}

// vmHWM is this process's peak resident set in KiB.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return -1
}

// ---------------------------------------------------------------------------
// ceiling: the raw driver writing the same documents from memory

func cmdCeiling(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	var d dataFlags
	d.register(fs)
	var mf mongoFlags
	mf.register(fs)
	coll := fs.String("coll", "", "collection (dropped first)")
	bulks := fs.String("bulk", "40", "bulk sizes to try, comma-separated")
	concs := fs.String("conc", "1,2,4,8", "concurrencies to try, comma-separated")
	sweepN := fs.Int("sweep-n", 0, "records per sweep trial (0: no sweep when one combination, else min(n, 10000))")
	partitions := fs.Int("partitions", 4, "partitions the sync metadata pretends the records came from")
	maxInflight := fs.Int("max-inflight", 0, "skip combinations with bulk x conc above this (FerretDB 1.x: its PG pool, 150)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bs, err := ints(*bulks)
	if err != nil {
		return err
	}
	cs, err := ints(*concs)
	if err != nil {
		return err
	}
	if *mf.uri == "" || *coll == "" || d.n <= 0 {
		return errors.New("--uri, --coll and --n are required")
	}
	if d.topic == "" {
		d.topic = "codr.state." + *coll
	}
	c, closeDB, err := mf.collection(*coll)
	if err != nil {
		return err
	}
	defer closeDB()

	// Build every document before the clock starts.
	t0 := time.Now()
	docs := make([]bson.Raw, d.n)
	ids := make([]bson.ObjectID, d.n)
	now := time.Now()
	for i := range docs {
		p := int32(i % *partitions)
		r, err := record.Decode(d.message(i, p, int64(i / *partitions), now), record.DecodeOptions{})
		if err != nil {
			return fmt.Errorf("decode record %d: %w", i, err)
		}
		docs[i], ids[i] = sink.Document(&r, "_sync"), r.ID
	}
	fmt.Fprintf(os.Stderr, "ceiling: %d documents built in %s\n", d.n, time.Since(t0).Round(time.Millisecond))

	run := func(n, bulk, conc int) (float64, error) {
		if err := c.Drop(ctx); err != nil {
			return 0, fmt.Errorf("drop %s: %w", *coll, err)
		}
		work := make(chan [2]int, conc)
		var firstErr error
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				models := make([]mongo.WriteModel, 0, bulk)
				for r := range work {
					models = models[:0]
					for i := r[0]; i < r[1]; i++ {
						models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: ids[i]}}).SetReplacement(docs[i]).SetUpsert(true))
					}
					if _, err := c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
				}
			}()
		}
		for i := 0; i < n && ctx.Err() == nil; i += bulk {
			work <- [2]int{i, min(i+bulk, n)}
		}
		close(work)
		wg.Wait()
		el := time.Since(start)
		if firstErr != nil {
			return 0, firstErr
		}
		return float64(n) / el.Seconds(), ctx.Err()
	}

	best, bestB, bestC := 0.0, bs[0], cs[0]
	if len(bs)*len(cs) > 1 {
		sn := *sweepN
		if sn <= 0 {
			sn = min(d.n, 10000)
		}
		for _, b := range bs {
			for _, cc := range cs {
				if *maxInflight > 0 && b*cc > *maxInflight {
					continue
				}
				rate, err := run(min(sn, d.n), b, cc)
				if err != nil {
					return fmt.Errorf("sweep bulk %d conc %d: %w", b, cc, err)
				}
				fmt.Fprintf(os.Stderr, "ceiling sweep: bulk %4d conc %2d: %8.0f records/s\n", b, cc, rate)
				fmt.Printf("SWEEP bulk=%d conc=%d rate=%.0f\n", b, cc, rate)
				if rate > best {
					best, bestB, bestC = rate, b, cc
				}
			}
		}
	}
	start := time.Now()
	rate, err := run(d.n, bestB, bestC)
	if err != nil {
		return err
	}
	fmt.Printf("RESULT kind=ceiling records=%d bulk=%d conc=%d elapsed_s=%.3f rate=%.0f\n", d.n, bestB, bestC, time.Since(start).Seconds(), rate)
	return nil
}

// ---------------------------------------------------------------------------
// pipeline: statesync's consumer, decoder, batcher and offsets into a sink
// that only counts

type countingWriter struct {
	consumed, docs, collapsed atomic.Int64
}

func (w *countingWriter) Apply(_ context.Context, b *batch.Batch) error {
	w.consumed.Add(int64(b.Consumed))
	w.docs.Add(int64(len(b.Records)))
	w.collapsed.Add(int64(b.Collapsed))
	return nil
}

func cmdPipeline(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap servers")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "consumer group (default: a fresh one)")
	maxDocs := fs.Int("batch-docs", batch.DefaultMaxDocs, "batch max documents (statesync's default)")
	maxBytes := fs.Int("batch-bytes", batch.DefaultMaxBytes, "batch max bytes (statesync's default)")
	conc := fs.Int("conc", offsets.DefaultConcurrency, "write concurrency (statesync's default)")
	props := fs.String("kafka-properties", "", "librdkafka properties k=v;k=v (as STATESYNC_KAFKA_PROPERTIES)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here")
	memProfile := fs.String("memprofile", "", "write an allocation profile here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokers == "" || *topic == "" {
		return errors.New("--brokers and --topic are required")
	}
	if *group == "" {
		*group = fmt.Sprintf("statesync-bench-pipeline-%d", time.Now().UnixNano())
	}
	kc := map[string]string{"bootstrap.servers": *brokers}
	for _, kv := range strings.Split(*props, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			kc[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	w := &countingWriter{}
	cons, err := offsets.New(offsets.Options{
		Kafka: kc, GroupID: *group, Subscription: []string{*topic},
		Batch:       batch.Options{MaxDocs: *maxDocs, MaxBytes: *maxBytes, MaxWait: 200 * time.Millisecond},
		Concurrency: *conc, StopAtEnd: true, ShutdownGrace: 30 * time.Second, Log: zap.NewNop(),
	}, w)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	err = cons.Run(ctx)
	el := time.Since(start)
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	if err != nil {
		return err
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return err
		}
		runtime.GC()
		_ = pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	cpu := tv(ru1.Utime) + tv(ru1.Stime) - tv(ru0.Utime) - tv(ru0.Stime)
	n := w.consumed.Load()
	fmt.Printf("RESULT kind=pipeline records=%d docs=%d collapsed=%d elapsed_s=%.3f rate=%.0f cpu_s=%.3f cpu_us_per_record=%.2f peak_rss_kib=%d\n",
		n, w.docs.Load(), w.collapsed.Load(), el.Seconds(), float64(n)/el.Seconds(), cpu, cpu*1e6/max(float64(n), 1), vmHWM())
	return nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// ---------------------------------------------------------------------------
// await-connect: when did Kafka Connect start and finish?
//
// Start is the first poll that sees a document in the collection (the JVM's
// start-up and group join are not counted); done is when the connector's
// consumer group has committed every partition's end offset (and, when
// --want-count is given, the collection holds that many documents).

func cmdAwaitConnect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("await-connect", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap servers")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "the connector's consumer group (connect-<name>)")
	var mf mongoFlags
	mf.register(fs)
	coll := fs.String("coll", "", "collection")
	wantCount := fs.Int64("want-count", 0, "documents expected at the end")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	pidFile := fs.Int("pid", 0, "fail early when this process (the Connect worker) exits")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, closeDB, err := mf.collection(*coll)
	if err != nil {
		return err
	}
	defer closeDB()
	kc, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": *brokers, "group.id": *group, "enable.auto.commit": false})
	if err != nil {
		return err
	}
	defer kc.Close()
	md, err := kc.GetMetadata(topic, false, 10000)
	if err != nil {
		return err
	}
	var tps []kafka.TopicPartition
	ends := map[int32]int64{}
	var total int64
	for _, p := range md.Topics[*topic].Partitions {
		lo, hi, err := kc.QueryWatermarkOffsets(*topic, p.ID, 10000)
		if err != nil {
			return err
		}
		ends[p.ID] = hi
		total += hi - lo
		tps = append(tps, kafka.TopicPartition{Topic: topic, Partition: p.ID})
	}
	deadline := time.Now().Add(*timeout)
	var first time.Time
	lastLog := time.Now()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", *timeout)
		}
		if *pidFile > 0 {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", *pidFile)); err != nil {
				return fmt.Errorf("the Connect worker (pid %d) exited", *pidFile)
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := c.EstimatedDocumentCount(qctx)
		cancel()
		if err != nil {
			// a database busy with the connector's bulks may answer late: poll again
			fmt.Fprintf(os.Stderr, "await-connect: count: %v\n", err)
			time.Sleep(time.Second)
			continue
		}
		now := time.Now()
		if n > 0 && first.IsZero() {
			first = now
		}
		committed, err := kc.Committed(tps, 5000)
		if err != nil {
			return err
		}
		var lag int64
		for _, tp := range committed {
			off := int64(tp.Offset)
			if off < 0 {
				off = 0
			}
			lag += max(0, ends[tp.Partition]-off)
		}
		if !first.IsZero() && lag == 0 && (*wantCount == 0 || n >= *wantCount) {
			el := now.Sub(first)
			fmt.Printf("RESULT kind=connect records=%d docs=%d elapsed_s=%.3f rate=%.0f\n", total, n, el.Seconds(), float64(total)/el.Seconds())
			return nil
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			fmt.Fprintf(os.Stderr, "await-connect: %d documents, lag %d\n", n, lag)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// verify: the collection holds one document per key, equal to the last
// version of that key in the dataset

func cmdVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var d dataFlags
	d.register(fs)
	var mf mongoFlags
	mf.register(fs)
	coll := fs.String("coll", "", "collection")
	samples := fs.Int("samples", 200, "documents compared field by field")
	syncField := fs.String("sync-field", "_sync", "metadata field ignored in the comparison (\"\" none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, closeDB, err := mf.collection(*coll)
	if err != nil {
		return err
	}
	defer closeDB()
	k := d.distinct()
	n, err := c.CountDocuments(ctx, bson.D{})
	if err != nil {
		return err
	}
	var problems []string
	if n != int64(k) {
		problems = append(problems, fmt.Sprintf("count %d, want %d distinct keys", n, k))
	}
	step := max(1, k / *samples)
	checked := 0
	for key := 0; key < k && checked < *samples; key += step {
		last := key + ((d.n-1-key)/k)*k // largest i < n with i%k == key
		r, err := record.Decode(d.message(last, 0, 0, time.Now()), record.DecodeOptions{})
		if err != nil {
			return err
		}
		var got bson.Raw
		if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: r.ID}}).Decode(&got); err != nil {
			problems = append(problems, fmt.Sprintf("key %d (%s): %v", key, r.ID.Hex(), err))
			checked++
			continue
		}
		if diff := compareDocs(r.Doc, got, *syncField); diff != "" {
			problems = append(problems, fmt.Sprintf("key %d (%s): %s", key, r.ID.Hex(), diff))
		}
		checked++
	}
	if len(problems) > 0 {
		for i, p := range problems {
			if i == 10 {
				fmt.Fprintf(os.Stderr, "verify: ... %d more\n", len(problems)-10)
				break
			}
			fmt.Fprintln(os.Stderr, "verify:", p)
		}
		fmt.Printf("RESULT kind=verify ok=false count=%d want=%d sampled=%d problems=%d\n", n, k, checked, len(problems))
		return fmt.Errorf("%s: %d problems", *coll, len(problems))
	}
	fmt.Printf("RESULT kind=verify ok=true count=%d want=%d sampled=%d\n", n, k, checked)
	return nil
}

// compareDocs compares the expected payload with the stored document, field
// by field in order, ignoring the sync metadata field; "" means equal.
func compareDocs(want, got bson.Raw, syncField string) string {
	we, err := want.Elements()
	if err != nil {
		return err.Error()
	}
	ge, err := got.Elements()
	if err != nil {
		return err.Error()
	}
	var g []bson.RawElement
	for _, e := range ge {
		if syncField != "" && e.Key() == syncField {
			continue
		}
		g = append(g, e)
	}
	if len(g) != len(we) {
		return fmt.Sprintf("%d fields, want %d", len(g), len(we))
	}
	for i := range we {
		if we[i].Key() != g[i].Key() {
			return fmt.Sprintf("field %d is %q, want %q", i, g[i].Key(), we[i].Key())
		}
		if !we[i].Value().Equal(g[i].Value()) {
			return fmt.Sprintf("field %q = %s, want %s", we[i].Key(), g[i].Value(), we[i].Value())
		}
	}
	return ""
}

func cmdDrop(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("drop", flag.ContinueOnError)
	var mf mongoFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, closeDB, err := mf.open()
	if err != nil {
		return err
	}
	defer closeDB()
	for _, coll := range fs.Args() {
		if err := db.Collection(coll).Drop(ctx); err != nil {
			return fmt.Errorf("drop %s: %w", coll, err)
		}
	}
	return nil
}

func cmdCount(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("count", flag.ContinueOnError)
	var mf mongoFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, closeDB, err := mf.open()
	if err != nil {
		return err
	}
	defer closeDB()
	names := fs.Args()
	sort.Strings(names)
	for _, coll := range names {
		n, err := db.Collection(coll).CountDocuments(ctx, bson.D{})
		if err != nil {
			return err
		}
		fmt.Printf("%s %d\n", coll, n)
	}
	return nil
}

// records prints how many records a topic holds (sum of high - low
// watermarks), or -1 when it does not exist.
func cmdRecords(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("records", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap servers")
	topic := fs.String("topic", "", "topic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": *brokers, "group.id": "statesync-bench-records"})
	if err != nil {
		return err
	}
	defer c.Close()
	md, err := c.GetMetadata(nil, true, 10000)
	if err != nil {
		return err
	}
	tm, ok := md.Topics[*topic]
	if !ok || tm.Error.Code() == kafka.ErrUnknownTopicOrPart || len(tm.Partitions) == 0 {
		fmt.Println(-1)
		return nil
	}
	var total int64
	for _, p := range tm.Partitions {
		lo, hi, err := c.QueryWatermarkOffsets(*topic, p.ID, 10000)
		if err != nil {
			return err
		}
		total += hi - lo
	}
	fmt.Println(total)
	return nil
}

// delete-topics deletes the given topics (the freshness rows' per-run topics).
func cmdDeleteTopics(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("delete-topics", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap servers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return nil
	}
	a, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": *brokers})
	if err != nil {
		return err
	}
	defer a.Close()
	res, err := a.DeleteTopics(ctx, fs.Args(), kafka.SetAdminOperationTimeout(30*time.Second))
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError && r.Error.Code() != kafka.ErrUnknownTopicOrPart {
			return fmt.Errorf("delete %s: %v", r.Topic, r.Error)
		}
	}
	return nil
}

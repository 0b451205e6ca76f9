package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/spf13/cobra"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/dataset"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/record"
)

var entityName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func newPublishCmd(e *env) *cobra.Command {
	var f publishFlags
	cmd := &cobra.Command{
		Use:   "publish --entity NAME [FILE]",
		Short: "publish an NDJSON or JSON-array dataset to codr.state.NAME",
		Long: `Publish each entity of FILE (NDJSON, or one JSON array; stdin without FILE or
with -) to codr.state.NAME as an IStateMessage: the key is its ObjectId
(generated and written back as _id when absent), headers key, traceId and
processedAt. Lines that are not entities are reported with their numbers
without stopping the rest. The first SIGINT/SIGTERM stops reading, purges what
Kafka has not acknowledged and says how many records that was.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("%s reads one FILE (or stdin)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmdPublish(cmd.Context(), e, f, args) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.entity, "entity", "", "entity name, lower-case words joined by hyphens (topic codr.state.NAME)")
	fl.IntVar(&f.generate, "generate", 0, "publish N generated sample entities instead of reading a file")
	fl.Int64Var(&f.seed, "seed", 1, "seed of the generated entities")
	fl.IntVar(&f.keys, "keys", 0, "with --generate: cycle over this many distinct entities (a topic with churn); 0 = N")
	return cmd
}

type publishFlags struct {
	entity         string
	generate, keys int
	seed           int64
}

// cmdPublish produces a dataset to codr.state.<entity> as IStateMessages.
func cmdPublish(ctx context.Context, e *env, f publishFlags, args []string) error {
	if !entityName.MatchString(f.entity) {
		return usageError("--entity %q: give the entity as lower-case words joined by hyphens, e.g. user-preference", f.entity)
	}
	if f.generate > 0 && len(args) > 0 {
		return usageError("--generate and a FILE are exclusive")
	}
	if err := e.load(needKafka); err != nil {
		return err
	}
	topic := "codr.state." + f.entity
	var src entitySource
	if f.generate > 0 {
		src = generated(f.seed, f.generate, f.keys)
	} else {
		in := io.Reader(os.Stdin)
		name := "stdin"
		if len(args) == 1 && args[0] != "-" {
			file, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer file.Close()
			in, name = file, args[0]
		}
		src = readEntities(in, name)
	}

	p, err := offsets.NewProducer(e.cfg.KafkaConfig(), "publish", e.kafkaLogging())
	if err != nil {
		return err
	}
	defer p.Close(30 * time.Second)
	if err := ask(ctx, brokerWait, func(timeout time.Duration) error { return p.Reachable(e.cfg.KafkaBrokers, timeout) }); err != nil {
		if err == errStopped {
			return &exitError{code: exitFailure, msg: "interrupted before the brokers answered: nothing published"}
		}
		return unreachable(err)
	}
	res, err := publish(ctx, p, topic, src, progressTo(e.stderr, int64(f.generate)))
	fmt.Fprintf(e.stdout, "published %d records to %s in %s (%.0f records/s); rejected %d\n",
		res.published, topic, res.elapsed.Round(time.Millisecond), float64(res.published)/max(res.elapsed.Seconds(), 1e-9), len(res.rejected))
	for _, r := range res.rejected {
		fmt.Fprintf(e.stdout, "  rejected line %d: %s\n", r.line, r.reason)
	}
	if res.interrupted {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("interrupted after sending %d records: %d published and acknowledged; %d were not acknowledged by Kafka and were purged "+
			"(those in flight may have been written all the same; publishing them again is harmless: a state topic keeps the last record of each key)",
			res.sent, res.published, res.notAcked)}
	}
	if err != nil {
		return err
	}
	if len(res.rejected) > 0 {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("%d entities rejected", len(res.rejected))}
	}
	return nil
}

// entity is one dataset item: its JSON object, or why it was rejected.
type entity struct {
	line   int
	json   []byte
	reason string
}

type entitySource func(yield func(entity) bool) error

func generated(seed int64, n, keys int) entitySource {
	if keys <= 0 || keys > n {
		keys = n
	}
	return func(yield func(entity) bool) error {
		for i := 0; i < n; i++ {
			// Later rounds over the same keys carry new versions of them:
			// the payload of another seed, under the key's first-round _id
			// (dataset ids depend on the seed, and the _id comes first).
			other, payload := dataset.Entity(seed+int64(i/keys), i%keys)
			if i >= keys {
				id, _ := dataset.Entity(seed, i%keys)
				payload = bytes.Replace(payload, []byte(other.Hex()), []byte(id.Hex()), 1)
			}
			if !yield(entity{line: i + 1, json: payload}) {
				return nil
			}
		}
		return nil
	}
}

// readEntities reads NDJSON (one object per line) or one JSON array.
func readEntities(in io.Reader, name string) entitySource {
	return func(yield func(entity) bool) error {
		br := bufio.NewReaderSize(in, 1<<20)
		first, err := firstNonSpace(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if first == '[' {
			dec := json.NewDecoder(br)
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			for i := 1; dec.More(); i++ {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return fmt.Errorf("%s: element %d: %w (the array cannot be read past it)", name, i, err)
				}
				if !yield(entity{line: i, json: raw}) {
					return nil
				}
			}
			return nil
		}
		sc := bufio.NewScanner(br)
		sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
		for line := 1; sc.Scan(); line++ {
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			if !yield(entity{line: line, json: bytes.Clone(b)}) {
				return nil
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\n' && b != '\r' && b != '\t' {
			return b, br.UnreadByte()
		}
	}
}

type rejection struct {
	line   int
	reason string
}

type publishResult struct {
	published int64
	rejected  []rejection
	elapsed   time.Duration
	// interrupted: ctx ended before every record was acknowledged; notAcked
	// records were purged from the producer (or never sent).
	interrupted bool
	notAcked    int64
	sent        int64 // records handed to the producer
}

// stateMessage builds the Kafka key, value and headers of one entity: the
// key is its ObjectId (generated and written back as _id when absent).
func stateMessage(obj []byte, now time.Time) (key, value []byte, headers []record.Header, err error) {
	obj = bytes.TrimSpace(obj)
	if len(obj) == 0 || obj[0] != '{' || !json.Valid(obj) {
		return nil, nil, nil, errors.New("not a JSON object")
	}
	var ids struct {
		ID json.RawMessage `json:"_id"`
	}
	if err := json.Unmarshal(obj, &ids); err != nil {
		return nil, nil, nil, err
	}
	var id bson.ObjectID
	if ids.ID == nil {
		id = bson.NewObjectID()
		obj = append([]byte(`{"_id":{"$oid":"`+id.Hex()+`"}`+sep(obj)), obj[1:]...)
	} else if id, err = parseObjectID(ids.ID); err != nil {
		return nil, nil, nil, fmt.Errorf("_id: %w", err)
	}
	value = make([]byte, 0, len(obj)+12)
	value = append(value, `{"payload":`...)
	value = append(value, obj...)
	value = append(value, '}')
	key = []byte(id.Hex())
	headers = []record.Header{
		{Key: "key", Value: key},
		{Key: "traceId", Value: []byte(newUUID())},
		{Key: "processedAt", Value: []byte(now.UTC().Format(time.RFC3339Nano))},
	}
	return key, value, headers, nil
}

// sep is the separator after the inserted _id: none for an empty object.
func sep(obj []byte) string {
	if len(bytes.TrimSpace(obj[1:])) > 0 && bytes.TrimSpace(obj[1:])[0] == '}' {
		return ""
	}
	return ","
}

func parseObjectID(raw json.RawMessage) (bson.ObjectID, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return bson.ObjectIDFromHex(s)
	}
	var w struct {
		OID string `json:"$oid"`
	}
	if err := json.Unmarshal(raw, &w); err != nil || w.OID == "" {
		return bson.ObjectID{}, errors.New(`must be an ObjectId: "<24 hex>" or {"$oid": "<24 hex>"}`)
	}
	return bson.ObjectIDFromHex(w.OID)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// publish produces every entity asynchronously and waits for all acks.
// When ctx ends it stops reading and purges what is queued or in flight, so
// it returns at once, counting what was not acknowledged.
func publish(ctx context.Context, p *offsets.Producer, topic string, src entitySource, progress func(done int64, rate float64, final bool)) (publishResult, error) {
	var res publishResult
	start := time.Now()
	d := countDeliveries()
	tick := time.Now()
	srcErr := src(func(en entity) bool {
		if ctx.Err() != nil {
			return false
		}
		if reason := produceEntity(ctx, p, topic, en, d.events); reason != "" {
			if ctx.Err() != nil {
				return false // interrupted: not a rejection
			}
			res.rejected = append(res.rejected, rejection{en.line, reason})
			return true
		}
		res.sent++
		if time.Since(tick) > 500*time.Millisecond {
			tick = time.Now()
			progress(d.acked.Load(), float64(d.acked.Load())/time.Since(start).Seconds(), false)
		}
		return true
	})
	d.allSent <- res.sent
	select {
	case <-d.done:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		// Interrupted: what is queued or in flight is purged; each purged
		// record's delivery report comes back failed, so the count ends.
		if err := p.Purge(); err != nil {
			return res, fmt.Errorf("purge: %w", err)
		}
		<-d.done
		res.interrupted = true
		res.notAcked = d.failed.Load()
	}
	res.published = d.acked.Load()
	res.elapsed = time.Since(start)
	progress(res.published, float64(res.published)/max(res.elapsed.Seconds(), 1e-9), true)
	switch {
	case srcErr != nil:
		return res, srcErr
	case res.interrupted:
		return res, nil
	case d.failed.Load() > 0:
		return res, fmt.Errorf("%d records were not acknowledged by Kafka: %w", d.failed.Load(), d.firstErr())
	}
	return res, nil
}

// produceEntity produces one entity's state message, its delivery report
// to delivery; it returns why the entity was rejected ("" when produced).
func produceEntity(ctx context.Context, p *offsets.Producer, topic string, en entity, delivery chan kafka.Event) string {
	if en.reason != "" {
		return en.reason
	}
	key, value, headers, err := stateMessage(en.json, time.Now())
	if err == nil {
		err = p.ProduceAsync(ctx, topic, key, value, headers, delivery)
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// deliveries counts the delivery reports that come back on events until as
// many as were sent (given on allSent) have; done is closed then.
type deliveries struct {
	events        chan kafka.Event
	allSent       chan int64
	done          chan struct{}
	acked, failed atomic.Int64
	mu            sync.Mutex
	first         error // the first failure
}

func countDeliveries() *deliveries {
	d := &deliveries{events: make(chan kafka.Event, 4096), allSent: make(chan int64, 1), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		want := int64(-1)
		for want < 0 || d.acked.Load()+d.failed.Load() < want {
			select {
			case n := <-d.allSent:
				want = n
			case ev := <-d.events:
				d.note(ev)
			}
		}
	}()
	return d
}

func (d *deliveries) note(ev kafka.Event) {
	m, ok := ev.(*kafka.Message)
	if ok && m.TopicPartition.Error == nil {
		d.acked.Add(1)
		return
	}
	d.failed.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.first == nil {
		if ok {
			d.first = m.TopicPartition.Error
		} else {
			d.first = fmt.Errorf("unexpected delivery event %v", ev)
		}
	}
}

func (d *deliveries) firstErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.first
}

// progressTo draws a progress line on a terminal: records, rate and, when
// the total is known (total > 0), a bar and the ETA.
func progressTo(w io.Writer, total int64) func(done int64, rate float64, final bool) {
	if !isTerminal(w) {
		return func(int64, float64, bool) {}
	}
	return func(done int64, rate float64, final bool) {
		line := fmt.Sprintf("published %s records, %.0f records/s", strconv.FormatInt(done, 10), rate)
		if total > 0 {
			const width = 30
			filled := int(min(done, total) * width / total)
			eta := "?"
			if rate > 0 {
				eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
			}
			line = fmt.Sprintf("[%s%s] %d/%d, %.0f records/s, ETA %s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, rate, eta)
		}
		fmt.Fprintf(w, "\r%s   ", line)
		if final {
			fmt.Fprintln(w)
		}
	}
}

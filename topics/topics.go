// Package topics holds the Codr topic conventions (names, sizing,
// retention; docs/design.md "Topic conventions") and checks and creates
// topics against a cluster.
package topics

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/codr/statesync/offsets"
)

// Kind is what a topic name says it is.
type Kind string

const (
	State    Kind = "state"
	Event    Kind = "event"
	Workflow Kind = "workflow"
	DLT      Kind = "dlt"
	Unknown  Kind = ""
)

const word = `[a-z0-9]+(?:-[a-z0-9]+)*`

var names = []struct {
	kind Kind
	re   *regexp.Regexp
}{
	{State, regexp.MustCompile(`^codr\.state\.` + word + `$`)},
	{Event, regexp.MustCompile(`^codr\.event\.` + word + `$`)},
	{Workflow, regexp.MustCompile(`^codr\.workflow\.` + word + `\.` + word + `$`)},
	{DLT, regexp.MustCompile(`^codr\.svc\.` + word + `\.dlt$`)},
}

// Classify returns the kind a topic's name follows, or Unknown.
func Classify(topic string) Kind {
	for _, n := range names {
		if n.re.MatchString(topic) {
			return n.kind
		}
	}
	return Unknown
}

const (
	week           = 7 * 24 * time.Hour
	twoWeeks       = 2 * week
	minPartitions  = 2
	compactAfterMS = "604800000"
	retentionMS    = "1209600000"
)

// Want is the configuration a topic of a kind must have.
func Want(k Kind) map[string]string {
	switch k {
	case State:
		return map[string]string{"cleanup.policy": "compact", "min.compaction.lag.ms": compactAfterMS, "segment.ms": compactAfterMS}
	case Event, Workflow, DLT:
		return map[string]string{"cleanup.policy": "delete", "retention.ms": retentionMS}
	}
	return nil
}

// Partitions is the least number of partitions for a service with replicas
// replicas: one per replica, and never fewer than two.
func Partitions(replicas int) int { return max(minPartitions, replicas) }

// Topic is what a check looks at.
type Topic struct {
	Name       string
	Partitions int
	Config     map[string]string
}

// Violation is one way a topic breaks the conventions.
type Violation struct {
	Topic, Rule, Have, Want string
}

// Check lists the violations of one topic.
func Check(t Topic, replicas int) []Violation {
	k := Classify(t.Name)
	if k == Unknown {
		return []Violation{{t.Name, "name", t.Name, "codr.{state|event}.{entity}, codr.workflow.{entity}.{task} or codr.svc.{service}.dlt, lower-case words joined by hyphens"}}
	}
	var v []Violation
	if want := Partitions(replicas); t.Partitions < want {
		v = append(v, Violation{t.Name, "partitions", strconv.Itoa(t.Partitions), fmt.Sprintf(">= %d (one per replica, at least 2)", want)})
	}
	want := Want(k)
	keys := make([]string, 0, len(want))
	for key := range want {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if have := t.Config[key]; have != want[key] {
			v = append(v, Violation{t.Name, key, have, want[key]})
		}
	}
	return v
}

// Admin checks and creates topics on a cluster.
type Admin struct {
	a       *kafka.AdminClient
	w       *offsets.Watch
	brokers string
}

// NewAdmin connects an admin client (client.id statesync-admin) whose log
// lines go through l.
func NewAdmin(props map[string]string, l offsets.Logging) (*Admin, error) {
	cm := kafka.ConfigMap{}
	for k, v := range props {
		cm[k] = v
	}
	offsets.Prepare(cm, "admin")
	a, err := kafka.NewAdminClient(&cm)
	if err != nil {
		return nil, fmt.Errorf("create Kafka admin client: %w", err)
	}
	w := l.Watch("admin", a, a.Logs())
	return &Admin{a: a, w: w, brokers: props["bootstrap.servers"]}, nil
}

// Reachable asks the brokers for metadata, waiting at most timeout: nil, or
// an *offsets.UnreachableError naming them.
func (a *Admin) Reachable(timeout time.Duration) error {
	start := time.Now()
	if _, err := a.a.GetMetadata(nil, false, int(timeout.Milliseconds())); err != nil {
		return &offsets.UnreachableError{Brokers: a.brokers, Waited: time.Since(start).Round(time.Millisecond), Err: err}
	}
	return nil
}

// Close closes the client.
func (a *Admin) Close() {
	a.w.Stop()
	a.a.Close()
}

// Describe returns the named topics (all non-internal ones when names is
// empty) with their partition counts and the configs the conventions name.
func (a *Admin) Describe(ctx context.Context, names ...string) ([]Topic, error) {
	md, err := a.a.GetMetadata(nil, true, timeoutMS(ctx))
	if err != nil {
		return nil, fmt.Errorf("read cluster metadata: %w", err)
	}
	wanted := map[string]bool{}
	for _, n := range names {
		wanted[n] = true
	}
	var out []Topic
	var res []kafka.ConfigResource
	for name, tm := range md.Topics {
		if strings.HasPrefix(name, "__") || (len(wanted) > 0 && !wanted[name]) || tm.Error.Code() == kafka.ErrUnknownTopicOrPart {
			continue
		}
		out = append(out, Topic{Name: name, Partitions: len(tm.Partitions)})
		res = append(res, kafka.ConfigResource{Type: kafka.ResourceTopic, Name: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(res) == 0 {
		return out, nil
	}
	results, err := a.a.DescribeConfigs(ctx, res)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	byName := map[string]map[string]string{}
	for _, r := range results {
		cfg := map[string]string{}
		for k, e := range r.Config {
			cfg[k] = e.Value
		}
		byName[r.Name] = cfg
	}
	for i := range out {
		out[i].Config = byName[out[i].Name]
	}
	return out, nil
}

// Ensure creates the missing topics with the conventions' settings. With
// fix, existing topics get their configs set and partitions raised;
// without, they are left alone and reported. It returns one line per topic.
func (a *Admin) Ensure(ctx context.Context, names []string, replicas, replicationFactor int, fix bool) ([]string, error) {
	for _, n := range names {
		if Classify(n) == Unknown {
			return nil, fmt.Errorf("%q breaks the naming convention: use codr.{state|event}.{entity}, codr.workflow.{entity}.{task} or codr.svc.{service}.dlt", n)
		}
	}
	existing, err := a.Describe(ctx, names...)
	if err != nil {
		return nil, err
	}
	have := map[string]Topic{}
	for _, t := range existing {
		have[t.Name] = t
	}
	var specs []kafka.TopicSpecification
	var report []string
	for _, n := range names {
		if t, ok := have[n]; ok {
			v := Check(t, replicas)
			switch {
			case len(v) == 0:
				report = append(report, n+": exists and follows the conventions")
			case !fix:
				report = append(report, fmt.Sprintf("%s: exists with %d violation(s); left alone (--fix changes it)", n, len(v)))
			default:
				if err := a.fix(ctx, t, replicas); err != nil {
					return report, err
				}
				report = append(report, n+": fixed")
			}
			continue
		}
		specs = append(specs, kafka.TopicSpecification{Topic: n, NumPartitions: Partitions(replicas), ReplicationFactor: replicationFactor, Config: Want(Classify(n))})
	}
	if len(specs) > 0 {
		results, err := a.a.CreateTopics(ctx, specs, kafka.SetAdminOperationTimeout(30*time.Second))
		if err != nil {
			return report, fmt.Errorf("create topics: %w", err)
		}
		for _, r := range results {
			if r.Error.Code() != kafka.ErrNoError {
				return report, fmt.Errorf("create %s: %w", r.Topic, r.Error)
			}
			report = append(report, r.Topic+": created")
		}
	}
	return report, nil
}

func (a *Admin) fix(ctx context.Context, t Topic, replicas int) error {
	var entries []kafka.ConfigEntry
	for k, v := range Want(Classify(t.Name)) {
		entries = append(entries, kafka.ConfigEntry{Name: k, Value: v, IncrementalOperation: kafka.AlterConfigOpTypeSet})
	}
	res, err := a.a.IncrementalAlterConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: t.Name, Config: entries}})
	if err != nil {
		return fmt.Errorf("alter %s: %w", t.Name, err)
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError {
			return fmt.Errorf("alter %s: %w", t.Name, r.Error)
		}
	}
	if want := Partitions(replicas); t.Partitions < want {
		tr, err := a.a.CreatePartitions(ctx, []kafka.PartitionsSpecification{{Topic: t.Name, IncreaseTo: want}})
		if err != nil {
			return fmt.Errorf("add partitions to %s: %w", t.Name, err)
		}
		for _, r := range tr {
			if r.Error.Code() != kafka.ErrNoError {
				return fmt.Errorf("add partitions to %s: %w", t.Name, r.Error)
			}
		}
	}
	return nil
}

func timeoutMS(ctx context.Context) int {
	if d, ok := ctx.Deadline(); ok {
		return max(1, int(time.Until(d).Milliseconds()))
	}
	return 10000
}

// Package config reads statesync's configuration from STATESYNC_* environment
// variables into one struct and validates it, reporting every bad variable at
// once with what to change. It depends on the standard library and
// caarlos0/env only; main turns the struct into each package's Options.
package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Prefix is the prefix of every variable statesync reads.
const Prefix = "STATESYNC_"

// Config is the whole effective configuration. Field tags are the variable
// names without Prefix; `secret:"true"` marks values masked by Masked.
type Config struct {
	KafkaBrokers          string            `env:"KAFKA_BROKERS" desc:"bootstrap servers, comma-separated (required)"`
	KafkaGroupID          string            `env:"KAFKA_GROUP_ID" envDefault:"statesync" desc:"consumer group"`
	KafkaProperties       map[string]string `env:"KAFKA_PROPERTIES" envSeparator:";" envKeyValSeparator:"=" desc:"librdkafka properties passed through, key=value;key=value (SASL, TLS, tuning)"`
	KafkaSASLUsername     string            `env:"KAFKA_SASL_USERNAME" desc:"sasl.username"`
	KafkaSASLPassword     string            `env:"KAFKA_SASL_PASSWORD" secret:"true" desc:"sasl.password (or KAFKA_SASL_PASSWORD_FILE)"`
	KafkaSASLPasswordFile string            `env:"KAFKA_SASL_PASSWORD_FILE,file" secret:"true" desc:"file holding sasl.password"`
	Topics                string            `env:"TOPICS" envDefault:"^codr\\.state\\..+" desc:"regex (leading ^) or comma-separated topic list"`
	TopicRefreshInterval  time.Duration     `env:"TOPIC_REFRESH_INTERVAL" envDefault:"30s" desc:"how soon a new topic matching the regex is picked up"`

	MongoURI          string            `env:"MONGO_URI" secret:"true" desc:"MongoDB connection string (required; or MONGO_URI_FILE)"`
	MongoURIFile      string            `env:"MONGO_URI_FILE,file" secret:"true" desc:"file holding the MongoDB connection string"`
	MongoDatabase     string            `env:"MONGO_DATABASE" desc:"target database (required)"`
	Collections       map[string]string `env:"COLLECTIONS" envSeparator:"," envKeyValSeparator:"=" desc:"entity=collection,... overrides of the entity-name default"`
	MongoWriteConcern string            `env:"MONGO_WRITE_CONCERN" envDefault:"majority" desc:"write concern: majority or a number of nodes"`
	MongoTimeout      time.Duration     `env:"MONGO_TIMEOUT" envDefault:"30s" desc:"timeout of one bulk write"`
	MongoMaxBulkOps   int               `env:"MONGO_MAX_BULK_OPS" envDefault:"0" desc:"split bulk writes into commands of at most this many operations (0: driver default; FerretDB 1.x: keep this × MONGO_BULK_PARALLEL × WRITE_CONCURRENCY well under its connection pool, e.g. 20)"`
	MongoBulkParallel int               `env:"MONGO_BULK_PARALLEL" envDefault:"1" desc:"commands of one split bulk write sent at once (see MONGO_MAX_BULK_OPS)"`

	BatchMaxDocs     int           `env:"BATCH_MAX_DOCS" envDefault:"1000" desc:"flush a partition's batch at this many distinct documents"`
	BatchMaxBytes    int           `env:"BATCH_MAX_BYTES" envDefault:"8388608" desc:"flush a partition's batch at this many message bytes"`
	BatchMaxWait     time.Duration `env:"BATCH_MAX_WAIT" envDefault:"200ms" desc:"flush a partition's batch this long after its first message"`
	WriteConcurrency int           `env:"WRITE_CONCURRENCY" envDefault:"4" desc:"bulk writes in flight at once (one per partition at most)"`
	RetryMaxBackoff  time.Duration `env:"RETRY_MAX_BACKOFF" envDefault:"30s" desc:"cap of the backoff between retries of a failed write"`
	UnwritableAfter  int           `env:"UNWRITABLE_AFTER" envDefault:"5" desc:"failures in a row, each followed by a passing canary write to the same collection, before a batch is split (a lone record: dead-lettered as unwritable)"`

	DLTTopic     string        `env:"DLT_TOPIC" envDefault:"codr.svc.mongo.dlt" desc:"dead-letter topic"`
	SyncMetadata bool          `env:"SYNC_METADATA" envDefault:"true" desc:"write topic/partition/offset/processedAt/traceId into each document"`
	SyncField    string        `env:"SYNC_FIELD" envDefault:"_sync" desc:"name of the sync metadata field"`
	StaleGuard   bool          `env:"STALE_GUARD" envDefault:"true" desc:"never replace a document whose stored processedAt is newer"`
	FutureSkew   time.Duration `env:"FUTURE_SKEW" envDefault:"5m" desc:"a record whose processedAt is further than this ahead of the local clock is counted and logged (under the stale guard its document refuses updates until then)"`

	LogLevel      string        `env:"LOG_LEVEL" envDefault:"info" desc:"debug, info, warn or error"`
	LogFormat     string        `env:"LOG_FORMAT" envDefault:"auto" desc:"json, console, or auto (console on a terminal)"`
	HTTPAddr      string        `env:"HTTP_ADDR" envDefault:":8080" desc:"listen address of /metrics, /healthz, /readyz (off: none)"`
	ShutdownGrace time.Duration `env:"SHUTDOWN_GRACE" envDefault:"30s" desc:"time to drain, commit and close on SIGTERM"`
	StuckAfter    time.Duration `env:"STUCK_AFTER" envDefault:"5m" desc:"not ready when no progress for this long while lag > 0"`
}

// Load reads the configuration from the process environment.
func Load() (Config, error) { return Parse(environ()) }

func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Parse reads the configuration from the given environment and validates it.
// The error lists every bad variable, one per line.
func Parse(environment map[string]string) (Config, error) {
	var c Config
	var problems []string
	if err := env.ParseWithOptions(&c, env.Options{Environment: environment, Prefix: Prefix}); err != nil {
		var agg env.AggregateError
		if errors.As(err, &agg) {
			for _, e := range agg.Errors {
				problems = append(problems, e.Error())
			}
		} else {
			problems = append(problems, err.Error())
		}
	}
	if c.HTTPAddr == "off" {
		c.HTTPAddr = ""
	}
	problems = append(problems, c.resolveFiles(environment)...)
	problems = append(problems, c.validate()...)
	if len(problems) > 0 {
		return c, &Error{Problems: problems}
	}
	return c, nil
}

// Error lists every configuration problem found.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "invalid configuration:\n  - " + strings.Join(e.Problems, "\n  - ")
}

func (c *Config) resolveFiles(environment map[string]string) []string {
	var problems []string
	pick := func(name string, value *string, fromFile string) {
		if fromFile == "" {
			return
		}
		if environment[Prefix+name] != "" {
			problems = append(problems, fmt.Sprintf("%s%s and %s%s_FILE are both set: keep one", Prefix, name, Prefix, name))
			return
		}
		*value = strings.TrimRight(fromFile, "\r\n")
	}
	pick("MONGO_URI", &c.MongoURI, c.MongoURIFile)
	pick("KAFKA_SASL_PASSWORD", &c.KafkaSASLPassword, c.KafkaSASLPasswordFile)
	return problems
}

var collectionName = regexp.MustCompile(`^[^$\x00]{1,120}$`)

func (c *Config) validate() []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if strings.TrimSpace(c.KafkaBrokers) == "" {
		add("%sKAFKA_BROKERS is required: set it to the bootstrap servers, e.g. kafka-0:9092,kafka-1:9092", Prefix)
	}
	if c.MongoURI == "" {
		add("%sMONGO_URI is required (or %sMONGO_URI_FILE): set it to a connection string, e.g. mongodb://mongo:27017", Prefix, Prefix)
	} else if !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		add("%sMONGO_URI must start with mongodb:// or mongodb+srv://", Prefix)
	}
	if c.MongoDatabase == "" {
		add("%sMONGO_DATABASE is required: set it to the database the collections live in", Prefix)
	}
	if c.KafkaGroupID == "" {
		add("%sKAFKA_GROUP_ID must not be empty", Prefix)
	}
	if sel, err := c.TopicSelection(); err != nil {
		add("%sTOPICS: %v", Prefix, err)
	} else if c.DLTTopic != "" && sel.Regex == nil && sel.Matches(c.DLTTopic) {
		add("%sTOPICS lists %s, the dead-letter topic (%sDLT_TOPIC): statesync never consumes its own dead letters (they would loop); remove it from %sTOPICS (reprocess dead letters with statesync dlt replay)",
			Prefix, c.DLTTopic, Prefix, Prefix)
	}
	for entity, coll := range c.Collections {
		if entity == "" || !collectionName.MatchString(coll) {
			add("%sCOLLECTIONS: %q=%q is not entity=collection (collection names cannot be empty or hold $)", Prefix, entity, coll)
		}
	}
	if wc := c.MongoWriteConcern; wc != "majority" && !isPositiveInt(wc) {
		add("%sMONGO_WRITE_CONCERN=%q: use majority or a number of nodes such as 1", Prefix, wc)
	}
	positive := []struct {
		name string
		v    int
	}{{"BATCH_MAX_DOCS", c.BatchMaxDocs}, {"BATCH_MAX_BYTES", c.BatchMaxBytes}, {"WRITE_CONCURRENCY", c.WriteConcurrency}, {"UNWRITABLE_AFTER", c.UnwritableAfter}, {"MONGO_BULK_PARALLEL", c.MongoBulkParallel}}
	for _, f := range positive {
		if f.v <= 0 {
			add("%s%s=%d: must be at least 1", Prefix, f.name, f.v)
		}
	}
	if c.MongoMaxBulkOps < 0 {
		add("%sMONGO_MAX_BULK_OPS=%d: use 0 (no limit) or a positive number", Prefix, c.MongoMaxBulkOps)
	}
	if c.StaleGuard && !c.SyncMetadata {
		add("%sSTALE_GUARD=true needs %sSYNC_METADATA=true (the guard compares the stored processedAt): enable metadata or set STALE_GUARD=false", Prefix, Prefix)
	}
	if c.BatchMaxDocs > 100000 {
		add("%sBATCH_MAX_DOCS=%d: at most 100000 (one bulk write)", Prefix, c.BatchMaxDocs)
	}
	durations := []struct {
		name string
		v    time.Duration
	}{{"TOPIC_REFRESH_INTERVAL", c.TopicRefreshInterval}, {"MONGO_TIMEOUT", c.MongoTimeout}, {"BATCH_MAX_WAIT", c.BatchMaxWait}, {"RETRY_MAX_BACKOFF", c.RetryMaxBackoff}, {"SHUTDOWN_GRACE", c.ShutdownGrace}, {"STUCK_AFTER", c.StuckAfter}, {"FUTURE_SKEW", c.FutureSkew}}
	for _, f := range durations {
		if f.v <= 0 {
			add("%s%s=%s: must be a positive duration such as 30s", Prefix, f.name, f.v)
		}
	}
	if c.DLTTopic == "" {
		add("%sDLT_TOPIC must not be empty", Prefix)
	}
	if c.SyncMetadata && (c.SyncField == "" || strings.HasPrefix(c.SyncField, "$") || strings.Contains(c.SyncField, ".") || c.SyncField == "_id") {
		add("%sSYNC_FIELD=%q: use a plain field name such as _sync (no $, no dots, not _id)", Prefix, c.SyncField)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("%sLOG_LEVEL=%q: use debug, info, warn or error", Prefix, c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "console", "auto":
	default:
		add("%sLOG_FORMAT=%q: use json, console or auto", Prefix, c.LogFormat)
	}
	for k := range c.KafkaProperties {
		switch k {
		case "group.id", "bootstrap.servers", "enable.auto.offset.store", "partition.assignment.strategy", "enable.auto.commit":
			add("%sKAFKA_PROPERTIES sets %s, which statesync manages: use the dedicated variable or drop it", Prefix, k)
		}
	}
	return p
}

func isPositiveInt(s string) bool {
	if s == "" || s == "0" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// TopicSelection is what to subscribe to: a regex (Topics starting with ^)
// or a list of topic names.
type TopicSelection struct {
	Regex *regexp.Regexp
	Names []string
}

// Subscription is the list librdkafka's SubscribeTopics takes: the regex as
// written (librdkafka treats a leading ^ as a pattern) or the names.
func (s TopicSelection) Subscription() []string {
	if s.Regex != nil {
		return []string{s.Regex.String()}
	}
	return s.Names
}

// Matches reports whether a topic is selected.
func (s TopicSelection) Matches(topic string) bool {
	if s.Regex != nil {
		return s.Regex.MatchString(topic)
	}
	for _, n := range s.Names {
		if n == topic {
			return true
		}
	}
	return false
}

// TopicSelection parses Topics.
func (c Config) TopicSelection() (TopicSelection, error) {
	t := strings.TrimSpace(c.Topics)
	if strings.HasPrefix(t, "^") {
		re, err := regexp.Compile(t)
		if err != nil {
			return TopicSelection{}, fmt.Errorf("%q is not a valid regular expression: %w", t, err)
		}
		return TopicSelection{Regex: re}, nil
	}
	var names []string
	for _, n := range strings.Split(t, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return TopicSelection{}, errors.New("empty: give a regex starting with ^ or a comma-separated list of topics")
	}
	return TopicSelection{Names: names}, nil
}

// Collection returns the MongoDB collection for a topic: the configured
// override of its entity, else the entity name (codr.state.user-preference →
// user-preference). Topics outside the codr.state. convention use their
// whole name.
func (c Config) Collection(topic string) string {
	entity := strings.TrimPrefix(topic, "codr.state.")
	if coll, ok := c.Collections[entity]; ok {
		return coll
	}
	if coll, ok := c.Collections[topic]; ok {
		return coll
	}
	return entity
}

// KafkaConfig returns the librdkafka properties common to consumers,
// producers and admin clients: brokers, SASL credentials, passthrough.
func (c Config) KafkaConfig() map[string]string {
	m := map[string]string{"bootstrap.servers": c.KafkaBrokers}
	for k, v := range c.KafkaProperties {
		m[k] = v
	}
	if c.KafkaSASLUsername != "" {
		m["sasl.username"] = c.KafkaSASLUsername
	}
	if c.KafkaSASLPassword != "" {
		m["sasl.password"] = c.KafkaSASLPassword
	}
	return m
}

// Masked returns the effective configuration as sorted "VARIABLE=value"
// lines, with secrets (and passwords inside URIs and Kafka properties)
// replaced by ****.
func (c Config) Masked() []string {
	lines := []string{
		"KAFKA_BROKERS=" + c.KafkaBrokers,
		"KAFKA_GROUP_ID=" + c.KafkaGroupID,
		"KAFKA_PROPERTIES=" + joinMap(c.KafkaProperties, ";", true),
		"KAFKA_SASL_USERNAME=" + c.KafkaSASLUsername,
		"KAFKA_SASL_PASSWORD=" + mask(c.KafkaSASLPassword),
		"TOPICS=" + c.Topics,
		"TOPIC_REFRESH_INTERVAL=" + c.TopicRefreshInterval.String(),
		"MONGO_URI=" + maskURI(c.MongoURI),
		"MONGO_DATABASE=" + c.MongoDatabase,
		"COLLECTIONS=" + joinMap(c.Collections, ",", false),
		"MONGO_WRITE_CONCERN=" + c.MongoWriteConcern,
		"MONGO_TIMEOUT=" + c.MongoTimeout.String(),
		fmt.Sprintf("MONGO_MAX_BULK_OPS=%d", c.MongoMaxBulkOps),
		fmt.Sprintf("MONGO_BULK_PARALLEL=%d", c.MongoBulkParallel),
		fmt.Sprintf("BATCH_MAX_DOCS=%d", c.BatchMaxDocs),
		fmt.Sprintf("BATCH_MAX_BYTES=%d", c.BatchMaxBytes),
		"BATCH_MAX_WAIT=" + c.BatchMaxWait.String(),
		fmt.Sprintf("WRITE_CONCURRENCY=%d", c.WriteConcurrency),
		"RETRY_MAX_BACKOFF=" + c.RetryMaxBackoff.String(),
		fmt.Sprintf("UNWRITABLE_AFTER=%d", c.UnwritableAfter),
		"DLT_TOPIC=" + c.DLTTopic,
		fmt.Sprintf("SYNC_METADATA=%t", c.SyncMetadata),
		"SYNC_FIELD=" + c.SyncField,
		fmt.Sprintf("STALE_GUARD=%t", c.StaleGuard),
		"FUTURE_SKEW=" + c.FutureSkew.String(),
		"LOG_LEVEL=" + c.LogLevel,
		"LOG_FORMAT=" + c.LogFormat,
		"HTTP_ADDR=" + c.HTTPAddr,
		"SHUTDOWN_GRACE=" + c.ShutdownGrace.String(),
		"STUCK_AFTER=" + c.StuckAfter.String(),
	}
	for i := range lines {
		lines[i] = Prefix + lines[i]
	}
	sort.Strings(lines)
	return lines
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "****"
}

var uriPassword = regexp.MustCompile(`^(mongodb(?:\+srv)?://[^:/@]*):[^@]*@`)

func maskURI(uri string) string { return uriPassword.ReplaceAllString(uri, "$1:****@") }

func joinMap(m map[string]string, sep string, maskSecrets bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		if maskSecrets && (strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.HasSuffix(k, ".key")) {
			v = mask(v)
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, sep)
}

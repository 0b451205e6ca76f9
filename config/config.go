// Package config reads statesync's configuration from STATESYNC_* environment
// variables into one struct and validates it, reporting every bad variable at
// once with what to change. It depends on the standard library and
// caarlos0/env only; main turns the struct into each package's Options.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Prefix is the prefix of every variable statesync reads.
const Prefix = "STATESYNC_"

// Config is the whole effective configuration. Field tags are the variable
// names without Prefix (env), their defaults (envDefault) and what they mean
// (desc; 'quoted' words are code): `statesync env`, `statesync config --help`
// and the README's table are generated from them. `required:"true"` marks
// the variables without which nothing runs; `secret:"true"` marks values
// never shown or echoed, `secret:"values"` a key=value list whose
// secret-looking values are (see SecretProperty).
type Config struct {
	KafkaBrokers          string            `env:"KAFKA_BROKERS" required:"true" desc:"bootstrap servers, comma-separated"`
	KafkaGroupID          string            `env:"KAFKA_GROUP_ID" envDefault:"statesync" desc:"consumer group"`
	KafkaProperties       map[string]string `env:"KAFKA_PROPERTIES" envSeparator:";" envKeyValSeparator:"=" secret:"values" desc:"librdkafka properties passed through, 'key=value;key=value' (TLS, SASL mechanism, tuning), checked by librdkafka itself; passwords, keys, 'sasl.*' and OAuth values are masked"`
	KafkaSASLUsername     string            `env:"KAFKA_SASL_USERNAME" desc:"'sasl.username'"`
	KafkaSASLPassword     string            `env:"KAFKA_SASL_PASSWORD" secret:"true" desc:"'sasl.password' (or 'STATESYNC_KAFKA_SASL_PASSWORD_FILE')"`
	KafkaSASLPasswordFile string            `env:"KAFKA_SASL_PASSWORD_FILE,file" secret:"true" desc:"file holding 'sasl.password' (a mounted Secret)"`
	Topics                string            `env:"TOPICS" envDefault:"^codr\\.state\\..+" desc:"regex (leading '^') or comma-separated topic list"`
	TopicRefreshInterval  time.Duration     `env:"TOPIC_REFRESH_INTERVAL" envDefault:"30s" desc:"how soon a new topic matching the regex is picked up"`

	MongoURI          string            `env:"MONGO_URI" required:"true" secret:"true" desc:"MongoDB connection string, checked by the driver (or 'STATESYNC_MONGO_URI_FILE'); its password and secret query values are masked"`
	MongoURIFile      string            `env:"MONGO_URI_FILE,file" secret:"true" desc:"file holding the MongoDB connection string (a mounted Secret)"`
	MongoDatabase     string            `env:"MONGO_DATABASE" required:"true" desc:"target database"`
	Collections       map[string]string `env:"COLLECTIONS" envSeparator:"," envKeyValSeparator:"=" desc:"'entity=collection,...' overrides of the entity-name default"`
	MongoWriteConcern string            `env:"MONGO_WRITE_CONCERN" envDefault:"majority" desc:"write concern: 'majority' or a number of nodes"`
	MongoTimeout      time.Duration     `env:"MONGO_TIMEOUT" envDefault:"30s" desc:"timeout of one bulk write"`
	MongoMaxBulkOps   int               `env:"MONGO_MAX_BULK_OPS" envDefault:"0" desc:"split bulk writes into commands of at most this many operations; 0 = driver default. Set '20' for FerretDB 1.x (see below)"`
	MongoBulkParallel int               `env:"MONGO_BULK_PARALLEL" envDefault:"1" desc:"commands of one split bulk write sent at once (with 'MONGO_MAX_BULK_OPS')"`

	BatchMaxDocs     int           `env:"BATCH_MAX_DOCS" envDefault:"1000" desc:"flush the batch of a partition at this many distinct documents"`
	BatchMaxBytes    int           `env:"BATCH_MAX_BYTES" envDefault:"8388608" desc:"... or at this many message bytes"`
	BatchMaxWait     time.Duration `env:"BATCH_MAX_WAIT" envDefault:"200ms" desc:"... or this long after its first message, while records keep arriving: a partition with no write in flight writes its batch as soon as nothing more is fetched"`
	WriteConcurrency int           `env:"WRITE_CONCURRENCY" envDefault:"4" desc:"bulk writes in flight at once (never two for one partition)"`
	RetryMaxBackoff  time.Duration `env:"RETRY_MAX_BACKOFF" envDefault:"30s" desc:"cap of the exponential backoff between retries of a failed write"`
	UnwritableAfter  int           `env:"UNWRITABLE_AFTER" envDefault:"5" desc:"failures in a row, each followed by a passing canary write to the same collection, before a batch is split (a lone record: dead-lettered as 'unwritable'); see Dead letters"`

	DLTTopic     string        `env:"DLT_TOPIC" envDefault:"codr.svc.mongo.dlt" desc:"dead-letter topic"`
	SyncMetadata bool          `env:"SYNC_METADATA" envDefault:"true" desc:"write the '_sync' metadata into each document"`
	SyncField    string        `env:"SYNC_FIELD" envDefault:"_sync" desc:"name of the sync metadata field"`
	StaleGuard   bool          `env:"STALE_GUARD" envDefault:"true" desc:"never replace a document whose stored 'processedAt' is newer (needs sync metadata)"`
	FutureSkew   time.Duration `env:"FUTURE_SKEW" envDefault:"5m" desc:"a record whose 'processedAt' is further ahead of the local clock is counted ('statesync_records_future_total') and logged once per key per 10 min: under the stale guard its document refuses earlier-stamped updates until then"`

	LogLevel      string        `env:"LOG_LEVEL" envDefault:"info" desc:"'debug', 'info', 'warn', 'error'"`
	LogFormat     string        `env:"LOG_FORMAT" envDefault:"auto" desc:"'json', 'console', or 'auto' (console on a terminal; colours only on a terminal)"`
	HTTPAddr      string        `env:"HTTP_ADDR" envDefault:":8080" desc:"'/metrics', '/healthz', '/readyz'; 'off' turns it off"`
	ShutdownGrace time.Duration `env:"SHUTDOWN_GRACE" envDefault:"30s" desc:"on SIGTERM: stop polling, finish writes, commit, close within this (a second signal exits at once)"`
	StuckAfter    time.Duration `env:"STUCK_AFTER" envDefault:"5m" desc:"'/readyz' fails when nothing was committed for this long while lag > 0"`

	warnings []string        // unknown variables that look like no typo of a known one
	failed   map[string]bool // variables whose value could not be parsed
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
// The error lists every bad variable once, one per line, with what to change
// and without echoing a value that could be secret.
func Parse(environment map[string]string) (Config, error) {
	var c Config
	var problems []Problem
	failed := map[string]bool{} // variables whose value could not be parsed: not validated again
	if err := env.ParseWithOptions(&c, env.Options{Environment: environment, Prefix: Prefix}); err != nil {
		var agg env.AggregateError
		errs := []error{err}
		if errors.As(err, &agg) {
			errs = agg.Errors
		}
		for _, e := range errs {
			name, msg := parseProblem(e, environment)
			failed[name] = true
			problems = append(problems, Problem{Var: name, Msg: msg})
		}
	}
	if c.HTTPAddr == "off" {
		c.HTTPAddr = ""
	}
	problems = append(problems, c.resolveFiles(environment)...)
	problems = append(problems, c.validate(failed)...)
	unknown, warnings := unknownVariables(environment)
	problems = append(problems, unknown...)
	c.warnings, c.failed = warnings, failed
	if len(problems) > 0 {
		return c, NewError(problems)
	}
	return c, nil
}

// Warnings lists the STATESYNC_* variables that were ignored: unknown, and
// not a likely misspelling of a known one (those are errors).
func (c Config) Warnings() []string { return c.warnings }

// Problem is one thing wrong with one variable.
type Problem struct {
	Var string // with Prefix
	Msg string // names the variable, says what to change
}

// Error lists every configuration problem found.
type Error struct{ List []Problem }

// NewError lists problems.
func NewError(problems []Problem) *Error { return &Error{List: problems} }

func (e *Error) Error() string {
	msgs := make([]string, len(e.List))
	for i, p := range e.List {
		msgs[i] = p.Msg
	}
	return "invalid configuration:\n  - " + strings.Join(msgs, "\n  - ")
}

// parseProblem turns one of env's parse errors into the variable's name and
// a message that says what to change. A value is quoted only when its
// variable cannot hold a secret.
func parseProblem(err error, environment map[string]string) (string, string) {
	var pe env.ParseError
	var fe env.LoadFileContentError
	switch {
	case errors.As(err, &fe):
		return fe.Key, fmt.Sprintf("%s: cannot read the file %q it names: %v", fe.Key, fe.Filename, errors.Unwrap(fe.Err))
	case errors.As(err, &pe):
		v, ok := varByField(pe.Name)
		if !ok {
			return pe.Name, fmt.Sprintf("field %s: %v", pe.Name, pe.Err)
		}
		raw := environment[v.Name]
		shown := fmt.Sprintf("%s=%q", v.Name, raw)
		if v.Secret || v.SecretValues {
			shown = v.Name
		}
		switch v.kind {
		case reflect.Int64: // time.Duration
			return v.Name, fmt.Sprintf("%s is not a duration: use a number and a unit, such as 200ms, 30s or 5m", shown)
		case reflect.Int:
			return v.Name, fmt.Sprintf("%s is not a whole number: use digits only, such as 1000", shown)
		case reflect.Bool:
			return v.Name, fmt.Sprintf("%s: use true or false", shown)
		case reflect.Map:
			sep, kv := v.field.Tag.Get("envSeparator"), v.field.Tag.Get("envKeyValSeparator")
			parts := strings.Split(raw, sep)
			for i, part := range parts {
				if !strings.Contains(part, kv) {
					what := fmt.Sprintf("entry %d of %d", i+1, len(parts))
					if part == "" {
						what += " is empty (a doubled or trailing " + sep + "?)"
					} else if !v.SecretValues {
						what += fmt.Sprintf(" (%q) has no %s", part, kv)
					} else {
						what += " has no " + kv
					}
					return v.Name, fmt.Sprintf("%s: %s: write key%svalue%skey%svalue", v.Name, what, kv, sep, kv)
				}
			}
			return v.Name, fmt.Sprintf("%s: write key%svalue%skey%svalue", v.Name, kv, sep, kv)
		}
		return v.Name, fmt.Sprintf("%s cannot be read", shown)
	}
	return "", err.Error()
}

func (c *Config) resolveFiles(environment map[string]string) []Problem {
	var problems []Problem
	pick := func(name string, value *string, fromFile string) {
		if fromFile == "" {
			return
		}
		if environment[Prefix+name] != "" {
			problems = append(problems, Problem{Prefix + name, fmt.Sprintf("%s%s and %s%s_FILE are both set: keep one", Prefix, name, Prefix, name)})
			return
		}
		*value = strings.TrimRight(fromFile, "\r\n")
	}
	pick("MONGO_URI", &c.MongoURI, c.MongoURIFile)
	pick("KAFKA_SASL_PASSWORD", &c.KafkaSASLPassword, c.KafkaSASLPasswordFile)
	return problems
}

var collectionName = regexp.MustCompile(`^[^$\x00]{1,120}$`)

func (c *Config) validate(failed map[string]bool) []Problem {
	var p []Problem
	add := func(name, format string, args ...any) {
		if !failed[Prefix+name] {
			p = append(p, Problem{Prefix + name, fmt.Sprintf(format, args...)})
		}
	}
	if strings.TrimSpace(c.KafkaBrokers) == "" {
		add("KAFKA_BROKERS", "%sKAFKA_BROKERS is required: set it to the bootstrap servers, e.g. kafka-0:9092,kafka-1:9092", Prefix)
	}
	if c.MongoURI == "" {
		add("MONGO_URI", "%sMONGO_URI is required (or %sMONGO_URI_FILE): set it to a connection string, e.g. mongodb://mongo:27017", Prefix, Prefix)
	} else if !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		add("MONGO_URI", "%sMONGO_URI must start with mongodb:// or mongodb+srv://", Prefix)
	}
	if c.MongoDatabase == "" {
		add("MONGO_DATABASE", "%sMONGO_DATABASE is required: set it to the database the collections live in", Prefix)
	}
	if c.KafkaGroupID == "" {
		add("KAFKA_GROUP_ID", "%sKAFKA_GROUP_ID must not be empty", Prefix)
	}
	if sel, err := c.TopicSelection(); err != nil {
		add("TOPICS", "%sTOPICS: %v", Prefix, err)
	} else if c.DLTTopic != "" && sel.Regex == nil && sel.Matches(c.DLTTopic) {
		add("TOPICS", "%sTOPICS lists %s, the dead-letter topic (%sDLT_TOPIC): statesync never consumes its own dead letters (they would loop); remove it from %sTOPICS (reprocess dead letters with statesync dlt replay)",
			Prefix, c.DLTTopic, Prefix, Prefix)
	}
	for entity, coll := range c.Collections {
		if entity == "" || !collectionName.MatchString(coll) {
			add("COLLECTIONS", "%sCOLLECTIONS: %q=%q is not entity=collection (collection names cannot be empty or hold $)", Prefix, entity, coll)
		}
	}
	if wc := c.MongoWriteConcern; wc != "majority" && !isPositiveInt(wc) {
		add("MONGO_WRITE_CONCERN", "%sMONGO_WRITE_CONCERN=%q: use majority or a number of nodes such as 1", Prefix, wc)
	}
	positive := []struct {
		name string
		v    int
	}{{"BATCH_MAX_DOCS", c.BatchMaxDocs}, {"BATCH_MAX_BYTES", c.BatchMaxBytes}, {"WRITE_CONCURRENCY", c.WriteConcurrency}, {"UNWRITABLE_AFTER", c.UnwritableAfter}, {"MONGO_BULK_PARALLEL", c.MongoBulkParallel}}
	for _, f := range positive {
		if f.v <= 0 {
			add(f.name, "%s%s=%d: must be at least 1", Prefix, f.name, f.v)
		}
	}
	if c.MongoMaxBulkOps < 0 {
		add("MONGO_MAX_BULK_OPS", "%sMONGO_MAX_BULK_OPS=%d: use 0 (no limit) or a positive number", Prefix, c.MongoMaxBulkOps)
	}
	if c.StaleGuard && !c.SyncMetadata && !failed[Prefix+"SYNC_METADATA"] {
		add("STALE_GUARD", "%sSTALE_GUARD=true needs %sSYNC_METADATA=true (the guard compares the stored processedAt): enable metadata or set STALE_GUARD=false", Prefix, Prefix)
	}
	if c.BatchMaxDocs > 100000 {
		add("BATCH_MAX_DOCS", "%sBATCH_MAX_DOCS=%d: at most 100000 (one bulk write)", Prefix, c.BatchMaxDocs)
	}
	durations := []struct {
		name string
		v    time.Duration
	}{{"TOPIC_REFRESH_INTERVAL", c.TopicRefreshInterval}, {"MONGO_TIMEOUT", c.MongoTimeout}, {"BATCH_MAX_WAIT", c.BatchMaxWait}, {"RETRY_MAX_BACKOFF", c.RetryMaxBackoff}, {"SHUTDOWN_GRACE", c.ShutdownGrace}, {"STUCK_AFTER", c.StuckAfter}, {"FUTURE_SKEW", c.FutureSkew}}
	for _, f := range durations {
		if f.v <= 0 {
			add(f.name, "%s%s=%s: must be a positive duration such as 30s", Prefix, f.name, f.v)
		}
	}
	if c.DLTTopic == "" {
		add("DLT_TOPIC", "%sDLT_TOPIC must not be empty", Prefix)
	}
	if c.SyncMetadata && (c.SyncField == "" || strings.HasPrefix(c.SyncField, "$") || strings.Contains(c.SyncField, ".") || c.SyncField == "_id") {
		add("SYNC_FIELD", "%sSYNC_FIELD=%q: use a plain field name such as _sync (no $, no dots, not _id)", Prefix, c.SyncField)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("LOG_LEVEL", "%sLOG_LEVEL=%q: use debug, info, warn or error", Prefix, c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "console", "auto":
	default:
		add("LOG_FORMAT", "%sLOG_FORMAT=%q: use json, console or auto", Prefix, c.LogFormat)
	}
	keys := make([]string, 0, len(c.KafkaProperties))
	for k := range c.KafkaProperties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "group.id", "bootstrap.servers", "enable.auto.offset.store", "partition.assignment.strategy", "enable.auto.commit":
			add("KAFKA_PROPERTIES", "%sKAFKA_PROPERTIES sets %s, which statesync manages: use the dedicated variable or drop it", Prefix, k)
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

// Var describes one variable, read from the Config struct tags.
type Var struct {
	Name     string // with Prefix
	Default  string // as written in the tag; "" when none
	Desc     string // 'quoted' words are code
	Required bool
	// Secret: the value is never shown or echoed. SecretValues: a
	// key=value list whose secret-looking values are masked.
	Secret, SecretValues bool
	// File: the variable names a file whose content is the value of
	// another variable (its *_FILE form).
	File bool

	field reflect.StructField
	index int
	kind  reflect.Kind
}

// Vars lists every variable statesync reads, in the order of the struct.
func Vars() []Var {
	t := reflect.TypeOf(Config{})
	var vars []Var
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("env")
		if !ok {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		vars = append(vars, Var{
			Name: Prefix + name, Default: f.Tag.Get("envDefault"), Desc: f.Tag.Get("desc"),
			Required: f.Tag.Get("required") == "true", Secret: f.Tag.Get("secret") == "true", SecretValues: f.Tag.Get("secret") == "values",
			File: strings.Contains(","+opts+",", ",file,"), field: f, index: i, kind: f.Type.Kind(),
		})
	}
	return vars
}

func varByField(field string) (Var, bool) {
	for _, v := range Vars() {
		if v.field.Name == field {
			return v, true
		}
	}
	return Var{}, false
}

// Reference is the configuration reference as text for a terminal: one
// block per variable (name, default, meaning).
func Reference() string {
	var b strings.Builder
	for _, v := range Vars() {
		fmt.Fprintf(&b, "  %s (%s)\n      %s\n", v.Name, v.defaultText(false), v.Desc)
	}
	return b.String()
}

// ReferenceMarkdown is the configuration reference as the README's table.
func ReferenceMarkdown() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	for _, v := range Vars() {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, v.defaultText(true), codeQuotes.ReplaceAllString(v.Desc, "`$1`"))
	}
	return b.String()
}

var codeQuotes = regexp.MustCompile(`'([^']+)'`)

func (v Var) defaultText(markdown bool) string {
	switch {
	case v.Required:
		return "required"
	case v.Default == "":
		return "empty"
	case markdown:
		return "`" + v.Default + "`"
	}
	return "default " + v.Default
}

// Masked returns the effective configuration as sorted "VARIABLE=value"
// lines, secrets replaced by ****: secret variables, the password and
// secret query values of the MongoDB URI, and the secret-looking librdkafka
// properties (see SecretProperty). *_FILE variables are not listed: their
// content is the value of the variable they stand for.
func (c Config) Masked() []string {
	rv := reflect.ValueOf(c)
	var lines []string
	for _, v := range Vars() {
		if v.File {
			continue
		}
		f := rv.Field(v.index)
		var value string
		switch x := f.Interface().(type) {
		case map[string]string:
			value = joinMap(x, v.field.Tag.Get("envSeparator"), v.field.Tag.Get("envKeyValSeparator"), v.SecretValues)
		case time.Duration:
			value = x.String()
		default:
			value = fmt.Sprint(x)
		}
		switch {
		case c.failed[v.Name]:
			value = "(invalid: see the error)"
		case v.Name == Prefix+"MONGO_URI":
			value = MaskURI(value)
		case v.Secret:
			value = mask(value)
		}
		lines = append(lines, v.Name+"="+value)
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

// SecretProperty reports whether a librdkafka property holds a secret:
// passwords, secrets, tokens, credentials, keys and PEM blocks, every
// sasl.* property but the mechanism, username and Kerberos service name,
// and the OAuth configuration.
func SecretProperty(key string) bool {
	k := strings.ToLower(key)
	switch k {
	case "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.kerberos.service.name", "sasl.oauthbearer.method":
		return false
	}
	for _, w := range []string{"password", "secret", "token", "credential", "oauth", "jaas"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return strings.HasPrefix(k, "sasl.") || strings.HasSuffix(k, ".pem") || strings.HasSuffix(k, ".key") || strings.HasSuffix(k, "_key")
}

// secretQueryParam reports whether a MongoDB URI option holds a secret.
func secretQueryParam(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "password") || strings.Contains(n, "secret") || strings.Contains(n, "token")
}

// MaskURI hides the password of a MongoDB connection string (everything
// between the user name and the last @, so an unescaped @ in the password
// does not leak its tail) and the values of secret options, including the
// secret authMechanismProperties (AWS_SESSION_TOKEN:...).
func MaskURI(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		if uri == "" {
			return ""
		}
		return "****" // not a URI: it could be anything
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if user, _, hasPassword := strings.Cut(rest[:at], ":"); hasPassword {
			rest = user + ":****" + rest[at:]
		}
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	if !hasQuery {
		return scheme + "://" + rest
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		name, value, _ := strings.Cut(p, "=")
		switch {
		case secretQueryParam(name) && value != "":
			params[i] = name + "=****"
		case strings.EqualFold(name, "authMechanismProperties"):
			params[i] = name + "=" + maskMechanismProperties(value)
		}
	}
	return scheme + "://" + path + "?" + strings.Join(params, "&")
}

func maskMechanismProperties(value string) string {
	props := strings.Split(value, ",")
	for j, kv := range props {
		k, _, hasValue := strings.Cut(kv, ":")
		if unescaped, err := url.QueryUnescape(k); err == nil {
			k = unescaped
		}
		if hasValue && (secretQueryParam(k) || strings.Contains(strings.ToLower(k), "key")) {
			props[j] = strings.SplitN(kv, ":", 2)[0] + ":****"
		}
	}
	return strings.Join(props, ",")
}

// Secrets returns the secret values the configuration holds (the SASL
// password, the URI password and secret options, secret librdkafka
// properties), escaped and unescaped: what Redact removes from any text.
func (c Config) Secrets() []string {
	var out []string
	add := func(s string) {
		if len(s) >= minRedact {
			out = append(out, s)
		}
		if u, err := url.QueryUnescape(s); err == nil && u != s && len(u) >= minRedact {
			out = append(out, u)
		}
	}
	add(c.KafkaSASLPassword)
	for k, v := range c.KafkaProperties {
		if SecretProperty(k) {
			add(v)
		}
	}
	if _, rest, ok := strings.Cut(c.MongoURI, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
				// the driver splits at the first @: an unescaped @ in the
				// password leaves its head and tail in its errors
				for _, part := range strings.Split(pw, "@") {
					add(part)
				}
			}
		}
		if _, query, ok := strings.Cut(rest, "?"); ok {
			for _, p := range strings.Split(query, "&") {
				name, value, _ := strings.Cut(p, "=")
				if secretQueryParam(name) {
					add(value)
				}
				if strings.EqualFold(name, "authMechanismProperties") {
					if u, err := url.QueryUnescape(value); err == nil {
						value = u
					}
					for _, kv := range strings.Split(value, ",") {
						if k, v, ok := strings.Cut(kv, ":"); ok && (secretQueryParam(k) || strings.Contains(strings.ToLower(k), "key")) {
							add(v)
						}
					}
				}
			}
		}
	} else if c.MongoURI != "" {
		add(c.MongoURI)
	}
	// longest first, so a secret containing another is replaced whole
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// minRedact: shorter secrets are not searched for in text (replacing every
// "ab" would garble the message, and such a secret is no secret).
const minRedact = 3

// Redact replaces every secret of c found in s by ****.
func (c Config) Redact(s string) string {
	for _, secret := range c.Secrets() {
		s = strings.ReplaceAll(s, secret, "****")
	}
	return s
}

func joinMap(m map[string]string, sep, kv string, maskSecrets bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		if maskSecrets && SecretProperty(k) {
			v = mask(v)
		}
		parts = append(parts, k+kv+v)
	}
	return strings.Join(parts, sep)
}

// Variables that share the prefix without being statesync's (the local
// stack, tests, benchmarks, image builds; the chart's POD_NAME, which
// KAFKA_PROPERTIES refers to as $(STATESYNC_POD_NAME)): never reported as
// unknown.
var toolingPrefixes = []string{"TEST_", "STACK_", "E2E_", "BENCH_", "MODEL_", "IMAGE", "CACHE_DIR", "KAFKA_VERSION", "DEBIAN_MIRROR", "POD_NAME"}

// unknownVariables reports the STATESYNC_* variables statesync does not
// read: a likely misspelling of a known one (at most 3 edits away) is a
// problem naming the closest; any other is a warning.
func unknownVariables(environment map[string]string) (problems []Problem, warnings []string) {
	known := map[string]bool{}
	var names []string
	for _, v := range Vars() {
		known[v.Name] = true
		names = append(names, v.Name)
	}
	var unknown []string
outer:
	for name := range environment {
		if !strings.HasPrefix(name, Prefix) || known[name] {
			continue
		}
		for _, p := range toolingPrefixes {
			if strings.HasPrefix(name, Prefix+p) {
				continue outer
			}
		}
		unknown = append(unknown, name)
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		best, dist := "", -1
		for _, k := range names {
			if d := editDistance(name, k); dist < 0 || d < dist {
				best, dist = k, d
			}
		}
		if dist <= 3 {
			problems = append(problems, Problem{name, fmt.Sprintf("%s is not a statesync variable: did you mean %s?", name, best)})
		} else {
			warnings = append(warnings, fmt.Sprintf("%s is not a statesync variable and is ignored (see statesync env)", name))
		}
	}
	return problems, warnings
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Package deploy asserts what the statesync Helm chart renders. Run it through helm_test.sh, which
// provides a helm binary (HELM); it is its own module so the daemon's go.mod stays clean.
//
// Every manifest that any test renders is decoded strictly into the Go type the API server itself
// decodes it into (k8s.io/api, and the prometheus-operator's monitoring.coreos.com/v1 types for
// ServiceMonitor, PodMonitor and PrometheusRule): an unknown or misspelt field, a value of the
// wrong type or a malformed quantity fails the test (render_test.go).
package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
)

const (
	chartDir    = "helm/statesync"
	exampleDir  = "helm/examples/codr-service"
	namespace   = "codr"
	kubeVersion = "1.30.0"
)

func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		APIVersion string `yaml:"apiVersion"`
		Type       string `yaml:"type"`
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.APIVersion != "v2" || c.Type != "application" {
		t.Fatalf("Chart.yaml: apiVersion %q type %q, want v2 application", c.APIVersion, c.Type)
	}
	return c.AppVersion
}

// minimal is the least a standalone install needs.
func minimal() object {
	return object{
		"kafka": object{"brokers": "kafka:9092"},
		"mongo": object{"uri": "mongodb://u:hunter2@mongo:27017/", "database": "codr"},
	}
}

// merge returns base with overrides applied key by key (objects merge, everything else replaces).
func merge(base, over object) object {
	out := object{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bo, ok := out[k].(object); ok {
			if oo, ok := v.(object); ok {
				out[k] = merge(bo, oo)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// ---- helm lint ------------------------------------------------------------------------------

var exampleDeps struct {
	once sync.Once
	out  string
	err  error
}

// buildExampleDeps runs helm dependency build once: the file:// dependency needs no network.
func buildExampleDeps(t *testing.T) {
	t.Helper()
	exampleDeps.once.Do(func() {
		var stderr string
		exampleDeps.out, stderr, exampleDeps.err = runHelm(t, "dependency", "build", exampleDir)
		exampleDeps.out += stderr
	})
	if exampleDeps.err != nil {
		t.Fatalf("helm dependency build %s: %v\n%s", exampleDir, exampleDeps.err, exampleDeps.out)
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	t.Run("standalone values pass helm lint --strict", func(t *testing.T) {
		lint(t, chartDir, filepath.Join(chartDir, "ci/standalone-values.yaml"))
	})
	t.Run("sidecar values pass helm lint --strict", func(t *testing.T) {
		lint(t, chartDir, filepath.Join(chartDir, "ci/sidecar-values.yaml"))
	})
	t.Run("the example service chart builds its file:// dependency offline and passes helm lint --strict", func(t *testing.T) {
		buildExampleDeps(t)
		lint(t, exampleDir)
	})
	t.Run("helm lint fails without the required values", func(t *testing.T) {
		out, stderr, err := runHelm(t, "lint", "--strict", "--kube-version", kubeVersion, chartDir)
		if err == nil {
			t.Fatalf("helm lint passed on empty brokers and database:\n%s", out)
		}
		if !strings.Contains(out+stderr, "brokers") {
			t.Errorf("lint error does not name kafka.brokers:\n%s%s", out, stderr)
		}
	})
}

func lint(t *testing.T, dir string, valueFiles ...string) {
	t.Helper()
	args := []string{"lint", "--strict", "--kube-version", kubeVersion, dir}
	for _, f := range valueFiles {
		args = append(args, "-f", f)
	}
	out, stderr, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
		t.Errorf("helm lint reported problems:\n%s", out)
	}
}

// ---- standalone mode ------------------------------------------------------------------------

func TestStandalone(t *testing.T) {
	t.Parallel()
	docs := mustTemplate(t, chartDir, "rel", filepath.Join(chartDir, "ci/standalone-values.yaml"))
	const name = "rel-statesync"

	t.Run("it renders the workload, its Secret, monitoring and no PodMonitor", func(t *testing.T) {
		// A StatefulSet: static group membership (the default) needs pod names that survive a rollout.
		want := []string{"ConfigMap", "PodDisruptionBudget", "PrometheusRule", "Secret", "Service", "ServiceAccount", "ServiceMonitor", "StatefulSet"}
		if got := docs.kinds(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("kinds = %v, want %v", got, want)
		}
		for _, m := range docs {
			if m.Namespace != namespace {
				t.Errorf("%s %s in namespace %q, want %q", m.Kind, m.Name, m.Namespace, namespace)
			}
		}
	})

	d := workloadOf(t, docs)
	c := container(t, d, "statesync")

	t.Run("every STATESYNC_ variable carries the value the binary expects", func(t *testing.T) {
		assertEnv(t, c, map[string]string{
			"STATESYNC_KAFKA_BROKERS":          "kafka-0.kafka:9092,kafka-1.kafka:9092",
			"STATESYNC_KAFKA_GROUP_ID":         "statesync",
			"STATESYNC_KAFKA_PROPERTIES":       "group.instance.id=$(STATESYNC_POD_NAME);session.timeout.ms=45000",
			"STATESYNC_TOPICS":                 `^codr\.state\..+`,
			"STATESYNC_TOPIC_REFRESH_INTERVAL": "30s",
			"STATESYNC_DLT_TOPIC":              "codr.svc.mongo.dlt",
			"STATESYNC_MONGO_DATABASE":         "codr",
			"STATESYNC_MONGO_WRITE_CONCERN":    "majority",
			"STATESYNC_MONGO_TIMEOUT":          "30s",
			"STATESYNC_MONGO_MAX_BULK_OPS":     "0",
			"STATESYNC_MONGO_BULK_PARALLEL":    "1",
			"STATESYNC_BATCH_MAX_DOCS":         "1000",
			"STATESYNC_BATCH_MAX_BYTES":        "8388608",
			"STATESYNC_BATCH_MAX_WAIT":         "200ms",
			"STATESYNC_WRITE_CONCURRENCY":      "4",
			"STATESYNC_RETRY_MAX_BACKOFF":      "30s",
			"STATESYNC_UNWRITABLE_AFTER":       "5",
			"STATESYNC_SYNC_METADATA":          "true",
			"STATESYNC_SYNC_FIELD":             "_sync",
			"STATESYNC_STALE_GUARD":            "true",
			"STATESYNC_LOG_LEVEL":              "info",
			"STATESYNC_LOG_FORMAT":             "json",
			"STATESYNC_HTTP_ADDR":              ":8080",
			"STATESYNC_SHUTDOWN_GRACE":         "30s",
			"STATESYNC_STUCK_AFTER":            "5m",
			"GOMEMLIMIT":                       "192MiB", // 0.75 of the 256Mi limit
		})
		for _, absent := range []string{"STATESYNC_COLLECTIONS", "STATESYNC_KAFKA_SASL_USERNAME", "STATESYNC_KAFKA_SASL_PASSWORD", "STATESYNC_KAFKA_SASL_PASSWORD_FILE", "STATESYNC_MONGO_URI"} {
			if hasEnv(c, absent) {
				t.Errorf("%s is set although its value is empty", absent)
			}
		}
		for _, e := range c.Env {
			if !strings.HasPrefix(e.Name, "STATESYNC_") && e.Name != "GOMEMLIMIT" {
				t.Errorf("unexpected variable %s", e.Name)
			}
		}
	})

	t.Run("the MongoDB URI comes from the chart's Secret as a read-only file, never as an environment value", func(t *testing.T) {
		assertEnv(t, c, map[string]string{"STATESYNC_MONGO_URI_FILE": "/etc/statesync/secrets/mongo-uri"})
		assertFile(t, mountedFiles(t, d.Template.Spec, c), "/etc/statesync/secrets/mongo-uri", secretFile{Secret: name, Key: "mongo-uri"})
		s := one[*corev1.Secret](t, docs, "Secret")
		if s.Name != name {
			t.Errorf("secret %s, want %s", s.Name, name)
		}
		// data is base64 in the manifest; decoding into corev1.Secret checked and decoded it.
		if uri := string(s.Data["mongo-uri"]); uri != "mongodb://statesync:secret@mongo-0.mongo:27017/?replicaSet=rs0" {
			t.Errorf("secret mongo-uri = %q", uri)
		}
		for _, e := range c.Env {
			if strings.Contains(e.Value, "statesync:secret") {
				t.Errorf("%s carries the password in clear", e.Name)
			}
		}
		if d.Template.Annotations["checksum/statesync-secret"] == "" {
			t.Error("no checksum/secret annotation: a changed secret would not roll the pods")
		}
	})

	t.Run("liveness probes /healthz and readiness /readyz on the HTTP port", func(t *testing.T) {
		if port(t, c, "statesync-http") != 8080 {
			t.Errorf("port statesync-http = %d, want 8080", port(t, c, "statesync-http"))
		}
		if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "statesync-http" {
			t.Errorf("livenessProbe = %+v, want GET /healthz on statesync-http", p)
		}
		if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "statesync-http" {
			t.Errorf("readinessProbe = %+v, want GET /readyz on statesync-http", p)
		}
	})

	t.Run("it runs as non-root with a read-only root filesystem and no capabilities", func(t *testing.T) {
		sc := c.SecurityContext
		if sc == nil {
			t.Fatal("no container securityContext")
		}
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
			t.Errorf("container runAsNonRoot/runAsUser = %v/%v, want true/65532", sc.RunAsNonRoot, sc.RunAsUser)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem is not true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("capabilities.drop = %v, want [ALL]", sc.Capabilities.Drop)
		}
		pod := d.Template.Spec.SecurityContext
		if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot {
			t.Error("pod securityContext.runAsNonRoot is not true")
		}
	})

	t.Run("resources default to 100m/128Mi requests and 1 CPU/256Mi limits", func(t *testing.T) {
		r := c.Resources
		if r.Requests.Cpu().String() != "100m" || r.Requests.Memory().String() != "128Mi" || r.Limits.Cpu().String() != "1" || r.Limits.Memory().String() != "256Mi" {
			t.Errorf("resources = %+v", r)
		}
	})

	t.Run("the pod's grace period exceeds statesync's shutdown grace", func(t *testing.T) {
		if got := d.Template.Spec.TerminationGracePeriodSeconds; got == nil || *got != 45 {
			t.Errorf("terminationGracePeriodSeconds = %v, want 45 (30s shutdown grace + 15)", got)
		}
	})

	t.Run("the image is the chart's appVersion and the command is run", func(t *testing.T) {
		if want := "codr/statesync:" + chartAppVersion(t); c.Image != want {
			t.Errorf("image = %q, want %q", c.Image, want)
		}
		if strings.Join(c.Args, " ") != "run" {
			t.Errorf("args = %v, want [run]", c.Args)
		}
		if d.Replicas == nil || *d.Replicas != 2 {
			t.Errorf("replicas = %v, want 2", d.Replicas)
		}
	})

	t.Run("the Service and ServiceMonitor reach the metrics port of these pods", func(t *testing.T) {
		s := one[*corev1.Service](t, docs, "Service")
		for k, v := range s.Spec.Selector {
			if d.Template.Labels[k] != v {
				t.Errorf("service selects %s=%s, pod has %q", k, v, d.Template.Labels[k])
			}
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].TargetPort.String() != "statesync-http" || s.Spec.Ports[0].Name != "http" {
			t.Errorf("service ports = %+v", s.Spec.Ports)
		}
		sm := one[*monitoringv1.ServiceMonitor](t, docs, "ServiceMonitor")
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("servicemonitor endpoints = %+v", sm.Spec.Endpoints)
		}
		if len(sm.Spec.Selector.MatchLabels) == 0 {
			t.Error("servicemonitor selects every service")
		}
		for k, v := range sm.Spec.Selector.MatchLabels {
			if s.Labels[k] != v {
				t.Errorf("servicemonitor selects %s=%s, service has %q", k, v, s.Labels[k])
			}
		}
	})
}

// ---- values reach the container -------------------------------------------------------------

func TestValues(t *testing.T) {
	t.Parallel()
	t.Run("tuning values, maps and large numbers render as the binary parses them", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "sync", merge(minimal(), object{
			"kafka": object{
				"groupId": "orders-sync",
				"topics":  "codr.state.order,codr.state.order-line",
				"properties": object{
					"security.protocol":                   "SASL_SSL",
					"sasl.mechanism":                      "SCRAM-SHA-512",
					"queued.max.messages.kbytes":          1000000,
					"enable.ssl.certificate.verification": true,
				},
				"dltTopic": "codr.svc.orders.dlt",
			},
			"mongo": object{
				"collections":  object{"order-line": "orderLines", "order": "orders"},
				"writeConcern": 2,
				"timeout":      "10s",
			},
			"batch":                object{"maxDocs": 5000, "maxBytes": 16777216, "maxWait": "1s"},
			"writeConcurrency":     8,
			"log":                  object{"level": "debug", "format": "console"},
			"shutdownGraceSeconds": 60,
			"stuckAfter":           "10m",
			"sync":                 object{"metadata": false, "field": "_meta", "staleGuard": false},
			"http":                 object{"port": 9000},
			"extraEnv":             []any{object{"name": "GODEBUG", "value": "madvdontneed=1"}, object{"name": "STATESYNC_LOG_LEVEL", "value": "warn"}},
		}))
		d := workloadOf(t, docs)
		c := container(t, d, "statesync")
		assertEnv(t, c, map[string]string{
			"STATESYNC_KAFKA_GROUP_ID":      "orders-sync",
			"STATESYNC_TOPICS":              "codr.state.order,codr.state.order-line",
			"STATESYNC_KAFKA_PROPERTIES":    "enable.ssl.certificate.verification=true;group.instance.id=$(STATESYNC_POD_NAME);queued.max.messages.kbytes=1000000;sasl.mechanism=SCRAM-SHA-512;security.protocol=SASL_SSL;session.timeout.ms=45000",
			"STATESYNC_DLT_TOPIC":           "codr.svc.orders.dlt",
			"STATESYNC_COLLECTIONS":         "order=orders,order-line=orderLines",
			"STATESYNC_MONGO_WRITE_CONCERN": "2",
			"STATESYNC_MONGO_TIMEOUT":       "10s",
			"STATESYNC_BATCH_MAX_DOCS":      "5000",
			"STATESYNC_BATCH_MAX_BYTES":     "16777216",
			"STATESYNC_BATCH_MAX_WAIT":      "1s",
			"STATESYNC_WRITE_CONCURRENCY":   "8",
			"STATESYNC_LOG_FORMAT":          "console",
			"STATESYNC_SHUTDOWN_GRACE":      "60s",
			"STATESYNC_STUCK_AFTER":         "10m",
			"STATESYNC_SYNC_METADATA":       "false",
			"STATESYNC_SYNC_FIELD":          "_meta",
			"STATESYNC_STALE_GUARD":         "false",
			"STATESYNC_HTTP_ADDR":           ":9000",
			"GODEBUG":                       "madvdontneed=1",
			// extraEnv comes last, so it overrides the chart's own variable.
			"STATESYNC_LOG_LEVEL": "warn",
		})
		if port(t, c, "statesync-http") != 9000 {
			t.Errorf("container port = %d, want 9000", port(t, c, "statesync-http"))
		}
		if got := d.Template.Spec.TerminationGracePeriodSeconds; got == nil || *got != 75 {
			t.Errorf("terminationGracePeriodSeconds = %v, want 75", got)
		}
	})

	t.Run("existing secrets are mounted as files and the chart renders no Secret of its own", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", object{
			"kafka": object{"brokers": "kafka:9092", "sasl": object{"username": "statesync", "existingSecret": "kafka-creds", "existingSecretKey": "password"}},
			"mongo": object{"existingSecret": "mongo-creds", "existingSecretKey": "uri", "database": "codr"},
		})
		if n := len(docs.ofKind("Secret")); n != 0 {
			t.Errorf("rendered %d Secrets, want none", n)
		}
		w := workloadOf(t, docs)
		c := container(t, w, "statesync")
		files := mountedFiles(t, w.Template.Spec, c)
		assertFile(t, files, env(t, c, "STATESYNC_MONGO_URI_FILE").Value, secretFile{Secret: "mongo-creds", Key: "uri"})
		assertFile(t, files, env(t, c, "STATESYNC_KAFKA_SASL_PASSWORD_FILE").Value, secretFile{Secret: "kafka-creds", Key: "password"})
		assertEnv(t, c, map[string]string{"STATESYNC_KAFKA_SASL_USERNAME": "statesync"})
	})

	t.Run("a SASL password given as a value goes into the chart's Secret", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{
			"kafka": object{"sasl": object{"username": "statesync", "password": "p4ss"}},
		}))
		w := workloadOf(t, docs)
		c := container(t, w, "statesync")
		assertFile(t, mountedFiles(t, w.Template.Spec, c), env(t, c, "STATESYNC_KAFKA_SASL_PASSWORD_FILE").Value, secretFile{Secret: "rel-statesync", Key: "sasl-password"})
		s := one[*corev1.Secret](t, docs, "Secret")
		if got := string(s.Data["sasl-password"]); got != "p4ss" {
			t.Errorf("secret sasl-password = %q", got)
		}
	})

	t.Run("secret files replace the secret references", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", object{
			"kafka":             object{"brokers": "kafka:9092", "sasl": object{"username": "statesync", "passwordFile": "/secrets/kafka/password"}},
			"mongo":             object{"uriFile": "/secrets/mongo/uri", "database": "codr"},
			"extraVolumes":      []any{object{"name": "secrets", "csi": object{"driver": "secrets-store.csi.k8s.io"}}},
			"extraVolumeMounts": []any{object{"name": "secrets", "mountPath": "/secrets", "readOnly": true}},
		})
		c := container(t, workloadOf(t, docs), "statesync")
		assertEnv(t, c, map[string]string{
			"STATESYNC_MONGO_URI_FILE":           "/secrets/mongo/uri",
			"STATESYNC_KAFKA_SASL_PASSWORD_FILE": "/secrets/kafka/password",
		})
		if hasEnv(c, "STATESYNC_MONGO_URI") || hasEnv(c, "STATESYNC_KAFKA_SASL_PASSWORD") {
			t.Error("both a secret file and a secret variable are set")
		}
		if len(mountedFiles(t, workloadOf(t, docs).Template.Spec, c)) != 0 {
			t.Error("the chart mounts secret files although the files are the user's own")
		}
		if n := len(docs.ofKind("Secret")); n != 0 {
			t.Errorf("rendered %d Secrets, want none", n)
		}
	})

	t.Run("an image digest and registry make the full reference", func(t *testing.T) {
		digest := "sha256:" + strings.Repeat("ab", 32)
		docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{
			"image": object{"registry": "registry.example/", "tag": "1.2.3", "digest": digest},
		}))
		c := container(t, workloadOf(t, docs), "statesync")
		if want := "registry.example/codr/statesync:1.2.3@" + digest; c.Image != want {
			t.Errorf("image = %q, want %q", c.Image, want)
		}
	})
}

// ---- values the chart must refuse -----------------------------------------------------------

// refused is values that helm template must refuse, and what its error must say.
type refused struct {
	name   string
	values object
	want   string // in helm's error output
}

// assertRefused runs each case as a subtest: helm template fails, and its error says want.
func assertRefused(t *testing.T, cases []refused) {
	for _, tc := range cases {
		t.Run("helm template refuses "+tc.name, func(t *testing.T) {
			docs, stderr, err := template(t, chartDir, "rel", tc.values)
			if err == nil {
				t.Fatalf("rendered %v; want an error", docs.kinds())
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("error does not say %q:\n%s", tc.want, stderr)
			}
		})
	}
}

func TestRejectedValues(t *testing.T) {
	t.Parallel()
	assertRefused(t, []refused{
		{"a log format other than json, console or auto", merge(minimal(), object{"log": object{"format": "xml"}}), "format"},
		{"missing Kafka brokers", object{"mongo": object{"uri": "mongodb://m/", "database": "codr"}}, "brokers"},
		{"missing MongoDB database", object{"kafka": object{"brokers": "k:9092"}, "mongo": object{"uri": "mongodb://m/"}}, "database"},
		{"no MongoDB URI, secret or file", object{"kafka": object{"brokers": "k:9092"}, "mongo": object{"database": "codr"}}, "mongo.uri"},
		{"a mode other than standalone or sidecar", merge(minimal(), object{"mode": "daemonset"}), "mode"},
		{"a number given as a string", merge(minimal(), object{"batch": object{"maxDocs": "1000"}}), "maxDocs"},
		{"a write concern the binary does not know", merge(minimal(), object{"mongo": object{"writeConcern": "most"}}), "writeConcern"},
		{"a librdkafka property statesync manages", merge(minimal(), object{"kafka": object{"properties": object{"group.id": "x"}}}), "group.id"},
		{"a duration Go cannot parse", merge(minimal(), object{"batch": object{"maxWait": "5 seconds"}}), "maxWait"},
		{"a misspelt top-level key", merge(minimal(), object{"replicas": 3}), "replicas"},
		{"a grace period shorter than the shutdown grace", merge(minimal(), object{"terminationGracePeriodSeconds": 20}), "terminationGracePeriodSeconds"},
		{"a SASL username without a password", merge(minimal(), object{"kafka": object{"sasl": object{"username": "u"}}}), "sasl"},
		{"a MongoDB URI without the mongodb scheme", merge(minimal(), object{"mongo": object{"uri": "http://mongo"}}), "uri"},
	})
}

// ---- sidecar mode ---------------------------------------------------------------------------

func TestSidecarMode(t *testing.T) {
	t.Parallel()
	t.Run("the chart alone renders no workload, only the Secret's consumers' monitoring", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", filepath.Join(chartDir, "ci/sidecar-values.yaml"))
		for _, kind := range []string{"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ServiceMonitor"} {
			if n := len(docs.ofKind(kind)); n != 0 {
				t.Errorf("sidecar mode rendered %d %s", n, kind)
			}
		}
		one[*monitoringv1.PodMonitor](t, docs, "PodMonitor")
		one[*monitoringv1.PrometheusRule](t, docs, "PrometheusRule")
	})

	t.Run("including the sidecar while the dependency is standalone fails with advice", func(t *testing.T) {
		buildExampleDeps(t)
		_, stderr, err := template(t, exampleDir, "shop", object{"statesync": object{"mode": "standalone"}})
		if err == nil || !strings.Contains(stderr, "mode: sidecar") {
			t.Errorf("err = %v, stderr:\n%s", err, stderr)
		}
	})
}

func TestExampleServiceChart(t *testing.T) {
	t.Parallel()
	buildExampleDeps(t)
	docs := mustTemplate(t, exampleDir, "shop")

	deps := docs.ofKind("Deployment")
	if len(deps) != 1 {
		t.Fatalf("rendered %d Deployments, want only the service's (statesync in sidecar mode renders none)", len(deps))
	}
	d := workloadOf(t, manifests{deps[0]})

	t.Run("the service's Deployment runs the app and the statesync sidecar side by side", func(t *testing.T) {
		if d.Name != "shop-codr-service" {
			t.Errorf("deployment %s, want shop-codr-service", d.Name)
		}
		var names []string
		for _, c := range d.Template.Spec.Containers {
			names = append(names, c.Name)
		}
		if strings.Join(names, ",") != "app,statesync" {
			t.Errorf("containers = %v, want [app statesync]", names)
		}
	})

	c := container(t, d, "statesync")
	app := container(t, d, "app")

	t.Run("the sidecar is configured from the service chart's statesync values", func(t *testing.T) {
		assertEnv(t, c, map[string]string{
			"STATESYNC_KAFKA_BROKERS":  "kafka-0.kafka:9092,kafka-1.kafka:9092",
			"STATESYNC_KAFKA_GROUP_ID": "user-preference-service-statesync",
			"STATESYNC_TOPICS":         "codr.state.user-preference",
			"STATESYNC_MONGO_DATABASE": "codr",
			"STATESYNC_COLLECTIONS":    "user-preference=preferences",
			"STATESYNC_HTTP_ADDR":      ":9102",
			"STATESYNC_LOG_FORMAT":     "json",
		})
		assertFile(t, mountedFiles(t, d.Template.Spec, c), env(t, c, "STATESYNC_MONGO_URI_FILE").Value, secretFile{Secret: "user-preference-mongo", Key: "uri"})
		if want := "codr/statesync:" + chartAppVersion(t); c.Image != want {
			t.Errorf("image = %q, want %q", c.Image, want)
		}
	})

	t.Run("the sidecar keeps clear of the app's port and does not gate the pod's readiness", func(t *testing.T) {
		if p := port(t, c, "statesync-http"); p != 9102 || p == port(t, app, "http") {
			t.Errorf("statesync port %d, app port %d", p, port(t, app, "http"))
		}
		if c.ReadinessProbe != nil {
			t.Error("the sidecar has a readiness probe: a MongoDB outage would take the service out of its Service")
		}
		if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
			t.Errorf("sidecar livenessProbe = %+v, want GET /healthz", p)
		}
		if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
			t.Error("sidecar root filesystem is writable")
		}
	})

	t.Run("the pod gets the grace period and the label the PodMonitor selects", func(t *testing.T) {
		if got := d.Template.Spec.TerminationGracePeriodSeconds; got == nil || *got != 45 {
			t.Errorf("terminationGracePeriodSeconds = %v, want 45", got)
		}
		pm := one[*monitoringv1.PodMonitor](t, docs, "PodMonitor")
		if len(pm.Spec.Selector.MatchLabels) == 0 {
			t.Fatal("PodMonitor selects every pod")
		}
		for k, v := range pm.Spec.Selector.MatchLabels {
			if d.Template.Labels[k] != v {
				t.Errorf("PodMonitor selects %s=%s, pod has %q", k, v, d.Template.Labels[k])
			}
		}
		if eps := pm.Spec.PodMetricsEndpoints; len(eps) != 1 || eps[0].Port == nil || *eps[0].Port != "statesync-http" {
			t.Errorf("PodMonitor endpoints = %+v", eps)
		}
	})

	t.Run("alerts are scoped to the PodMonitor's job", func(t *testing.T) {
		pr := one[*monitoringv1.PrometheusRule](t, docs, "PrometheusRule")
		for _, r := range pr.Spec.Groups[0].Rules {
			if !strings.Contains(r.Expr.String(), `job="codr/shop-statesync"`) {
				t.Errorf("%s is not scoped to the PodMonitor job: %s", r.Alert, r.Expr.String())
			}
		}
	})
}

func TestAliasedDependency(t *testing.T) {
	t.Parallel()
	t.Run("a service chart that aliases the dependency passes the alias to statesync.sidecar", func(t *testing.T) {
		dir := t.TempDir()
		abs, err := filepath.Abs(chartDir)
		if err != nil {
			t.Fatal(err)
		}
		write := func(name, body string) {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("Chart.yaml", "apiVersion: v2\nname: billing\nversion: 0.1.0\ndependencies:\n  - name: statesync\n    alias: sync\n    version: \">=0.1.0-0\"\n    repository: file://"+abs+"\n")
		write("values.yaml", "sync:\n  mode: sidecar\n  kafka:\n    brokers: k:9092\n  mongo:\n    uri: mongodb://m/\n    database: billing\n")
		write("templates/deployment.yaml", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: billing
spec:
  selector:
    matchLabels: {app: billing}
  template:
    metadata:
      labels:
        app: billing
    spec:
      terminationGracePeriodSeconds: {{ include "statesync.sidecar.terminationGracePeriodSeconds" (dict "root" . "subchart" "sync") }}
      containers:
        - name: app
          image: billing:1
        {{- include "statesync.sidecar" (dict "root" . "subchart" "sync") | nindent 8 }}
      volumes:
        {{- include "statesync.sidecar.volumes" (dict "root" . "subchart" "sync") | nindent 8 }}
`)
		if out, stderr, err := runHelm(t, "dependency", "build", dir); err != nil {
			t.Fatalf("helm dependency build: %v\n%s%s", err, out, stderr)
		}
		docs := mustTemplate(t, dir, "inv")
		d := workloadOf(t, docs)
		c := container(t, d, "statesync")
		assertEnv(t, c, map[string]string{"STATESYNC_MONGO_DATABASE": "billing"})
		// The Secret is named after the alias, as the subchart renders it.
		s := one[*corev1.Secret](t, docs, "Secret")
		assertFile(t, mountedFiles(t, d.Template.Spec, c), env(t, c, "STATESYNC_MONGO_URI_FILE").Value, secretFile{Secret: s.Name, Key: "mongo-uri"})
	})
}

// ---- PrometheusRule -------------------------------------------------------------------------

var promql = parser.NewParser(parser.Options{})

// selectors returns the metric name and label matchers of every vector selector in expr.
func selectors(t *testing.T, expr string) map[string][]string {
	t.Helper()
	e, err := promql.ParseExpr(expr)
	if err != nil {
		t.Fatalf("not PromQL: %v\n%s", err, expr)
	}
	out := map[string][]string{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Name != "__name__" && !slices.Contains(out[vs.Name], m.String()) {
					out[vs.Name] = append(out[vs.Name], m.String())
				}
			}
			if _, seen := out[vs.Name]; !seen {
				out[vs.Name] = nil
			}
		}
		return nil
	})
	return out
}

func TestPrometheusRule(t *testing.T) {
	t.Parallel()
	docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{
		"metrics": object{"serviceMonitor": object{"enabled": true}},
		"prometheusRule": object{
			"enabled":              true,
			"deadLetters":          object{"threshold": 0.5, "window": "15m"},
			"lagGrowing":           object{"threshold": 5000},
			"stale":                object{"thresholdSeconds": 120, "for": "10m"},
			"produceToWrittenSlow": object{"window": "5m"},
			"additionalRuleLabels": object{"team": "platform"},
		},
	}))
	pr := one[*monitoringv1.PrometheusRule](t, docs, "PrometheusRule")
	if len(pr.Spec.Groups) != 1 {
		t.Fatalf("groups = %d, want 1", len(pr.Spec.Groups))
	}
	rules := map[string]monitoringv1.Rule{}
	for _, r := range pr.Spec.Groups[0].Rules {
		rules[r.Alert] = r
	}

	want := map[string]struct {
		metric   string
		forDur   string
		contains []string
	}{
		"StatesyncDeadLetters":    {"statesync_records_dead_lettered_total", "0m", []string{"rate(", "[15m]", "> 0.5"}},
		"StatesyncLagGrowing":     {"statesync_consumer_lag", "15m", []string{"deriv(", "> 5000", "> 0"}},
		"StatesyncNotReady":       {"statesync_ready", "5m", []string{"== 0"}},
		"StatesyncMongoDown":      {"statesync_mongo_up", "2m", []string{"== 0"}},
		"StatesyncCommitsStalled": {"statesync_last_commit_timestamp_seconds", "5m", []string{"time()", "statesync_consumer_lag"}},
		"StatesyncStale":          {"statesync_oldest_unwritten_seconds", "10m", []string{"max by (namespace, job, topic) (statesync_oldest_unwritten_seconds", "> 120"}},
		"StatesyncProduceToWrittenSlow": {"statesync_produce_to_written_seconds_bucket", "15m", []string{
			"histogram_quantile(0.99, sum by (namespace, job, topic, le) (rate(statesync_produce_to_written_seconds_bucket", "[5m]", "> 60"}},
	}
	for alert, w := range want {
		t.Run(alert+" is valid PromQL on its metric, scoped to this release, with the configured thresholds", func(t *testing.T) {
			r, ok := rules[alert]
			if !ok {
				t.Fatalf("no alert %s (have %v)", alert, keys(rules))
			}
			sels := selectors(t, r.Expr.String())
			if _, ok := sels[w.metric]; !ok {
				t.Errorf("expr does not read %s: %s", w.metric, r.Expr.String())
			}
			for metric, matchers := range sels {
				m := strings.Join(matchers, ",")
				if !strings.Contains(m, `namespace="codr"`) || !strings.Contains(m, `job="rel-statesync"`) {
					t.Errorf("%s{%s} is not scoped to namespace codr and job rel-statesync", metric, m)
				}
			}
			for _, s := range w.contains {
				if !strings.Contains(r.Expr.String(), s) {
					t.Errorf("expr lacks %q: %s", s, r.Expr.String())
				}
			}
			if r.For == nil || string(*r.For) != w.forDur {
				t.Errorf("for = %v, want %q", r.For, w.forDur)
			}
			if r.Labels["severity"] == "" || r.Labels["team"] != "platform" {
				t.Errorf("labels = %v, want a severity and team=platform", r.Labels)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Error("summary or description missing")
			}
		})
	}

	t.Run("annotations keep Prometheus template syntax for Prometheus to expand", func(t *testing.T) {
		if d := rules["StatesyncDeadLetters"].Annotations["description"]; !strings.Contains(d, "{{ $labels.topic }}") {
			t.Errorf("description = %q", d)
		}
	})

	t.Run("each alert can be turned off", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"prometheusRule": object{
			"enabled": true, "deadLetters": object{"enabled": false}, "commitsStalled": object{"enabled": false},
		}}))
		got := one[*monitoringv1.PrometheusRule](t, docs, "PrometheusRule").Spec.Groups[0].Rules
		var names []string
		for _, r := range got {
			names = append(names, r.Alert)
		}
		if strings.Join(names, ",") != "StatesyncLagGrowing,StatesyncNotReady,StatesyncMongoDown,StatesyncStale,StatesyncProduceToWrittenSlow" {
			t.Errorf("alerts = %v", names)
		}
		docs = mustTemplate(t, chartDir, "rel", merge(minimal(), object{"prometheusRule": object{
			"enabled": true, "stale": object{"enabled": false}, "produceToWrittenSlow": object{"enabled": false},
		}}))
		got = one[*monitoringv1.PrometheusRule](t, docs, "PrometheusRule").Spec.Groups[0].Rules
		names = nil
		for _, r := range got {
			names = append(names, r.Alert)
		}
		if strings.Join(names, ",") != "StatesyncDeadLetters,StatesyncLagGrowing,StatesyncNotReady,StatesyncMongoDown,StatesyncCommitsStalled" {
			t.Errorf("alerts = %v", names)
		}
	})

	t.Run("without a monitor of its own the alerts are scoped to the namespace", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"prometheusRule": object{"enabled": true}}))
		for _, r := range one[*monitoringv1.PrometheusRule](t, docs, "PrometheusRule").Spec.Groups[0].Rules {
			for metric, m := range selectors(t, r.Expr.String()) {
				if strings.Join(m, ",") != `namespace="codr"` {
					t.Errorf("%s: %s{%s}", r.Alert, metric, strings.Join(m, ","))
				}
			}
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---- Grafana dashboard ----------------------------------------------------------------------

func TestDashboard(t *testing.T) {
	t.Parallel()
	docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"grafanaDashboard": object{"enabled": true, "folder": "Codr"}}))
	cm := one[*corev1.ConfigMap](t, docs, "ConfigMap")

	t.Run("the ConfigMap carries the label the Grafana sidecar watches", func(t *testing.T) {
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("labels = %v", cm.Labels)
		}
		if cm.Annotations["grafana_folder"] != "Codr" {
			t.Errorf("annotations = %v", cm.Annotations)
		}
	})

	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["statesync.json"]), &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}

	var exprs []string
	titles := map[string]bool{}
	for _, p := range dash.Panels {
		titles[p.Title] = true
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}

	t.Run("every panel query is valid PromQL scoped by the namespace and job variables", func(t *testing.T) {
		if len(exprs) == 0 {
			t.Fatal("no queries")
		}
		r := strings.NewReplacer("$__rate_interval", "5m", "$namespace", "ns", "$job", "job")
		for _, e := range exprs {
			for metric, m := range selectors(t, r.Replace(e)) {
				if j := strings.Join(m, ","); !strings.Contains(j, `namespace=~"ns"`) || !strings.Contains(j, `job=~"job"`) {
					t.Errorf("%s{%s} ignores the dashboard variables", metric, j)
				}
			}
		}
	})

	t.Run("it shows every rate, lag by partition, write latency and produce-to-written p50 and p99, the oldest unwritten age, batch size, in-flight, pauses and ready", func(t *testing.T) {
		all := strings.Join(exprs, "\n")
		for _, s := range []string{
			"statesync_records_consumed_total", "statesync_records_written_total", "statesync_records_deleted_total",
			"statesync_records_skipped_total", "statesync_records_dead_lettered_total",
			"sum by (topic, partition) (statesync_consumer_lag",
			"histogram_quantile(0.5, sum by (le, topic) (rate(statesync_write_duration_seconds_bucket",
			"histogram_quantile(0.99, sum by (le, topic) (rate(statesync_write_duration_seconds_bucket",
			"statesync_batch_documents_bucket", "statesync_inflight_batches", "statesync_ready", "statesync_mongo_up",
			"statesync_write_retries_total", "statesync_partition_pauses_total",
			"histogram_quantile(0.5, sum by (le, topic) (rate(statesync_produce_to_written_seconds_bucket",
			"histogram_quantile(0.99, sum by (le, topic) (rate(statesync_produce_to_written_seconds_bucket",
			"max by (topic) (statesync_oldest_unwritten_seconds",
		} {
			if !strings.Contains(all, s) {
				t.Errorf("no query contains %q", s)
			}
		}
		for _, title := range []string{"Consumer lag by partition", "Write latency p50 / p99", "Batch size (documents)", "In-flight batches", "Dead-lettered records/s",
			"Produce → written p50 / p99", "Oldest unwritten record age"} {
			if !titles[title] {
				t.Errorf("no panel %q", title)
			}
		}
	})
}

// ---- helpers of the helpers -----------------------------------------------------------------

func TestMerge(t *testing.T) {
	t.Parallel()
	t.Run("merge keeps untouched keys and replaces leaves", func(t *testing.T) {
		got := merge(object{"a": object{"b": 1, "c": 2}, "d": 3}, object{"a": object{"c": 4}})
		b, _ := json.Marshal(got)
		if string(b) != `{"a":{"b":1,"c":4},"d":3}` {
			t.Errorf("merge = %s", b)
		}
	})
}

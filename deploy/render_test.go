package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// ---- rendering ------------------------------------------------------------------------------

type object = map[string]any

func helmBin(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	h, err := exec.LookPath("helm")
	if err != nil {
		t.Fatal("no helm: run bash deploy/helm_test.sh, which builds one, or set HELM")
	}
	return h
}

func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(helmBin(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// valuesFile writes values as a YAML file for helm -f.
func valuesFile(t *testing.T, values object) string {
	t.Helper()
	b, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir(): helm splits -f on commas, and test names have them.
	dir, err := os.MkdirTemp("", "statesync-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// set is a --set argument for template; setString a --set-string one; helmFlag any other argument.
type (
	set       string
	setString string
	helmFlag  string
)

// template runs helm template on dir with the given values (files, objects, --set arguments) and
// decodes every manifest strictly into its Kubernetes or prometheus-operator Go type (see
// decodeManifests): a manifest that does not decode fails the test. It returns helm's error
// output when helm itself fails.
func template(t *testing.T, dir, release string, values ...any) (manifests, string, error) {
	t.Helper()
	out, stderr, err := templateText(t, dir, release, values...)
	if err != nil {
		return nil, stderr, err
	}
	docs, err := decodeManifests(out)
	if err != nil {
		t.Fatalf("helm template %s rendered a manifest the API server would refuse:\n%v", dir, err)
	}
	return docs, "", nil
}

func templateText(t *testing.T, dir, release string, values ...any) (string, string, error) {
	t.Helper()
	args := []string{"template", release, dir, "--namespace", namespace, "--kube-version", kubeVersion}
	for _, v := range values {
		switch v := v.(type) {
		case string:
			args = append(args, "-f", v)
		case object:
			args = append(args, "-f", valuesFile(t, v))
		case set:
			args = append(args, "--set", string(v))
		case setString:
			args = append(args, "--set-string", string(v))
		case helmFlag:
			args = append(args, string(v))
		default:
			t.Fatalf("values must be a file name, an object or a --set argument, not %T", v)
		}
	}
	return runHelm(t, args...)
}

func mustTemplate(t *testing.T, dir, release string, values ...any) manifests {
	t.Helper()
	docs, stderr, err := template(t, dir, release, values...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", dir, err, stderr)
	}
	return docs
}

// mustTemplateText is mustTemplate that also returns helm's output, for the checks that read the
// rendered text; when helm fails it shows the values it was given.
func mustTemplateText(t *testing.T, dir, release string, values object) (manifests, string) {
	t.Helper()
	out, stderr, err := templateText(t, dir, release, values)
	if err != nil {
		b, _ := yaml.Marshal(values)
		t.Fatalf("helm template %s: %v\n%s\nvalues:\n%s", dir, err, stderr, b)
	}
	docs, err := decodeManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	return docs, out
}

// ---- strict decoding into the API's own types ------------------------------------------------

// manifest is one rendered object, decoded into its Go type (Obj: *appsv1.Deployment, ...).
type manifest struct {
	APIVersion, Kind, Name, Namespace string
	Source                            string // helm's "# Source:" template path
	Obj                               any
}

type manifests []manifest

// apiTypes are the Go types of every kind the chart may render, by apiVersion and kind: the
// Kubernetes API's own (k8s.io/api) and the prometheus-operator's (monitoring.coreos.com/v1).
var apiTypes = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                     func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return &monitoringv1.PodMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

var (
	docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)
	sourceLine   = regexp.MustCompile(`(?m)^# Source: (.+)$`)
)

// decodeManifests splits helm's output into documents and decodes each one as the API server does
// with fieldValidation=Strict: YAML with a duplicate key, a field the Go type does not have
// (case-sensitive: readonly is not readOnly), a value of the wrong JSON type (an integer for an
// env value), a malformed quantity, or a kind without a registered type is an error naming the
// document and the field.
func decodeManifests(out string) (manifests, error) {
	var docs manifests
	var errs []error
	for _, chunk := range docSeparator.Split(out, -1) {
		src := ""
		if m := sourceLine.FindStringSubmatch(chunk); m != nil {
			src = m[1]
		}
		m, err := decodeStrict([]byte(chunk))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src, err))
			continue
		}
		if m == nil {
			continue // empty or comments only
		}
		m.Source = src
		docs = append(docs, *m)
	}
	return docs, errors.Join(errs...)
}

func decodeStrict(doc []byte) (*manifest, error) {
	j, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("YAML: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return nil, nil
	}
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return nil, err
	}
	newObj, ok := apiTypes[head.APIVersion+"/"+head.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: no Go type registered for it (add it to apiTypes)", head.APIVersion, head.Kind)
	}
	obj := newObj()
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, errors.Join(strict...))
	}
	return &manifest{APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, Namespace: head.Metadata.Namespace, Obj: obj}, nil
}

func (m manifests) ofKind(kind string) []manifest {
	var out []manifest
	for _, o := range m {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m manifests) kinds() []string {
	var out []string
	for _, o := range m {
		out = append(out, o.Kind)
	}
	sort.Strings(out)
	return out
}

// one returns the only object of kind, as its Go type T (*appsv1.Deployment, ...).
func one[T any](t *testing.T, m manifests, kind string) T {
	t.Helper()
	objs := m.ofKind(kind)
	if len(objs) != 1 {
		t.Fatalf("want exactly one %s, rendered %d (kinds: %v)", kind, len(objs), m.kinds())
	}
	v, ok := objs[0].Obj.(T)
	if !ok {
		t.Fatalf("%s decoded as %T, not %T", kind, objs[0].Obj, v)
	}
	return v
}

// ---- reading the decoded objects --------------------------------------------------------------

// workload is the pod-owning object (Deployment or StatefulSet) as the assertions read it.
type workload struct {
	Kind, Name string
	Replicas   *int32
	Template   corev1.PodTemplateSpec
}

// workloadOf returns the only Deployment or StatefulSet of the manifests.
func workloadOf(t *testing.T, m manifests) *workload {
	t.Helper()
	var out []*workload
	for _, o := range m {
		switch w := o.Obj.(type) {
		case *appsv1.Deployment:
			out = append(out, &workload{Kind: o.Kind, Name: w.Name, Replicas: w.Spec.Replicas, Template: w.Spec.Template})
		case *appsv1.StatefulSet:
			out = append(out, &workload{Kind: o.Kind, Name: w.Name, Replicas: w.Spec.Replicas, Template: w.Spec.Template})
		}
	}
	if len(out) != 1 {
		t.Fatalf("want exactly one Deployment or StatefulSet, rendered %d (kinds: %v)", len(out), m.kinds())
	}
	return out[0]
}

func container(t *testing.T, d *workload, name string) corev1.Container {
	t.Helper()
	var names []string
	for _, c := range d.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
		names = append(names, c.Name)
	}
	t.Fatalf("deployment %s has no container %q (has %v)", d.Name, name, names)
	return corev1.Container{}
}

// env returns the container's variable; two of one name are an error (extraEnv merges by name).
func env(t *testing.T, c corev1.Container, name string) corev1.EnvVar {
	t.Helper()
	var found []corev1.EnvVar
	for _, e := range c.Env {
		if e.Name == name {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		t.Fatalf("container %s has no env %s", c.Name, name)
	case 1:
	default:
		t.Errorf("container %s has %d variables named %s", c.Name, len(found), name)
	}
	return found[len(found)-1]
}

func hasEnv(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}

// assertEnv checks literal values of environment variables.
func assertEnv(t *testing.T, c corev1.Container, want map[string]string) {
	t.Helper()
	for name, value := range want {
		e := env(t, c, name)
		if e.ValueFrom != nil {
			t.Errorf("%s: want value %q, got valueFrom", name, value)
			continue
		}
		if e.Value != value {
			t.Errorf("%s = %q, want %q", name, e.Value, value)
		}
	}
}

func port(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %s", c.Name, name)
	return 0
}

// noDuplicateEnv fails on two variables of one name in any container of the manifests.
func noDuplicateEnv(t *testing.T, docs manifests) {
	t.Helper()
	for _, m := range docs {
		var pod corev1.PodTemplateSpec
		switch w := m.Obj.(type) {
		case *appsv1.Deployment:
			pod = w.Spec.Template
		case *appsv1.StatefulSet:
			pod = w.Spec.Template
		default:
			continue
		}
		for _, c := range pod.Spec.Containers {
			seen := map[string]int{}
			for _, e := range c.Env {
				seen[e.Name]++
			}
			for n, k := range seen {
				if k > 1 {
					t.Errorf("%s container %s: %d variables named %s", m.Name, c.Name, k, n)
				}
			}
		}
	}
}

package deploy

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
)

var update = flag.Bool("update", false, "rewrite the values table of helm/statesync/README.md from values.yaml")

const (
	valuesStart = "<!-- values table: generated from values.yaml by `go test ./deploy -run TestChartREADME -update`; do not edit -->"
	valuesEnd   = "<!-- end of values table -->"
)

// valuesTable renders values.yaml as helm-docs does: one row per leaf key (an empty map or a list
// is a leaf), its type, its default, and the comment above it (its last paragraph).
func valuesTable(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var rows []string
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + key
			}
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				walk(key, v)
				continue
			}
			rows = append(rows, fmt.Sprintf("| `%s` | %s | %s | %s |", key, valueType(v), valueDefault(t, v), describe(k, v)))
		}
	}
	walk("", doc.Content[0])
	return strings.Join(append([]string{"| key | type | default | description |", "|---|---|---|---|"}, rows...), "\n")
}

func valueType(v *yaml.Node) string {
	switch {
	case v.Kind == yaml.MappingNode:
		return "object"
	case v.Kind == yaml.SequenceNode:
		return "list"
	case v.Tag == "!!int":
		return "int"
	case v.Tag == "!!float":
		return "float"
	case v.Tag == "!!bool":
		return "bool"
	default:
		return "string"
	}
}

func valueDefault(t *testing.T, v *yaml.Node) string {
	t.Helper()
	var x any
	if err := v.Decode(&x); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "|", `\|`)
	if s == "null" {
		s = "{}"
	}
	return "`" + s + "`"
}

// describe is the last paragraph of the comment above the key (section rulers dropped).
func describe(k, v *yaml.Node) string {
	c := k.HeadComment
	if i := strings.LastIndex(c, "\n\n"); i >= 0 {
		c = c[i+2:]
	}
	var words []string
	for _, line := range strings.Split(c, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if strings.HasPrefix(line, "----") {
			continue
		}
		words = append(words, line)
	}
	if v.LineComment != "" {
		words = append(words, strings.TrimSpace(strings.TrimPrefix(v.LineComment, "#")))
	}
	return strings.ReplaceAll(strings.TrimSpace(strings.Join(words, " ")), "|", `\|`)
}

// TestChartREADME: the chart's README lists every key of values.yaml with its default, as
// generated from values.yaml (run with -update to regenerate after changing values.yaml).
func TestChartREADME(t *testing.T) {
	p := filepath.Join(chartDir, "README.md")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, valuesStart), strings.Index(readme, valuesEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no values table markers", p)
	}
	want := valuesTable(t)
	got := strings.TrimSpace(readme[i+len(valuesStart) : j])
	if got == want {
		return
	}
	if *update {
		readme = readme[:i+len(valuesStart)] + "\n" + want + "\n" + readme[j:]
		if err := os.WriteFile(p, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the values table of %s", p)
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for k := 0; k < max(len(gl), len(wl)); k++ {
		g, w := "", ""
		if k < len(gl) {
			g = gl[k]
		}
		if k < len(wl) {
			w = wl[k]
		}
		if g != w {
			t.Fatalf("%s's values table differs from values.yaml at row %d:\n  README:      %s\n  values.yaml: %s\n"+
				"regenerate it: (cd deploy && go test -run TestChartREADME -update .)", p, k+1, g, w)
		}
	}
}

// TestRunbookURLs: every alert's runbook_url points at a heading of the README's Troubleshooting
// section (GitHub's anchor: the heading in lower case).
func TestRunbookURLs(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "\n## Troubleshooting\n")
	if i < 0 {
		t.Fatal("README.md has no ## Troubleshooting section")
	}
	section := readme[i+1:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "### ") {
			anchors[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(line, "### ")))] = true
		}
	}
	docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"prometheusRule": object{"enabled": true}}))
	pr := one[*monitoringv1.PrometheusRule](t, docs, "PrometheusRule")
	for _, r := range pr.Spec.Groups[0].Rules {
		u := r.Annotations["runbook_url"]
		base, anchor, ok := strings.Cut(u, "#")
		if !ok || base != "https://github.com/codr/statesync/blob/main/README.md" {
			t.Errorf("%s: runbook_url %q, want the README's URL and an anchor", r.Alert, u)
			continue
		}
		if anchor != strings.ToLower(r.Alert) || !anchors[anchor] {
			t.Errorf("%s: runbook_url anchor #%s: no ### %s heading under ## Troubleshooting in README.md", r.Alert, anchor, r.Alert)
		}
	}
	off := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"prometheusRule": object{"enabled": true, "runbookBaseUrl": ""}}))
	for _, r := range one[*monitoringv1.PrometheusRule](t, off, "PrometheusRule").Spec.Groups[0].Rules {
		if _, ok := r.Annotations["runbook_url"]; ok {
			t.Errorf("%s has a runbook_url with runbookBaseUrl empty", r.Alert)
		}
	}
}

// readmeSection returns the README's "## <title>" section, up to the next "## " heading.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README.md has no ## %s section", title)
	}
	section := readme[i+1:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	return section
}

var (
	yamlBlock     = regexp.MustCompile("(?s)```yaml\n(.*?)```")
	secretPath    = regexp.MustCompile(`/etc/statesync/secrets/[A-Za-z0-9._-]+`)
	statesyncVar  = regexp.MustCompile(`\bSTATESYNC_[A-Z0-9_]+\b`)
	configVarCell = regexp.MustCompile("(?m)^\\| `(STATESYNC_[A-Z0-9_]+)` \\|")
)

// TestREADMEConnectingSecurely renders every Helm values example of the README's "Connecting
// securely" section against the chart, standalone and as the example service chart's statesync
// values, so the examples cannot rot: each renders and decodes strictly, mounts every secret
// read-only and none as an environment value, and every file the section names (a URI's
// tlsCAFile, a SASL password file) is one the chart mounts. Every STATESYNC_ variable it names is
// in the README's configuration table.
func TestREADMEConnectingSecurely(t *testing.T) {
	t.Parallel()
	section := readmeSection(t, "Connecting securely")
	blocks := yamlBlock.FindAllStringSubmatch(section, -1)
	// Each example is named by the ### heading above it.
	var headings []string
	for _, at := range yamlBlock.FindAllStringIndex(section, -1) {
		h := "the introduction"
		if k := strings.LastIndex(section[:at[0]], "\n### "); k >= 0 {
			h, _, _ = strings.Cut(section[k+5:], "\n")
		}
		headings = append(headings, h)
	}
	if len(blocks) < 6 {
		t.Fatalf("the section has %d yaml examples, want at least 6 (Kafka SASL_SSL, private CA, mTLS; MongoDB TLS, X.509, AWS, OIDC)", len(blocks))
	}
	var mu sync.Mutex
	mounted := map[string]bool{}
	for i, b := range blocks {
		var values object
		if err := yaml.Unmarshal([]byte(b[1]), &values); err != nil {
			t.Fatalf("yaml example %d is not YAML: %v\n%s", i+1, err, b[1])
		}
		// The examples show what they are about; fill in what every install needs.
		values = merge(object{"kafka": object{"brokers": "kafka:9092"}, "mongo": object{"database": "codr"}}, values)
		mongo := values["mongo"].(object)
		ownURI := mongo["uri"] != nil || mongo["existingSecret"] != nil || mongo["uriFile"] != nil
		if !ownURI {
			mongo["existingSecret"] = "statesync-mongo"
		}
		t.Run(fmt.Sprintf("example %d, %s", i+1, headings[i]), func(t *testing.T) {
			t.Parallel()
			check := func(t *testing.T, docs manifests, out string) {
				w := workloadOf(t, docs)
				c := container(t, w, "statesync")
				files := mountedFiles(t, w.Template.Spec, c)
				noSecretInEnv(t, workloads(docs), out)
				mu.Lock()
				for f := range files {
					mounted[f] = true
				}
				mu.Unlock()
				for k, v := range properties(t, c) {
					if strings.HasSuffix(k, ".location") {
						if _, ok := files[v]; !ok {
							t.Errorf("%s=%s is not a mounted file", k, v)
						}
					}
				}
				if uri, ok := mongo["uri"].(string); ok {
					for _, p := range secretPath.FindAllString(strings.ReplaceAll(uri, "%2F", "/"), -1) {
						if _, ok := files[p]; !ok {
							t.Errorf("the URI names %s, which the chart does not mount with these values", p)
						}
					}
				}
			}
			t.Run("standalone", func(t *testing.T) {
				docs, out := mustTemplateText(t, chartDir, "rel", values)
				check(t, docs, out)
				if sa, ok := values["serviceAccount"].(object); ok {
					// e.g. IRSA's role-arn: on the ServiceAccount the pod runs as.
					a := one[*corev1.ServiceAccount](t, docs, "ServiceAccount")
					for k, v := range sa["annotations"].(object) {
						if a.Annotations[k] != v {
							t.Errorf("ServiceAccount annotation %s = %q, want %q", k, a.Annotations[k], v)
						}
					}
					if w := workloadOf(t, docs); w.Template.Spec.ServiceAccountName != a.Name {
						t.Errorf("the pod runs as %q, not the annotated %q", w.Template.Spec.ServiceAccountName, a.Name)
					}
				}
			})
			t.Run("sidecar", func(t *testing.T) {
				buildExampleDeps(t)
				sidecar := merge(object{}, values)
				if ownURI {
					sidecar = merge(object{"mongo": object{"existingSecret": ""}}, sidecar)
				}
				docs, out := mustTemplateText(t, exampleDir, "shop", object{"statesync": sidecar})
				check(t, docs, out)
			})
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		for _, p := range secretPath.FindAllString(section, -1) {
			if !mounted[p] {
				t.Errorf("the section names %s, which no example mounts", p)
			}
		}
	})

	t.Run("every STATESYNC_ variable it names is in the configuration table", func(t *testing.T) {
		table := map[string]bool{}
		for _, m := range configVarCell.FindAllStringSubmatch(readmeSection(t, "Configuration"), -1) {
			table[m[1]] = true
		}
		if len(table) < 10 {
			t.Fatalf("found %d variables in the configuration table", len(table))
		}
		for _, v := range statesyncVar.FindAllString(section, -1) {
			if !table[v] {
				t.Errorf("%s is not a statesync variable (not in the README's configuration table)", v)
			}
		}
	})
}

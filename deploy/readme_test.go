package deploy

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"gopkg.in/yaml.v3"
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

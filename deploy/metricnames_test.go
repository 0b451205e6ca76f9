package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

var registeredName = regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(statesync_[a-z0-9_]+)"`)

// registeredMetrics returns the metric names the daemon's metrics package registers.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "metrics", "*.go"))
	if err != nil || len(files) == 0 {
		t.Skipf("no ../metrics/*.go (%v): the deploy module is not inside the repository", err)
	}
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range registeredName.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
	}
	if len(out) < 10 {
		t.Fatalf("found %d metric names in ../metrics: has the registration changed shape?", len(out))
	}
	return out
}

// TestAlertsAndDashboardReadRegisteredMetrics: every series an alert or a dashboard panel reads
// is one statesync exports (a histogram's _bucket, _sum and _count series count as its name), so
// a renamed or misspelt metric cannot leave an alert silently matching nothing.
func TestAlertsAndDashboardReadRegisteredMetrics(t *testing.T) {
	t.Parallel()
	registered := registeredMetrics(t)
	known := func(series string) bool {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(series, suffix)
			if ok && registered[base] {
				return true
			}
		}
		return false
	}

	read := map[string][]string{} // series → where
	docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"prometheusRule": object{"enabled": true}}))
	for _, r := range one[*monitoringv1.PrometheusRule](t, docs, "PrometheusRule").Spec.Groups[0].Rules {
		for series := range selectors(t, r.Expr.String()) {
			read[series] = append(read[series], "alert "+r.Alert)
		}
	}
	b, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "statesync.json"))
	if err != nil {
		t.Fatal(err)
	}
	expr := regexp.MustCompile(`"expr": "((?:[^"\\]|\\.)*)"`)
	vars := strings.NewReplacer(`\"`, `"`, "$__rate_interval", "5m", "$namespace", "ns", "$job", "job")
	for _, m := range expr.FindAllStringSubmatch(string(b), -1) {
		for series := range selectors(t, vars.Replace(m[1])) {
			read[series] = append(read[series], "the dashboard")
		}
	}
	if len(read) < 10 {
		t.Fatalf("found %d series in the alerts and the dashboard", len(read))
	}
	var names []string
	for series, where := range read {
		names = append(names, series)
		if !known(series) {
			t.Errorf("%s (read by %s) is not registered in ../metrics", series, strings.Join(where, ", "))
		}
	}
	sort.Strings(names)
	t.Logf("series read: %s", strings.Join(names, ", "))
}

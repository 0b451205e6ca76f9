package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestMongoBulkSettings(t *testing.T) {
	t.Parallel()
	docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"mongo": object{"maxBulkOps": 12, "bulkParallel": 3}}))
	assertEnv(t, container(t, workloadOf(t, docs), "statesync"), map[string]string{
		"STATESYNC_MONGO_MAX_BULK_OPS":  "12",
		"STATESYNC_MONGO_BULK_PARALLEL": "3",
	})
	for _, bad := range []object{{"maxBulkOps": -1}, {"bulkParallel": 0}, {"maxBulkOps": "20"}} {
		if _, stderr, err := template(t, chartDir, "rel", merge(minimal(), object{"mongo": bad})); err == nil {
			t.Errorf("mongo %v rendered; want a schema error", bad)
		} else if !strings.Contains(stderr, "mongo") {
			t.Errorf("mongo %v: error does not name it:\n%s", bad, stderr)
		}
	}
}

func TestGoMemLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		limit any
		ratio any
		want  string // "" = no GOMEMLIMIT
	}{
		{"256Mi", nil, "192MiB"},
		{"1Gi", nil, "768MiB"},
		{"500M", nil, "357MiB"},
		{"2G", 0.5, "953MiB"},
		{"512Mi", 0.9, "460MiB"},
		{"256Mi", 0, ""},
		{nil, nil, ""},
	} {
		// memory: null removes the default limit (helm deletes a key set to null).
		values := merge(minimal(), object{"resources": object{"limits": object{"cpu": "1", "memory": tc.limit}}})
		if tc.ratio != nil {
			values["goMemLimitRatio"] = tc.ratio
		}
		c := container(t, workloadOf(t, mustTemplate(t, chartDir, "rel", values)), "statesync")
		if tc.want == "" {
			if hasEnv(c, "GOMEMLIMIT") {
				t.Errorf("limit %v ratio %v: GOMEMLIMIT set, want none", tc.limit, tc.ratio)
			}
			continue
		}
		assertEnv(t, c, map[string]string{"GOMEMLIMIT": tc.want})
	}

	t.Run("an extraEnv GOMEMLIMIT replaces the computed one", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"extraEnv": []any{object{"name": "GOMEMLIMIT", "value": "100MiB"}}}))
		assertEnv(t, container(t, workloadOf(t, docs), "statesync"), map[string]string{"GOMEMLIMIT": "100MiB"})
	})
	t.Run("a memory limit that is not a quantity fails with advice", func(t *testing.T) {
		_, stderr, err := template(t, chartDir, "rel", merge(minimal(), object{"resources": object{"limits": object{"memory": "lots"}}}))
		if err == nil || !strings.Contains(stderr, "goMemLimitRatio") {
			t.Errorf("err %v:\n%s", err, stderr)
		}
	})
}

// TestChecksumRollsPods: a changed value stored in the chart's Secret changes the pod template's
// annotations, so the pods roll, in standalone mode and in a service chart's pods (sidecar).
func TestChecksumRollsPods(t *testing.T) {
	t.Parallel()
	annotation := func(d *workload) string { return d.Template.Annotations["checksum/statesync-secret"] }

	t.Run("standalone", func(t *testing.T) {
		a := workloadOf(t, mustTemplate(t, chartDir, "rel", minimal()))
		b := workloadOf(t, mustTemplate(t, chartDir, "rel", merge(minimal(), object{"mongo": object{"uri": "mongodb://u:rotated@mongo:27017/"}})))
		c := workloadOf(t, mustTemplate(t, chartDir, "rel", merge(minimal(), object{"kafka": object{"sasl": object{"username": "u", "password": "p"}}})))
		if annotation(a) == "" || annotation(a) == annotation(b) || annotation(a) == annotation(c) {
			t.Errorf("checksums %q, %q, %q: want set and different for each secret", annotation(a), annotation(b), annotation(c))
		}
		ext := workloadOf(t, mustTemplate(t, chartDir, "rel", object{"kafka": object{"brokers": "k:9092"},
			"mongo": object{"existingSecret": "s", "database": "codr"}}))
		if _, ok := ext.Template.Annotations["checksum/statesync-secret"]; ok {
			t.Error("a checksum without a Secret of the chart's own")
		}
	})

	t.Run("sidecar: the service chart's pods", func(t *testing.T) {
		buildExampleDeps(t)
		render := func(uri string) *workload {
			docs := mustTemplate(t, exampleDir, "shop", object{"statesync": object{"mongo": object{"existingSecret": "", "uri": uri}}})
			return workloadOf(t, docs)
		}
		a, b := render("mongodb://u:one@mongo:27017/"), render("mongodb://u:two@mongo:27017/")
		if annotation(a) == "" || annotation(a) == annotation(b) {
			t.Errorf("service pod checksums %q and %q: want set and different when mongo.uri changes", annotation(a), annotation(b))
		}
	})
}

func TestChartMetadata(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Home        string   `yaml:"home"`
		Sources     []string `yaml:"sources"`
		KubeVersion string   `yaml:"kubeVersion"`
		Maintainers []struct {
			Name string `yaml:"name"`
		} `yaml:"maintainers"`
		Keywords    []string          `yaml:"keywords"`
		Annotations map[string]string `yaml:"annotations"`
		AppVersion  string            `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Home == "" || len(c.Sources) == 0 || len(c.Maintainers) == 0 || c.Maintainers[0].Name == "" || c.KubeVersion == "" || len(c.Keywords) == 0 {
		t.Errorf("Chart.yaml lacks home, sources, maintainers, kubeVersion or keywords: %+v", c)
	}
	if !strings.Contains(c.Annotations["images"], "codr/statesync:"+c.AppVersion) {
		t.Errorf("annotations.images %q does not name codr/statesync:%s", c.Annotations["images"], c.AppVersion)
	}
}

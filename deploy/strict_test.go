package deploy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// everything turns on every optional object and pass-through value of standalone mode.
func everything() object {
	return merge(minimal(), object{
		"kafka": object{
			"properties": object{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"},
			"sasl":       object{"username": "statesync", "password": "p4ss"},
		},
		"mongo":               object{"collections": object{"user-preference": "preferences"}},
		"podDisruptionBudget": object{"enabled": true},
		"metrics":             object{"serviceMonitor": object{"enabled": true, "labels": object{"release": "prom"}}},
		"prometheusRule":      object{"enabled": true, "labels": object{"release": "prom"}},
		"grafanaDashboard":    object{"enabled": true, "folder": "Codr"},
		"imagePullSecrets":    []any{object{"name": "registry"}},
		"extraEnv":            []any{object{"name": "GODEBUG", "value": "madvdontneed=1"}, object{"name": "NODE_IP", "valueFrom": object{"fieldRef": object{"fieldPath": "status.hostIP"}}}},
		"extraEnvFrom":        []any{object{"configMapRef": object{"name": "shared"}}},
		"extraVolumes":        []any{object{"name": "secrets", "csi": object{"driver": "secrets-store.csi.k8s.io", "readOnly": true}}},
		"extraVolumeMounts":   []any{object{"name": "secrets", "mountPath": "/secrets", "readOnly": true}},
		"nodeSelector":        object{"kubernetes.io/os": "linux"},
		"tolerations":         []any{object{"key": "dedicated", "operator": "Equal", "value": "sync", "effect": "NoSchedule"}},
		"affinity": object{"podAntiAffinity": object{"preferredDuringSchedulingIgnoredDuringExecution": []any{object{
			"weight": 100, "podAffinityTerm": object{"topologyKey": "kubernetes.io/hostname", "labelSelector": object{"matchLabels": object{"app.kubernetes.io/name": "statesync"}}},
		}}}},
		"topologySpreadConstraints": []any{object{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
			"labelSelector": object{"matchLabels": object{"app.kubernetes.io/name": "statesync"}}}},
		"priorityClassName": "sync",
		"podAnnotations":    object{"example.com/team": "platform"},
		"podLabels":         object{"team": "platform"},
		"serviceAccount":    object{"annotations": object{"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/sync"}},
		"service":           object{"annotations": object{"example.com/scrape": "true"}},
	})
}

// TestEveryManifestDecodesStrictly renders each mode and example and counts what the strict
// decoding (template → decodeManifests) checked: every object, every field.
func TestEveryManifestDecodesStrictly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode, name string
		dir        string
		values     []any
		min        int
	}{
		{"standalone", "ci/standalone-values.yaml", chartDir, []any{filepath.Join(chartDir, "ci/standalone-values.yaml")}, 8},
		{"standalone", "minimal values", chartDir, []any{minimal()}, 4},
		{"standalone", "every option on", chartDir, []any{everything()}, 8},
		{"sidecar", "ci/sidecar-values.yaml", chartDir, []any{filepath.Join(chartDir, "ci/sidecar-values.yaml")}, 2},
		{"sidecar", "example service chart (deploy/helm/examples/codr-service)", exampleDir, nil, 4},
	}
	total := map[string]int{}
	for _, tc := range cases {
		t.Run(tc.mode+": "+tc.name, func(t *testing.T) {
			if tc.dir == exampleDir {
				buildExampleDeps(t)
			}
			docs := mustTemplate(t, tc.dir, "rel", tc.values...)
			if len(docs) < tc.min {
				t.Errorf("%d manifests, want at least %d", len(docs), tc.min)
			}
			noDuplicateEnv(t, docs)
			for _, m := range workloads(docs) {
				w := workloadOf(t, manifests{m})
				for _, c := range w.Template.Spec.Containers {
					mountedFiles(t, w.Template.Spec, c) // every mount has its volume, read-only, 0400/0440
				}
			}
			var names []string
			for _, m := range docs {
				names = append(names, fmt.Sprintf("%s/%s (%T)", m.Kind, m.Name, m.Obj))
			}
			t.Logf("%s, %s: %d manifests decoded strictly: %s", tc.mode, tc.name, len(docs), strings.Join(names, ", "))
			total[tc.mode] += len(docs)
		})
	}
	t.Logf("manifests checked: standalone %d, sidecar %d", total["standalone"], total["sidecar"])
}

// TestAMisspeltFieldFails: strict decoding is what catches a field the API does not have, both in
// what a user passes through and in the chart's own templates.
func TestAMisspeltFieldFails(t *testing.T) {
	t.Parallel()
	t.Run("a misspelt field in a pass-through value (readonly for readOnly) fails decoding", func(t *testing.T) {
		out, stderr, err := templateText(t, chartDir, "rel", merge(minimal(), object{
			"extraVolumes":      []any{object{"name": "secrets", "emptyDir": object{}}},
			"extraVolumeMounts": []any{object{"name": "secrets", "mountPath": "/secrets", "readonly": true}},
		}))
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, stderr)
		}
		_, err = decodeManifests(out)
		// volumeMounts[0] is the chart's own (the MongoDB URI file); the user's follow.
		want := `unknown field "spec.template.spec.containers[0].volumeMounts[1].readonly"`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("decoding error = %v, want %s", err, want)
		}
		t.Logf("as wanted: %v", err)
	})

	t.Run("a misspelt field in the chart's own templates fails decoding", func(t *testing.T) {
		out, stderr, err := templateText(t, chartDir, "rel", minimal())
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, stderr)
		}
		for _, typo := range []struct{ from, to, want string }{
			{"readOnlyRootFilesystem:", "readOnlyRootFileSystem:", `unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"`},
			{"terminationGracePeriodSeconds:", "terminationGracePeriod:", `unknown field "spec.template.spec.terminationGracePeriod"`},
			{"targetPort: statesync-http", "targetport: statesync-http", `unknown field "spec.ports[0].targetport"`},
		} {
			if !strings.Contains(out, typo.from) {
				t.Fatalf("rendered output has no %q", typo.from)
			}
			_, err := decodeManifests(strings.Replace(out, typo.from, typo.to, 1))
			if err == nil {
				t.Errorf("%q → %q decoded without error", typo.from, typo.to)
				continue
			}
			if !strings.Contains(err.Error(), typo.want) {
				t.Errorf("%q → %q: error %v, want %s", typo.from, typo.to, err, typo.want)
			}
		}
	})

	t.Run("an integer env value fails decoding (the API server's 'cannot unmarshal number')", func(t *testing.T) {
		out, stderr, err := templateText(t, chartDir, "rel", minimal(), set("extraEnv[0].name=STATESYNC_BATCH_MAX_DOCS"), set("extraEnv[0].value=20"), helmFlag("--skip-schema-validation"))
		if err != nil {
			// older helm has no --skip-schema-validation: render without it below
			out, stderr, err = templateText(t, chartDir, "rel", minimal())
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, stderr)
			}
			out = strings.Replace(out, "value: \"1000\"", "value: 20", 1)
		}
		_, err = decodeManifests(out)
		if err == nil || !strings.Contains(err.Error(), "cannot unmarshal number") {
			t.Fatalf("decoding error = %v, want cannot unmarshal number into a string", err)
		}
	})
}

// TestExtraEnvMergesByName: an extraEnv entry replaces the chart's variable of its name where it
// stands; new names follow the chart's in their order; never two of one name.
func TestExtraEnvMergesByName(t *testing.T) {
	t.Parallel()
	base := mustTemplate(t, chartDir, "rel", minimal())
	baseEnv := container(t, workloadOf(t, base), "statesync").Env
	docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"extraEnv": []any{
		object{"name": "STATESYNC_BATCH_MAX_DOCS", "value": "20"},
		object{"name": "GODEBUG", "value": "madvdontneed=1"},
		object{"name": "STATESYNC_MONGO_URI_FILE", "value": "/secrets/other/uri"},
		object{"name": "GODEBUG", "value": "madvdontneed=0"},
	}}))
	c := container(t, workloadOf(t, docs), "statesync")
	noDuplicateEnv(t, docs)
	assertEnv(t, c, map[string]string{"STATESYNC_BATCH_MAX_DOCS": "20", "GODEBUG": "madvdontneed=0"})
	assertEnv(t, c, map[string]string{"STATESYNC_MONGO_URI_FILE": "/secrets/other/uri"})
	if len(c.Env) != len(baseEnv)+1 {
		t.Errorf("%d variables, want the chart's %d + GODEBUG", len(c.Env), len(baseEnv))
	}
	for i, e := range baseEnv {
		if c.Env[i].Name != e.Name {
			t.Errorf("variable %d is %s, want %s (an override keeps the chart's position)", i, c.Env[i].Name, e.Name)
		}
	}
	if last := c.Env[len(c.Env)-1].Name; last != "GODEBUG" {
		t.Errorf("last variable %s, want GODEBUG", last)
	}

	t.Run("the same through --set, where a number must be given with --set-string", func(t *testing.T) {
		_, stderr, err := template(t, chartDir, "rel", minimal(), set("extraEnv[0].name=STATESYNC_BATCH_MAX_DOCS"), set("extraEnv[0].value=20"))
		if err == nil || !strings.Contains(stderr, "value") || !strings.Contains(stderr, "string") {
			t.Fatalf("helm template accepted an integer env value (err %v):\n%s", err, stderr)
		}
		docs := mustTemplate(t, chartDir, "rel", minimal(), set("extraEnv[0].name=STATESYNC_BATCH_MAX_DOCS"), setString("extraEnv[0].value=20"))
		assertEnv(t, container(t, workloadOf(t, docs), "statesync"), map[string]string{"STATESYNC_BATCH_MAX_DOCS": "20"})
	})
}

package deploy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// assertPodNameFirst: group.instance.id is $(STATESYNC_POD_NAME), which the kubelet expands only
// from a variable defined earlier in the list, from the downward API's metadata.name.
func assertPodNameFirst(t *testing.T, c corev1.Container) {
	t.Helper()
	pod, props := -1, -1
	for i, e := range c.Env {
		switch e.Name {
		case "STATESYNC_POD_NAME":
			pod = i
			if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Errorf("STATESYNC_POD_NAME = %+v, want the downward API's metadata.name", e)
			}
		case "STATESYNC_KAFKA_PROPERTIES":
			props = i
		}
	}
	if pod < 0 || props < 0 || pod > props {
		t.Errorf("STATESYNC_POD_NAME at %d, STATESYNC_KAFKA_PROPERTIES at %d: the pod name must come first", pod, props)
	}
}

func TestStaticGroupMembership(t *testing.T) {
	t.Parallel()
	t.Run("standalone: on by default, from the pod name, in a StatefulSet whose pod names survive a rollout", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", minimal())
		w := workloadOf(t, docs)
		if w.Kind != "StatefulSet" {
			t.Errorf("workload %s, want StatefulSet", w.Kind)
		}
		c := container(t, w, "statesync")
		assertEnv(t, c, map[string]string{"STATESYNC_KAFKA_PROPERTIES": "group.instance.id=$(STATESYNC_POD_NAME);session.timeout.ms=45000"})
		assertPodNameFirst(t, c)
	})

	t.Run("off: a Deployment and no instance id", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"kafka": object{"staticMembership": object{"enabled": false}}}))
		w := workloadOf(t, docs)
		c := container(t, w, "statesync")
		if w.Kind != "Deployment" || hasEnv(c, "STATESYNC_POD_NAME") || hasEnv(c, "STATESYNC_KAFKA_PROPERTIES") {
			t.Errorf("workload %s, env %v: want a Deployment without the pod name or properties", w.Kind, c.Env)
		}
	})

	t.Run("the session timeout is a value; properties given explicitly win", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"kafka": object{
			"staticMembership": object{"sessionTimeoutSeconds": 90},
			"properties":       object{"client.rack": "az1"},
		}}))
		assertEnv(t, container(t, workloadOf(t, docs), "statesync"), map[string]string{
			"STATESYNC_KAFKA_PROPERTIES": "client.rack=az1;group.instance.id=$(STATESYNC_POD_NAME);session.timeout.ms=90000"})
		docs = mustTemplate(t, chartDir, "rel", merge(minimal(), object{"kafka": object{"properties": object{"session.timeout.ms": 30000}}}))
		assertEnv(t, container(t, workloadOf(t, docs), "statesync"), map[string]string{
			"STATESYNC_KAFKA_PROPERTIES": "group.instance.id=$(STATESYNC_POD_NAME);session.timeout.ms=30000"})
		if _, stderr, err := template(t, chartDir, "rel", merge(minimal(), object{"kafka": object{"staticMembership": object{"sessionTimeoutSeconds": 3}}})); err == nil {
			t.Error("a 3 s session timeout rendered; the broker refuses below 6 s")
		} else if !strings.Contains(stderr, "sessionTimeoutSeconds") {
			t.Errorf("error does not name sessionTimeoutSeconds:\n%s", stderr)
		}
	})

	t.Run("sidecar: in the service's pod, from that pod's name", func(t *testing.T) {
		buildExampleDeps(t)
		// values.yaml's default (enabled: true) is one for both modes; the example service, a
		// Deployment, turns it off, so turn it on again here.
		docs := mustTemplate(t, exampleDir, "shop", object{"statesync": object{"kafka": object{"staticMembership": object{"enabled": true}}}})
		c := container(t, workloadOf(t, docs), "statesync")
		assertEnv(t, c, map[string]string{"STATESYNC_KAFKA_PROPERTIES": "group.instance.id=$(STATESYNC_POD_NAME);session.timeout.ms=45000"})
		assertPodNameFirst(t, c)
		off := container(t, workloadOf(t, mustTemplate(t, exampleDir, "shop")), "statesync")
		if hasEnv(off, "STATESYNC_KAFKA_PROPERTIES") {
			t.Error("the example service (a Deployment) still sets a group.instance.id")
		}
	})
}

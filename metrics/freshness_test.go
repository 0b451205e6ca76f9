package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// unwrittenSeries returns the statesync_oldest_unwritten_seconds samples
// gathered from reg, by "topic/partition".
func unwrittenSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "statesync_oldest_unwritten_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[labels["topic"]+"/"+labels["partition"]] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestTheOldestUnwrittenAgeIsComputedWhenScraped(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := t0
	m.OldestUnwritten.now = func() time.Time { return clock }
	p := m.OldestUnwritten.Track("codr.state.user", 3)
	other := m.OldestUnwritten.Track("codr.state.user", 4)
	other.Set(0)

	for _, step := range []struct {
		name  string
		since int64         // what the poll loop publishes; -1: nothing this step
		now   time.Duration // after t0
		want  float64
	}{
		{"a record consumed 5 s ago and not acknowledged is 5 s old", t0.UnixNano(), 5 * time.Second, 5},
		{"it rises while the write is stuck, though the poll loop publishes nothing new", -1, 8 * time.Second, 8},
		{"nothing pending is 0", 0, 9 * time.Second, 0},
		{"a record from a producer clock ahead of statesync's is 0, not negative", t0.Add(time.Minute).UnixNano(), 10 * time.Second, 0},
		{"a record without a timestamp is 0", -5, 11 * time.Second, 0},
	} {
		if step.since != -1 {
			p.Set(step.since)
		}
		clock = t0.Add(step.now)
		got := unwrittenSeries(t, reg)
		if got["codr.state.user/3"] != step.want || got["codr.state.user/4"] != 0 || len(got) != 2 {
			t.Errorf("%s: series %v, want codr.state.user/3 = %v and codr.state.user/4 = 0", step.name, got, step.want)
		}
	}

	m.OldestUnwritten.Forget("codr.state.user", 3)
	if got := unwrittenSeries(t, reg); len(got) != 1 || got["codr.state.user/4"] != 0 {
		t.Errorf("after the partition was revoked: series %v, want only codr.state.user/4", got)
	}
}

func TestFreshnessMetricsAreRegisteredWithTheirNamesAndBuckets(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ProduceToWritten.WithLabelValues("codr.state.user").Observe(0.002)
	m.OldestUnwritten.Track("codr.state.user", 0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		if mf.GetName() == "statesync_produce_to_written_seconds" {
			b := mf.GetMetric()[0].GetHistogram().GetBucket()
			if first, last := b[0].GetUpperBound(), b[len(b)-1].GetUpperBound(); first != 0.001 || last != 60 {
				t.Errorf("buckets %v … %v, want 0.001 … 60", first, last)
			}
		}
	}
	for _, name := range []string{"statesync_produce_to_written_seconds", "statesync_oldest_unwritten_seconds"} {
		if !seen[name] {
			t.Errorf("%s is not registered", name)
		}
	}
	New(nil).OldestUnwritten.Track("t", 0).Set(1) // unregistered: usable all the same
}

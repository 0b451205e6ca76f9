package main

import (
	"bufio"
	"math"
	"strings"
	"testing"
)

func TestHistQuantileFromScrapedBuckets(t *testing.T) {
	page := `# TYPE statesync_produce_to_written_seconds histogram
statesync_produce_to_written_seconds_bucket{topic="other",le="0.01"} 100
statesync_produce_to_written_seconds_bucket{topic="t",le="0.01"} 10
statesync_produce_to_written_seconds_bucket{topic="t",le="0.02"} 50
statesync_produce_to_written_seconds_bucket{topic="t",le="0.04"} 90
statesync_produce_to_written_seconds_bucket{topic="t",le="+Inf"} 100
statesync_produce_to_written_seconds_sum{topic="t"} 2
statesync_produce_to_written_seconds_count{topic="t"} 100
`
	b, err := parseHist(bufio.NewScanner(strings.NewReader(page)), "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4 || b[math.Inf(1)] != 100 {
		t.Fatalf("buckets %v", b)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.02}, {0.6, 0.025}, {0.05, 0.005}, {0.99, 0.04}, {0.9, 0.04}} {
		if got := histQuantile(c.q, b); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", c.q, got, c.want)
		}
	}
	none, err := parseHist(bufio.NewScanner(strings.NewReader("statesync_write_duration_seconds_bucket{topic=\"t\",le=\"1\"} 3\n")), "t")
	if err != nil || none != nil {
		t.Fatalf("no histogram: %v, %v", none, err)
	}
	if !math.IsNaN(histQuantile(0.5, map[float64]float64{math.Inf(1): 0})) {
		t.Error("no observations should give NaN")
	}
}

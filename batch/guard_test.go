package batch

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/codr/statesync/record"
)

// stored is what MongoDB holds for one _id in the reference model: present or
// not, and the offset and processedAt of the record that wrote it.
type stored struct {
	present bool
	offset  int64
	at      time.Time // zero: the document has no processedAt
}

func (s stored) String() string {
	if !s.present {
		return "absent"
	}
	return fmt.Sprintf("@%d(%s)", s.offset, s.at.Format("01-02"))
}

// applyWrite is the sink's write of r as the stale guard filters it: a
// guarded write applies only over an absent document, one without
// processedAt, or one whose processedAt is not after the threshold.
func applyWrite(s stored, r record.Record, threshold time.Time, guard bool) stored {
	if guard && !threshold.IsZero() && s.present && !s.at.IsZero() && s.at.After(threshold) {
		return s
	}
	if r.Tombstone {
		return stored{}
	}
	return stored{present: true, offset: r.Msg.Offset, at: r.ProcessedAt}
}

// oneByOne is the contract's reference: each record written on its own, in
// offset order, with the guard.
func oneByOne(s stored, recs []record.Record, guard bool) stored {
	for _, r := range recs {
		s = applyWrite(s, r, r.ProcessedAt, guard)
	}
	return s
}

// throughBatches adds recs to an Accumulator that closes a batch after every
// cut (offset indexes) and writes each batch's records as the sink would.
func throughBatches(s stored, recs []record.Record, cuts map[int]bool, guard bool) stored {
	a := New(Options{MaxDocs: 1000, StaleGuard: guard})
	write := func(b *Batch) {
		if b == nil {
			return
		}
		for _, r := range b.Records {
			s = applyWrite(s, r, r.GuardAt(), guard)
		}
	}
	for i, r := range recs {
		write(a.Add(r, t0))
		if cuts[i] {
			write(a.Take(TopicPartition{Topic: r.Msg.Topic, Partition: r.Msg.Partition}))
		}
	}
	for _, b := range a.TakeAll() {
		write(b)
	}
	return s
}

func describe(recs []record.Record) string {
	out := ""
	for _, r := range recs {
		kind := "u"
		if r.Tombstone {
			kind = "t"
		}
		at := "-"
		if !r.ProcessedAt.IsZero() {
			at = r.ProcessedAt.Format("01-02")
		}
		out += fmt.Sprintf(" %s@%d(%s)", kind, r.Msg.Offset, at)
	}
	return out
}

// TestABatchLeavesWhatWritingItsRecordsOneByOneLeaves checks the collapse
// against the reference on generated histories of one key: random
// processedAt orders (older, equal, missing), tombstones, any stored
// document, and batch boundaries anywhere. A failing seed is printed; keep it
// in the regression table below.
func TestABatchLeavesWhatWritingItsRecordsOneByOneLeaves(t *testing.T) {
	days := []time.Time{{}, t0.AddDate(0, 1, 0), t0.AddDate(0, 2, 0), t0.AddDate(0, 3, 0)}
	gen := func(rng *rand.Rand) (stored, []record.Record, map[int]bool) {
		var init stored
		if rng.IntN(3) > 0 {
			init = stored{present: true, offset: -1, at: days[rng.IntN(len(days))]}
		}
		n := 1 + rng.IntN(6)
		recs := make([]record.Record, n)
		cuts := map[int]bool{}
		for i := range recs {
			if rng.IntN(4) == 0 {
				recs[i] = tomb("t", 0, int64(i), 1)
			} else {
				recs[i] = rec("t", 0, int64(i), 1)
			}
			recs[i].ProcessedAt = days[rng.IntN(len(days))]
			if rng.IntN(3) == 0 {
				cuts[i] = true
			}
		}
		return init, recs, cuts
	}
	for _, guard := range []bool{true, false} {
		t.Run(fmt.Sprintf("with the guard %t, 20000 generated histories", guard), func(t *testing.T) {
			for seed := uint64(1); seed <= 20000; seed++ {
				init, recs, cuts := gen(rand.New(rand.NewPCG(seed, 7)))
				want := oneByOne(init, recs, guard)
				whole := throughBatches(init, recs, nil, guard)
				split := throughBatches(init, recs, cuts, guard)
				if whole != want || split != want {
					t.Fatalf("seed %d: stored %s, records%s, cuts after %v: one by one %s, one batch %s, split %s",
						seed, init, describe(recs), cuts, want, whole, split)
				}
			}
		})
	}
	mar, feb := t0.AddDate(0, 2, 0), t0.AddDate(0, 1, 0)
	at := func(r record.Record, t time.Time) record.Record { r.ProcessedAt = t; return r }
	regressions := []struct {
		name string
		init stored
		recs []record.Record
	}{
		// Regression: in one batch the collapse kept February and wrote it.
		{"an older upsert after a newer one loses", stored{}, []record.Record{at(rec("t", 0, 0, 1), mar), at(rec("t", 0, 1, 1), feb)}},
		{"an older tombstone after a newer upsert loses", stored{}, []record.Record{at(rec("t", 0, 0, 1), mar), at(tomb("t", 0, 1, 1), feb)}},
		{"an older upsert after a newer tombstone re-creates the document, guarded by the tombstone's time",
			stored{present: true, offset: -1, at: mar.AddDate(0, 1, 0)}, []record.Record{at(tomb("t", 0, 0, 1), mar), at(rec("t", 0, 1, 1), feb)}},
		{"a record without processedAt after a newer one applies", stored{}, []record.Record{at(rec("t", 0, 0, 1), mar), rec("t", 0, 1, 1)}},
		{"a record after one without processedAt applies", stored{present: true, offset: -1, at: mar}, []record.Record{rec("t", 0, 0, 1), at(rec("t", 0, 1, 1), feb)}},
	}
	for _, tc := range regressions {
		t.Run(tc.name, func(t *testing.T) {
			want := oneByOne(tc.init, tc.recs, true)
			if got := throughBatches(tc.init, tc.recs, nil, true); got != want {
				t.Errorf("one batch leaves %s, one by one %s", got, want)
			}
			if got := throughBatches(tc.init, tc.recs, map[int]bool{0: true}, true); got != want {
				t.Errorf("two batches leave %s, one by one %s", got, want)
			}
		})
	}
}

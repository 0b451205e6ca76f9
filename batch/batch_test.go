package batch

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codr/statesync/record"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func oid(n byte) bson.ObjectID { return bson.ObjectID{11: n} }

func rec(topic string, part int32, off int64, id byte) record.Record {
	i := oid(id)
	return record.Record{
		Msg: record.Message{Topic: topic, Partition: part, Offset: off, Key: []byte(i.Hex()), Value: []byte(`{"payload":{}}`)},
		ID:  i,
		Doc: bson.Raw{5, 0, 0, 0, 0},
	}
}

func tomb(topic string, part int32, off int64, id byte) record.Record {
	r := rec(topic, part, off, id)
	r.Msg.Value, r.Doc, r.Tombstone = nil, nil, true
	return r
}

func bad(topic string, part int32, off int64) Poison {
	return Poison{
		Msg: record.Message{Topic: topic, Partition: part, Offset: off, Key: []byte("x"), Value: []byte("not json")},
		Err: &record.PoisonError{Class: record.ClassInvalidKey, Err: errors.New("bad key")},
	}
}

// kept summarises a batch's records as "id@offset" (t for a tombstone).
func kept(b *Batch) []string {
	var out []string
	for _, r := range b.Records {
		s := fmt.Sprintf("%d@%d", r.ID[11], r.Msg.Offset)
		if r.Tombstone {
			s += "t"
		}
		out = append(out, s)
	}
	return out
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestCollapse(t *testing.T) {
	tests := []struct {
		name      string
		add       []record.Record
		want      []string
		collapsed int
	}{
		{
			name: "several records of one id keep only the last",
			add:  []record.Record{rec("t", 0, 1, 1), rec("t", 0, 2, 1), rec("t", 0, 3, 1)},
			want: []string{"1@3"}, collapsed: 2,
		},
		{
			name: "a tombstone after an upsert keeps the tombstone",
			add:  []record.Record{rec("t", 0, 1, 1), tomb("t", 0, 2, 1)},
			want: []string{"1@2t"}, collapsed: 1,
		},
		{
			name: "an upsert after a tombstone keeps the upsert",
			add:  []record.Record{tomb("t", 0, 1, 1), rec("t", 0, 2, 1)},
			want: []string{"1@2"}, collapsed: 1,
		},
		{
			name: "kept records are ordered by their own offsets",
			add:  []record.Record{rec("t", 0, 1, 1), rec("t", 0, 2, 2), rec("t", 0, 3, 1), rec("t", 0, 4, 3), rec("t", 0, 5, 2)},
			want: []string{"1@3", "3@4", "2@5"}, collapsed: 2,
		},
		{
			name: "distinct ids are all kept",
			add:  []record.Record{rec("t", 0, 10, 1), rec("t", 0, 11, 2), rec("t", 0, 13, 3)},
			want: []string{"1@10", "2@11", "3@13"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Options{MaxDocs: 100, MaxWait: time.Second})
			for _, r := range tc.add {
				if b := a.Add(r, t0); b != nil {
					t.Fatalf("unexpected flush at offset %d", r.Msg.Offset)
				}
			}
			b := a.Take(TopicPartition{"t", 0})
			if !equal(kept(b), tc.want) {
				t.Errorf("kept %v, want %v", kept(b), tc.want)
			}
			if b.Collapsed != tc.collapsed || b.Consumed != len(tc.add) {
				t.Errorf("collapsed %d consumed %d, want %d %d", b.Collapsed, b.Consumed, tc.collapsed, len(tc.add))
			}
			if b.FirstOffset != tc.add[0].Msg.Offset || b.LastOffset != tc.add[len(tc.add)-1].Msg.Offset {
				t.Errorf("range [%d, %d]", b.FirstOffset, b.LastOffset)
			}
		})
	}
}

func TestPoisonBetweenRecordsKeepsTheRangeContiguous(t *testing.T) {
	a := New(Options{MaxDocs: 100, MaxWait: time.Second})
	a.Add(rec("t", 0, 1, 1), t0)
	a.AddPoison(bad("t", 0, 2), t0)
	a.Add(rec("t", 0, 3, 2), t0)
	a.AddPoison(bad("t", 0, 4), t0)
	b := a.Take(TopicPartition{"t", 0})
	if b.FirstOffset != 1 || b.LastOffset != 4 || b.Consumed != 4 {
		t.Fatalf("range [%d, %d] consumed %d, want [1, 4] 4", b.FirstOffset, b.LastOffset, b.Consumed)
	}
	if len(b.Poison) != 2 || b.Poison[0].Msg.Offset != 2 || b.Poison[1].Msg.Offset != 4 {
		t.Fatalf("poison %+v", b.Poison)
	}
	if !equal(kept(b), []string{"1@1", "2@3"}) {
		t.Fatalf("kept %v", kept(b))
	}
	t.Run("a batch of only poison is still a batch", func(t *testing.T) {
		a.AddPoison(bad("t", 0, 5), t0)
		b := a.Take(TopicPartition{"t", 0})
		if b == nil || len(b.Records) != 0 || len(b.Poison) != 1 || b.FirstOffset != 5 || b.LastOffset != 5 {
			t.Fatalf("got %+v", b)
		}
	})
}

func TestFlush(t *testing.T) {
	t.Run("flushes when distinct docs reach MaxDocs", func(t *testing.T) {
		a := New(Options{MaxDocs: 3, MaxWait: time.Hour})
		for i := range 2 {
			if b := a.Add(rec("t", 0, int64(i), byte(i)), t0); b != nil {
				t.Fatalf("flushed after %d", i+1)
			}
		}
		b := a.Add(rec("t", 0, 2, 2), t0)
		if b == nil || len(b.Records) != 3 {
			t.Fatalf("got %+v", b)
		}
		if a.Pending(TopicPartition{"t", 0}) != 0 {
			t.Fatal("batch still pending after flush")
		}
	})
	t.Run("collapsed records do not count towards MaxDocs", func(t *testing.T) {
		a := New(Options{MaxDocs: 2, MaxWait: time.Hour})
		for i := range 5 {
			if b := a.Add(rec("t", 0, int64(i), 1), t0); b != nil {
				t.Fatalf("flushed after %d records of one id", i+1)
			}
		}
	})
	t.Run("a hot key flushes at four times MaxDocs consumed", func(t *testing.T) {
		a := New(Options{MaxDocs: 2, MaxWait: time.Hour})
		var b *Batch
		for i := range 8 {
			if b = a.Add(rec("t", 0, int64(i), 1), t0); b != nil && i != 7 {
				t.Fatalf("flushed at %d", i)
			}
		}
		if b == nil || b.Consumed != 8 || len(b.Records) != 1 || b.Collapsed != 7 {
			t.Fatalf("got %+v", b)
		}
	})
	t.Run("poison counts towards consumed but not docs", func(t *testing.T) {
		a := New(Options{MaxDocs: 1, MaxWait: time.Hour})
		for i := range 3 {
			if b := a.AddPoison(bad("t", 0, int64(i)), t0); b != nil {
				t.Fatalf("flushed at %d", i)
			}
		}
		if b := a.AddPoison(bad("t", 0, 3), t0); b == nil || len(b.Poison) != 4 {
			t.Fatalf("got %+v", b)
		}
	})
	t.Run("flushes when bytes reach MaxBytes", func(t *testing.T) {
		a := New(Options{MaxDocs: 100, MaxBytes: 100, MaxWait: time.Hour})
		r := rec("t", 0, 0, 1) // 24 + 14 bytes
		if a.Add(r, t0) != nil || a.Add(rec("t", 0, 1, 2), t0) != nil {
			t.Fatal("flushed early")
		}
		b := a.Add(rec("t", 0, 2, 3), t0)
		if b == nil || b.Bytes != 3*38 {
			t.Fatalf("got %+v", b)
		}
	})
	t.Run("is due when MaxWait has passed since the first message", func(t *testing.T) {
		a := New(Options{MaxDocs: 100, MaxWait: time.Second})
		a.Add(rec("t", 0, 0, 1), t0)
		a.Add(rec("t", 0, 1, 2), t0.Add(900*time.Millisecond))
		if got := a.Due(t0.Add(999 * time.Millisecond)); len(got) != 0 {
			t.Fatalf("due too early: %v", got)
		}
		next, ok := a.NextDue()
		if !ok || !next.Equal(t0.Add(time.Second)) {
			t.Fatalf("NextDue %v %v", next, ok)
		}
		got := a.Due(t0.Add(time.Second))
		if len(got) != 1 || got[0].Consumed != 2 || !got[0].Opened.Equal(t0) {
			t.Fatalf("got %+v", got)
		}
		if _, ok := a.NextDue(); ok {
			t.Fatal("NextDue reports a batch after Due took it")
		}
	})
	t.Run("MaxWait zero makes every batch due at once", func(t *testing.T) {
		a := New(Options{MaxDocs: 100})
		a.Add(rec("t", 0, 0, 1), t0)
		if got := a.Due(t0); len(got) != 1 {
			t.Fatalf("got %v", got)
		}
	})
}

func TestNonIncreasingOffset(t *testing.T) {
	t.Run("a redelivered offset closes the open batch and starts a new one", func(t *testing.T) {
		a := New(Options{MaxDocs: 100, MaxWait: time.Hour})
		a.Add(rec("t", 0, 5, 1), t0)
		a.Add(rec("t", 0, 6, 2), t0)
		old := a.Add(rec("t", 0, 3, 1), t0)
		if old == nil || old.FirstOffset != 5 || old.LastOffset != 6 || !equal(kept(old), []string{"1@5", "2@6"}) {
			t.Fatalf("old batch %+v", old)
		}
		b := a.Take(TopicPartition{"t", 0})
		if b.FirstOffset != 3 || b.LastOffset != 3 || !equal(kept(b), []string{"1@3"}) || b.Collapsed != 0 {
			t.Fatalf("new batch %+v", b)
		}
	})
	t.Run("the same offset twice is a redelivery too", func(t *testing.T) {
		a := New(Options{MaxDocs: 100, MaxWait: time.Hour})
		a.Add(rec("t", 0, 5, 1), t0)
		if old := a.AddPoison(bad("t", 0, 5), t0); old == nil || old.LastOffset != 5 {
			t.Fatalf("old %+v", old)
		}
		if a.Pending(TopicPartition{"t", 0}) != 1 {
			t.Fatal("redelivered message not pending")
		}
	})
	t.Run("a full one-record batch left by a redelivery is due at once", func(t *testing.T) {
		a := New(Options{MaxDocs: 100, MaxBytes: 50, MaxWait: time.Hour})
		a.Add(rec("t", 0, 5, 1), t0)
		big := rec("t", 0, 4, 2)
		big.Msg.Value = make([]byte, 100)
		if old := a.Add(big, t0); old == nil || old.FirstOffset != 5 {
			t.Fatalf("old %+v", old)
		}
		if next, ok := a.NextDue(); !ok || !next.Equal(t0) {
			t.Fatalf("NextDue %v %v, want now", next, ok)
		}
		got := a.Due(t0)
		if len(got) != 1 || got[0].FirstOffset != 4 {
			t.Fatalf("Due %+v", got)
		}
	})
	t.Run("offsets may skip, as compaction leaves gaps", func(t *testing.T) {
		a := New(Options{MaxDocs: 100, MaxWait: time.Hour})
		a.Add(rec("t", 0, 5, 1), t0)
		if a.Add(rec("t", 0, 50, 2), t0) != nil {
			t.Fatal("gap closed the batch")
		}
	})
}

func TestPartitions(t *testing.T) {
	t.Run("partitions accumulate independently", func(t *testing.T) {
		a := New(Options{MaxDocs: 2, MaxWait: time.Second})
		a.Add(rec("t", 0, 10, 1), t0)
		a.Add(rec("t", 1, 3, 1), t0.Add(time.Millisecond))
		a.Add(rec("u", 0, 7, 1), t0.Add(2*time.Millisecond))
		if b := a.Add(rec("t", 1, 4, 2), t0); b == nil || b.Partition != 1 || b.FirstOffset != 3 {
			t.Fatalf("got %+v", b)
		}
		if a.Pending(TopicPartition{"t", 0}) != 1 || a.Pending(TopicPartition{"u", 0}) != 1 || a.Pending(TopicPartition{"t", 1}) != 0 {
			t.Fatal("pending counts mixed partitions")
		}
		all := a.TakeAll()
		if len(all) != 2 || all[0].Topic != "t" || all[1].Topic != "u" {
			t.Fatalf("TakeAll %+v", all)
		}
	})
	t.Run("Drop forgets a lost partition without flushing it", func(t *testing.T) {
		a := New(Options{MaxDocs: 100, MaxWait: time.Second})
		a.Add(rec("t", 0, 1, 1), t0)
		a.Add(rec("t", 1, 1, 1), t0)
		a.Drop(TopicPartition{"t", 0})
		if a.Take(TopicPartition{"t", 0}) != nil {
			t.Fatal("dropped batch still there")
		}
		if got := a.Due(t0.Add(time.Hour)); len(got) != 1 || got[0].Partition != 1 {
			t.Fatalf("Due %+v", got)
		}
		a.Add(rec("t", 0, 1, 1), t0)
		if a.Pending(TopicPartition{"t", 0}) != 1 {
			t.Fatal("partition unusable after Drop")
		}
	})
	t.Run("Drop of the partition of the last message forgets it too", func(t *testing.T) {
		a := New(Options{MaxDocs: 100, MaxWait: time.Second})
		a.Add(rec("t", 0, 5, 1), t0)
		a.Drop(TopicPartition{"t", 0})
		a.Add(rec("t", 0, 1, 2), t0) // as its new owner would, from an earlier offset
		b := a.Take(TopicPartition{"t", 0})
		if b == nil || b.FirstOffset != 1 || b.Consumed != 1 || !equal(kept(b), []string{"2@1"}) {
			t.Fatalf("batch after Drop %+v", b)
		}
	})
	t.Run("Take on a partition without a batch returns nil", func(t *testing.T) {
		a := New(Options{})
		if a.Take(TopicPartition{"t", 9}) != nil {
			t.Fatal("non-nil")
		}
		if _, ok := a.NextDue(); ok {
			t.Fatal("NextDue on empty accumulator")
		}
	})
	t.Run("Due returns the oldest batch first", func(t *testing.T) {
		a := New(Options{MaxDocs: 100, MaxWait: time.Second})
		a.Add(rec("b", 0, 1, 1), t0.Add(time.Millisecond))
		a.Add(rec("a", 0, 1, 1), t0.Add(2*time.Millisecond))
		a.Add(rec("c", 0, 1, 1), t0)
		next, _ := a.NextDue()
		if !next.Equal(t0.Add(time.Second)) {
			t.Fatalf("NextDue %v", next)
		}
		got := a.Due(t0.Add(time.Hour))
		if len(got) != 3 || got[0].Topic != "c" || got[1].Topic != "b" || got[2].Topic != "a" {
			t.Fatalf("order %v %v %v", got[0].Topic, got[1].Topic, got[2].Topic)
		}
	})
	t.Run("a batch after a flush reuses the partition's index", func(t *testing.T) {
		a := New(Options{MaxDocs: 2, MaxWait: time.Second})
		a.Add(rec("t", 0, 1, 1), t0)
		first := a.Add(rec("t", 0, 2, 2), t0)
		a.Add(rec("t", 0, 3, 1), t0)
		second := a.Take(TopicPartition{"t", 0})
		if len(first.Records) != 2 || !equal(kept(second), []string{"1@3"}) || second.Collapsed != 0 {
			t.Fatalf("first %v second %v", kept(first), kept(second))
		}
	})
}

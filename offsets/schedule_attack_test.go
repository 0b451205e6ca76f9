package offsets

import (
	"errors"
	"testing"
)

// TestSchedulerUnderAttack: cases an attack review tried against the
// scheduler, which held; kept as regression tests.
func TestSchedulerUnderAttack(t *testing.T) {
	t.Run("the timestamps kept for the histogram stay bounded while a partition is never fully acknowledged", func(t *testing.T) {
		h := newSchedTest(t, 4, 0)
		h.batch(0, 10)
		h.s.dispatch()
		gw := h.started()
		for i := 0; i < 5000; i++ {
			h.consume(0, 7) // accumulates behind the write
			h.settle(gw, nil)
			h.s.closeIdle()
			h.s.dispatch()
			gw = h.started()
		}
		p := h.s.parts[tp(0)]
		if c := cap(p.unacked.ts); c > 64 {
			t.Errorf("cap %d after 5000 cycles of at most 17 pending", c)
		}
		h.want("pending", len(p.unacked.ts)-p.unacked.head, 7)
	})
	t.Run("an abandoned write with a queued and an open batch behind it: each record observed once after the re-read", func(t *testing.T) {
		h := newSchedTest(t, 4, 0)
		h.batch(0, 10)
		h.s.dispatch()
		gw := h.started()
		h.batch(0, 10)
		h.consume(0, 5)
		h.settle(gw, errors.New("abandoned"))
		h.next[0] = 0
		h.consume(0, 25)
		h.s.closeIdle()
		h.s.dispatch()
		h.settle(h.started(), nil)
		n, _ := h.produceToWritten()
		h.want("observed", n, 25)
		h.want("stored", h.k.stores(0), []string{"25"})
	})
	t.Run("many quiet partitions: idle batches never exceed the write slots, the rest follow as slots free", func(t *testing.T) {
		h := newSchedTest(t, 2, 0, 1, 2, 3, 4)
		for p := int32(0); p < 5; p++ {
			h.consume(p, 1)
		}
		h.s.closeIdle()
		h.s.dispatch()
		h.want("in flight", h.s.inflight, 2)
		h.s.closeIdle()
		h.want("waiting", len(h.s.waiting), 0)
		h.want("blocked", h.s.blocked(), false)
		for i := 0; i < 5; i++ {
			h.settle(h.started(), nil)
			h.s.closeIdle()
			h.s.dispatch()
		}
		for p := int32(0); p < 5; p++ {
			h.want("stored", h.k.stores(p), []string{"1"})
		}
	})
}

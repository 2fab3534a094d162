//go:build linux

package source

import (
	"syscall"
	"testing"
	"unsafe"

	"pgregory.net/rapid"

	"github.com/fsnotifyd/fsnotifyd/engine"
)

// tableModel is what an InlineTable holds, by TableKinds index, written plainly.
type tableModel struct {
	set [len(TableKinds)]bool
	a   [len(TableKinds)]Answer
}

// answer is the model's answer to an event of mask m: that of the first of TableKinds in m.
func (tm *tableModel) answer(m engine.Mask) (Answer, bool) {
	for i, k := range TableKinds {
		if m&k != 0 {
			return tm.a[i], tm.set[i]
		}
	}
	return Answer{}, false
}

// TestInlineTableIsTheModel: whatever answers are stored (any verdict, errno and cache bit,
// some not representable) and whatever masks the events have (every permission bit and
// other bits, several at once), the table answers an event — through the embedded source's
// Handler, as the engine calls it — with the answer of the first of TableKinds in its mask,
// exactly as stored, or leaves it to Inline when it holds none (Set refusing only what it
// cannot hold); and it counts its allows and denies exactly. It fails on a table that takes
// another kind than the first, drops or mixes a field, answers an unset kind, or miscounts.
func TestInlineTableIsTheModel(t *testing.T) {
	others := []engine.Mask{engine.OnDir, engine.Open, engine.Access, engine.EventOnChild, 0x00080000, 0x00200000}
	rapid.Check(t, func(t *rapid.T) {
		tab := new(InlineTable)
		var inlines int
		s := &embedded{opts: Options{InlineTable: tab, Inline: func(*Event) (Answer, any, bool) {
			inlines++
			return Answer{Verdict: engine.Allow, Errno: 77}, nil, true
		}}}
		h := s.inlineHandler()
		var model tableModel
		var wantAllowed, wantDenied uint64
		for range rapid.IntRange(1, 4).Draw(t, "stores") {
			var e Entries
			model = tableModel{}
			for i, k := range TableKinds {
				if !rapid.Bool().Draw(t, "set") {
					continue
				}
				a := Answer{Verdict: engine.Verdict(rapid.IntRange(0, 2).Draw(t, "verdict")),
					Errno: syscall.Errno(rapid.SampledFrom([]int{0, 1, 5, 16, 26, 122, 255, 511, 512, 4095}).Draw(t, "errno")),
					Cache: rapid.Bool().Draw(t, "cache")}
				ok := e.Set(k, a)
				if want := a.Verdict <= engine.Deny && a.Errno <= 511; ok != want {
					t.Fatalf("Set(%v, %+v) = %v, want %v", k, a, ok, want)
				}
				model.set[i], model.a[i] = ok, a
			}
			if e.Set(engine.OpenPerm|engine.AccessPerm, Answer{}) || e.Set(engine.Open, Answer{}) || e.Set(0, Answer{}) {
				t.Fatalf("Set took a mask of no kind or of two")
			}
			tab.Store(e)
			for range rapid.IntRange(1, 20).Draw(t, "events") {
				var m engine.Mask
				for _, k := range TableKinds {
					if rapid.IntRange(0, 3).Draw(t, "kind") == 0 {
						m |= k
					}
				}
				for _, o := range others {
					if rapid.Bool().Draw(t, "other") {
						m |= o
					}
				}
				want, wantOK := model.answer(m)
				before := inlines
				r, ok := h(engine.Delivery{Event: &engine.Event{Mask: m}, Mask: m})
				if got, gotOK := tab.Load().Get(m); gotOK != wantOK || gotOK && got != want {
					t.Fatalf("mask %v: Get %+v %v, want %+v %v", m, got, gotOK, want, wantOK)
				}
				switch {
				case !ok:
					t.Fatalf("mask %v: the handler declined (Inline allows every event)", m)
				case wantOK && (r.Verdict != want.Verdict || r.Errno != want.Errno || r.Cache != want.Cache || inlines != before):
					t.Fatalf("mask %v: answered %+v (Inline asked %d times), want the table's %+v", m, r, inlines-before, want)
				case !wantOK && (inlines != before+1 || r.Errno != 77):
					t.Fatalf("mask %v: answered %+v, Inline asked %d times; want Inline's answer", m, r, inlines-before)
				}
				if wantOK && want.Verdict == engine.Deny {
					wantDenied++
				} else if wantOK {
					wantAllowed++
				}
			}
		}
		if a, d := tab.Counts(); a != wantAllowed || d != wantDenied {
			t.Fatalf("counts: %d allowed, %d denied; want %d, %d", a, d, wantAllowed, wantDenied)
		}
	})
}

// TestInlineTableIsOneLine: the table's word and counts are one 64-byte object, a size class
// the allocator aligns to 64 bytes: one cache line per event.
func TestInlineTableIsOneLine(t *testing.T) {
	if n := unsafe.Sizeof(InlineTable{}); n != 64 {
		t.Errorf("InlineTable is %d bytes, want 64", n)
	}
	for range 100 {
		tableSink = new(InlineTable) // on the heap, as a Guard's
		if p := uintptr(unsafe.Pointer(tableSink)); p%64 != 0 {
			t.Fatalf("an InlineTable at %#x, not on a cache line", p)
		}
	}
}

var tableSink *InlineTable

// TestNoTableAnswersNothing: a source without a table gives every event to Inline.
func TestNoTableAnswersNothing(t *testing.T) {
	var calls int
	s := &embedded{opts: Options{Inline: func(*Event) (Answer, any, bool) { calls++; return Answer{}, nil, false }}}
	h := s.inlineHandler()
	for _, k := range TableKinds {
		if _, ok := h(engine.Delivery{Event: &engine.Event{Mask: k}, Mask: k}); ok {
			t.Errorf("%v answered", k)
		}
	}
	if calls != len(TableKinds) {
		t.Errorf("Inline called %d times, want %d", calls, len(TableKinds))
	}
}

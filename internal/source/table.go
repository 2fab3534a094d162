//go:build linux

package source

import (
	"math/bits"
	"sync/atomic"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/engine"
)

// InlineTable holds the answers to permission events that their kind alone decides, as its
// owner published them (Store), for an embedded source to give each such event on the kernel
// reader before anything else (Options.InlineTable): one atomic load of one word, no call
// out, no record, no Event — and a count of the answers given (Counts), exact, one atomic add
// per answer.
//
// An event's kind is the first of TableKinds its mask has (a permission event has one); an
// event of no such kind, or of a kind the table leaves out, goes on as without a table. The
// answers of every kind are one word, stored and loaded whole: an event gets an answer of the
// one Entries it loaded, never a mix of two (the owner's contract is then one of order only:
// publish Entries that are right from the moment they are stored until the next Store; see
// notify.Guard.SetKindVerdicts). Nothing on the path can panic: the lookup is a shift and a
// mask, the count an index of 0 or 1.
//
// The word and the counts share one cache line (the struct is 64 bytes, a size class the
// allocator aligns to 64), which only the reader writes per event: an event touches that line
// and the handler's closure, nothing else here.
type InlineTable struct {
	w atomic.Uint64    // Entries.w
	n [2]atomic.Uint64 // answers given: [0] allows, [1] denies
	_ [64 - 3*8]byte
}

// TableKinds are the permission events an InlineTable answers, in the order an event's kind
// is found in its mask (notify.AccessKind's order). Their bits are those of firstPermBit.
var TableKinds = [...]engine.Mask{engine.OpenPerm, engine.AccessPerm, engine.OpenExecPerm, engine.PreAccess}

// An entry is 12 bits of Entries.w, at 12 times the kind's bit index above permShift (0, 1, 2,
// 4: the kinds' bits are 0x10000, 0x20000, 0x40000, 0x100000; slot 3 is unused).
const (
	permShift  = 16
	permBits   = uint32((engine.OpenPerm | engine.AccessPerm | engine.OpenExecPerm | engine.PreAccess) >> permShift)
	entryBits  = 12
	entryMask  = 1<<entryBits - 1
	entrySet   = 1 << 0 // decided
	entryDeny  = 1 << 1 // the verdict: Deny (else Allow)
	entryCache = 1 << 2
	errnoShift = 3 // 9 bits of errno
	maxErrno   = 1<<(entryBits-errnoShift) - 1
)

// slot is where the entry of the first TableKinds bit of m is in Entries.w, or 60 when m has
// none (bit 5 above permShift stands in: its entry, bits 60-63, is never set). No branch.
func slot(m engine.Mask) uint {
	return uint(bits.TrailingZeros32(uint32(m>>permShift)&permBits|1<<5)) * entryBits
}

// Entries are an InlineTable's answers, by kind; the zero Entries answer nothing.
type Entries struct{ w uint64 }

// Set makes a the answer to the events of kind k (one of TableKinds). It reports false, and
// leaves k unanswered, for an answer a table cannot hold (a verdict other than Allow and Deny,
// an errno above 511, which no kernel accepts anyway) or a k that is not one kind of
// TableKinds.
func (e *Entries) Set(k engine.Mask, a Answer) bool {
	s := slot(k)
	if s >= 60 || k&^(engine.Mask(permBits)<<permShift) != 0 || bits.OnesCount32(uint32(k>>permShift)) != 1 {
		return false
	}
	e.w &^= entryMask << s
	var v uint64 = entrySet
	switch a.Verdict {
	case engine.Allow:
	case engine.Deny:
		v |= entryDeny
	default:
		return false
	}
	if a.Cache {
		v |= entryCache
	}
	if a.Errno > maxErrno {
		return false
	}
	v |= uint64(a.Errno) << errnoShift
	e.w |= v << s
	return true
}

// Get returns the answer to an event of mask m, and whether e has one.
func (e Entries) Get(m engine.Mask) (Answer, bool) {
	v := e.w >> slot(m)
	if v&entrySet == 0 {
		return Answer{}, false
	}
	return Answer{Verdict: engine.Verdict(v >> 1 & 1), Errno: errnoOf(v), Cache: v&entryCache != 0}, true
}

func errnoOf(v uint64) syscall.Errno { return syscall.Errno(v >> errnoShift & maxErrno) }

// allowsAhead reports whether the table answers events of mask m Allow, without the verdict
// cache (which needs the object): one atomic load, the backend's test for an answer ahead
// (backend.AnswerAhead: the embedded source offers it for its group).
func (t *InlineTable) allowsAhead(m engine.Mask) bool {
	return t.w.Load()>>slot(m)&(entrySet|entryDeny|entryCache) == entrySet
}

// Store makes e the table's answers, from the next event it is loaded for on.
func (t *InlineTable) Store(e Entries) { t.w.Store(e.w) }

// Load returns the table's answers.
func (t *InlineTable) Load() Entries { return Entries{t.w.Load()} }

// Counts returns the answers the table gave: allows and denies.
func (t *InlineTable) Counts() (allowed, denied uint64) { return t.n[0].Load(), t.n[1].Load() }

// take is the table's entry for an event of mask m, counted if it is an answer (entrySet):
// the embedded source's inline handler, first, builds the engine response from it in its
// return statement (a Response returned by an inlined call is built in a temporary and copied
// through memory, its narrow stores read back by wide loads: a store-forwarding stall, half
// of the hot path's time in a benchmark of this one).
func (t *InlineTable) take(m engine.Mask) uint64 {
	v := t.w.Load() >> slot(m)
	if v&entrySet != 0 {
		t.n[v>>1&1].Add(1)
	}
	return v
}

// noTable is the table of a source with none: it answers nothing (never stored to).
var noTable InlineTable

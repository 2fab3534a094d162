package engine

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// MaskHook is told when the union of the marks on an object changes, so that a source can keep
// its own interest equal to it (the kernel's fsnotify_recalc_mask, which sets i_fsnotify_mask:
// the Linux backend keeps the kernel marks on each object equal to this union).
//
// old and new are unions of the marks' masks (event bits with the flags EventOnChild and OnDir;
// Modify is added when a mark has an ignore mask that a modification clears, and EventOnChild
// when an ignore mask covers children, as the kernel's fsnotify_calc_mask does). Calls for
// one object are ordered, never concurrent, and new reflects every mark change that returned
// before the call began. An error on growth makes the mark operation fail and undo its own
// change (no other change of the object's marks runs between the change, the hook's answer and
// the undo); an error on shrinking is ignored by the engine (the engine's marks are gone
// either way; the source should log it). The hook runs with the object's hook lock held and
// must not add, modify or remove marks itself; every mark change of the object waits for it.
type MaskHook func(obj Object, old, new Mask) error

// Config configures an Engine.
type Config struct {
	// MaskHook, if set, is called on every change of an object's mark union.
	MaskHook MaskHook
	// PermissionHook, if set, is called when a mark operation may give a group permission
	// events on obj that it did not get before: a new mark or a changed mark whose event mask
	// holds permission events, or permission events taken off an ignore mask. It is called
	// even when the object's union (MaskHook) stays the same, after the change and before the
	// mark operation returns, and must not add, modify or remove marks. A source that
	// remembers permission verdicts (the Linux backend's verdict cache) forgets them here:
	// they were decided without this group. (A Modify event that clears an ignore mask in
	// Notify is not a mark operation: see VolatilePermissionIgnores.)
	PermissionHook func(obj Object)
	// Executor, if set, runs the continuation of a walk that Walk.Await suspended, once the
	// group holding the event answers (Respond, its deadline, ctx's end, Close): the walk goes
	// on to lower-priority groups (their Handlers) and ends in the Await callback. Without it,
	// the continuation runs inside the call that delivered the answer, on that goroutine. A
	// source whose events are read on an event loop gives the loop's Post, so that every walk
	// it dispatched goes on on the loop, not on the stack of whoever answered (an answer read
	// on the loop then goes on right after, with no wake-up: see internal/evloop). It must run
	// each function exactly once, on any goroutine; the engine calls it with no lock held.
	Executor func(func())
	// PermissionIDBase: the permission events' ids (Delivery.ID) are PermissionIDBase+1,
	// +2, ... The Linux backend sets it to the monotonic clock in nanoseconds, so that the
	// ids of an engine made after another one's end (a daemon restarted) are all above the
	// earlier one's: an answer to an id of the old one finds nothing pending in the new one.
	PermissionIDBase uint64
}

const (
	filterBits = 14
	filterSize = 1 << filterBits
)

// Engine holds the objects' connectors and the groups.
type Engine struct {
	// present has a word per kind, bit i set exactly while the table holds a connector of
	// the kind whose object's hash has i in its low 6 bits (presenceBit). A lookup tests its
	// bit first: clear, and the object has no connector, from this one cache line (the
	// Engine's first, read-mostly) rather than from its filter slot, a line of its own and
	// cold at each event in a listener: the embedded guard looks up the subtree marks of
	// the file and of the directories above the guarded one on every event. A word is 0
	// exactly while its kind has no connector (nconns). Set before the connector enters the
	// table and cleared after the kind's last connector of the bit left it, under conns.mu
	// (with presence, its counts), so a lookup never finds a bit clear while a connector
	// that was in the table throughout the lookup needs it.
	present [numKinds]atomic.Uint64

	hook     MaskHook
	permHook func(Object)
	exec     func(func()) // Config.Executor

	// volatileIgnores counts the attached marks whose ignore mask holds permission events
	// that a modification clears (see VolatilePermissionIgnores).
	volatileIgnores atomic.Int64

	// perm is which groups have marks whose event mask holds permission events
	// (PermissionState), a new value at each change; permGroups are those groups. Both
	// change under permMu.
	perm       atomic.Pointer[PermissionState]
	permMu     sync.Mutex
	permGroups map[*Group]struct{}

	// nconns counts connectors per kind, for Stats (lookups and Notify read present).
	nconns [numKinds]atomic.Int64
	// filter has a slot per bucket of object hashes (the top filterBits bits): nil while no
	// connector's object hashes there, else one of the bucket's connectors, or
	// crowdedBucket. A lookup loads its slot: nil, and the object has no connector (one
	// atomic load for most objects nobody marks, as the kernel checks i_fsnotify_marks on
	// each involved object); the object's own connector, and it is found without the table
	// (two memory touches on a cold cache, where the table's probe took five); else it
	// probes the table. Written under conns.mu, with counts.
	filter [filterSize]atomic.Pointer[connector]
	// counts counts the connectors per filter bucket; guarded by conns.mu (readers never
	// look at it).
	counts [filterSize]int32
	// presence counts the connectors per kind and presence bit; guarded by conns.mu.
	presence [numKinds][64]int32
	conns    connTable

	nextGroup atomic.Uint64
	nextPerm  atomic.Uint64

	groupsMu sync.Mutex
	groups   map[uint64]*Group

	// Events dispatched to at least one group: notifications and permission events counted
	// apart, so that an event takes one locked add (Stats adds them up).
	notifications atomic.Uint64
	permNotified  atomic.Uint64
	marks         atomic.Int64

	epoch time.Time // the engine's clock starts here (see since)
}

// since is the time since the engine was made, on the monotonic clock. Queue entries keep
// their queueing time as this 8-byte Duration rather than a 24-byte time.Time, which would
// put every entry, notifications too, in the next allocation size class.
func (e *Engine) since() time.Duration { return time.Since(e.epoch) }

// New returns an empty Engine.
func New(cfg Config) *Engine {
	e := &Engine{hook: cfg.MaskHook, permHook: cfg.PermissionHook, exec: cfg.Executor,
		groups: make(map[uint64]*Group), epoch: time.Now()}
	e.nextPerm.Store(cfg.PermissionIDBase)
	e.conns.init()
	e.perm.Store(&PermissionState{})
	return e
}

func hashObject(o Object) uint64 {
	h := o.ID.Hi*0x9e3779b97f4a7c15 ^ o.ID.Lo*0xc2b2ae3d27d4eb4f ^ uint64(o.Kind)*0x165667b19e3779f9
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h
}

// lookup returns obj's connector, or nil, without taking a lock. An object of an unknown kind
// has none (RemoveMark, Mark and MarksOn take any Object from the caller).
func (e *Engine) lookup(obj Object) *connector {
	if obj.Kind >= numKinds {
		return nil
	}
	p := e.present[obj.Kind].Load()
	if p == 0 {
		return nil // no connector of the kind: no hash to compute
	}
	h := hashObject(obj)
	if p&presenceBit(h) == 0 {
		return nil
	}
	c := e.filter[h>>(64-filterBits)].Load()
	if c == nil {
		return nil
	}
	if c.obj == obj {
		return c
	}
	return e.conns.get(obj, h)
}

// presenceBit is the bit of Engine.present that an object of hash h needs: from the hash's low
// bits (the filter's bucket is its top bits).
func presenceBit(h uint64) uint64 { return 1 << (h & 63) }

// presenceAddLocked counts c, about to enter the table, in its kind's presence bits, setting
// its bit before a lookup can find c. Needs conns.mu.
func (e *Engine) presenceAddLocked(c *connector, h uint64) {
	k := c.obj.Kind
	if e.presence[k][h&63]++; e.presence[k][h&63] == 1 {
		e.present[k].Store(e.present[k].Load() | presenceBit(h))
	}
}

// presenceRemoveLocked uncounts c, just taken out of the table, clearing its bit if it was
// the kind's last connector there. Needs conns.mu.
func (e *Engine) presenceRemoveLocked(c *connector, h uint64) {
	k := c.obj.Kind
	if e.presence[k][h&63]--; e.presence[k][h&63] == 0 {
		e.present[k].Store(e.present[k].Load() &^ presenceBit(h))
	}
}

// crowdedBucket is the filter's slot of a bucket whose named connector left the table while
// others remain: lookups there probe the table. Its kind is no kind's, so it matches no
// object.
var crowdedBucket = &connector{obj: Object{Kind: 0xff}}

// filterAddLocked records c, just put in the table, in the filter: c becomes its bucket's
// named connector. Needs conns.mu.
func (e *Engine) filterAddLocked(c *connector, h uint64) {
	b := h >> (64 - filterBits)
	e.counts[b]++
	e.filter[b].Store(c)
}

// filterRemoveLocked forgets c, just taken out of the table, in the filter: its bucket's slot
// becomes nil if it was the bucket's last connector, crowdedBucket if it was the named one.
// Needs conns.mu.
func (e *Engine) filterRemoveLocked(c *connector, h uint64) {
	b := h >> (64 - filterBits)
	e.counts[b]--
	if e.counts[b] == 0 {
		e.filter[b].Store(nil)
	} else if e.filter[b].Load() == c {
		e.filter[b].Store(crowdedBucket)
	}
}

// connectorFor returns obj's connector, creating it if needed. The caller locks it and must
// retry if it finds it detached.
func (e *Engine) connectorFor(obj Object) *connector {
	h := hashObject(obj)
	if c := e.conns.get(obj, h); c != nil {
		return c
	}
	e.conns.mu.Lock()
	defer e.conns.mu.Unlock()
	if c := e.conns.get(obj, h); c != nil {
		return c
	}
	c := &connector{obj: obj}
	c.list.Store(&emptyList)
	e.presenceAddLocked(c, h)
	e.conns.putLocked(c, h)
	e.filterAddLocked(c, h)
	e.nconns[obj.Kind].Add(1)
	return c
}

// removeConnectorLocked takes c out of the table. Needs c.mu.
func (e *Engine) removeConnectorLocked(c *connector) {
	h := hashObject(c.obj)
	e.conns.mu.Lock()
	if e.conns.deleteLocked(c, h) {
		e.filterRemoveLocked(c, h)
		e.presenceRemoveLocked(c, h)
		e.nconns[c.obj.Kind].Add(-1)
	}
	e.conns.mu.Unlock()
	c.detached = true
}

// VolatilePermissionIgnores reports whether some mark ignores permission events without
// IgnoreSurviveModify. A Modify event clears such an ignore mask inside Notify (as the
// kernel's send_to_group does), which gives the mark's group permission events again with no
// mark operation and no PermissionHook call: a source must not remember permission verdicts
// while this holds. It may stay true after the mask was cleared, until the mark changes.
func (e *Engine) VolatilePermissionIgnores() bool { return e.volatileIgnores.Load() > 0 }

// PermissionState is which groups have marks whose event mask holds permission events, as of
// one moment: each change makes a new one, so two loads that return the same pointer saw no
// change between them (a seqlock without its retry: see Backend.AnswerAhead).
type PermissionState struct {
	owner *Group
}

// Owner is the only group with such marks, nil if none or several have them.
func (s *PermissionState) Owner() *Group { return s.owner }

// PermissionState returns which groups have marks whose event mask holds permission events
// (never nil). A group's first such mark makes a new state before the mark is attached, and
// its last one after it is detached: while a state names an owner, no other group's
// permission mark is attached, and a permission event dispatched then reaches no other group
// (Event.AllowedAhead relies on it). One atomic load.
func (e *Engine) PermissionState() *PermissionState { return e.perm.Load() }

// setPermissionGroup records that g has permission marks (has) or no longer has, and updates
// the state. Called by countPerm under g.markMu, which orders one group's calls.
func (e *Engine) setPermissionGroup(g *Group, has bool) {
	e.permMu.Lock()
	defer e.permMu.Unlock()
	if e.permGroups == nil {
		e.permGroups = map[*Group]struct{}{}
	}
	if has {
		e.permGroups[g] = struct{}{}
	} else {
		delete(e.permGroups, g)
	}
	s := &PermissionState{}
	if len(e.permGroups) == 1 {
		for o := range e.permGroups {
			s.owner = o
		}
	}
	e.perm.Store(s)
}

// syncHookLocked brings the hook's view of c's object up to date, then retires c from the
// table if it has no marks left and the hook was told so. It returns the hook's error. Needs
// c.hookMu (and no other lock: it calls the hook).
func (e *Engine) syncHookLocked(c *connector) error {
	now := c.interest()
	var err error
	if now != c.reported {
		if e.hook != nil {
			err = e.hook(c.obj, c.reported, now)
		}
		// A failed shrink still counts as reported: the engine's marks are gone regardless.
		if err == nil || now&^c.reported == 0 {
			c.reported = now
		}
	}
	if c.reported == 0 {
		c.mu.Lock()
		if len(*c.list.Load()) == 0 && !c.detached {
			e.removeConnectorLocked(c)
		}
		c.mu.Unlock()
	}
	return err
}

// Stats are engine-wide figures.
type Stats struct {
	Groups     int
	Connectors int64
	Marks      int64
	// Notified counts Notify calls; PermissionNotified those with a permission bit.
	Notified, PermissionNotified uint64
}

// Stats returns current figures.
func (e *Engine) Stats() Stats {
	e.groupsMu.Lock()
	n := len(e.groups)
	e.groupsMu.Unlock()
	perm := e.permNotified.Load() // before the sum: PermissionNotified ≤ Notified
	return Stats{
		Groups:             n,
		Connectors:         e.connectors(),
		Marks:              e.marks.Load(),
		Notified:           e.notifications.Load() + perm,
		PermissionNotified: perm,
	}
}

func (e *Engine) connectors() int64 {
	var n int64
	for i := range e.nconns {
		n += e.nconns[i].Load()
	}
	return n
}

// Groups returns the open groups, oldest first.
func (e *Engine) Groups() []*Group {
	e.groupsMu.Lock()
	out := make([]*Group, 0, len(e.groups))
	for _, g := range e.groups {
		out = append(out, g)
	}
	e.groupsMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// MarksOn returns the marks on obj, in the order Notify visits them. For tests and
// introspection.
func (e *Engine) MarksOn(obj Object) []MarkInfo {
	c := e.lookup(obj)
	if c == nil {
		return nil
	}
	var out []MarkInfo
	for _, m := range *c.list.Load() {
		if m.attached.Load() {
			out = append(out, m.info())
		}
	}
	return out
}

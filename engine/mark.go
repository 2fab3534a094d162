package engine

import (
	"sync"
	"sync/atomic"
)

// connector is one object's list of marks (struct fsnotify_mark_connector). The list is
// copy-on-write and sorted by group priority (class, highest first; then group id): a walk
// loads it once and keeps iterating its snapshot while marks come and go.
type connector struct {
	obj  Object
	list atomic.Pointer[[]*Mark]

	mu       sync.Mutex // guards replacing list, and detached
	detached bool       // out of the table: a mark operation that finds it retries

	hookMu   sync.Mutex
	reported Mask // the union last given to the MaskHook; guarded by hookMu
}

var emptyList []*Mark

// interest is the union the MaskHook sees (fsnotify_calc_mask over the marks).
func (c *connector) interest() Mask {
	var m Mask
	for _, mk := range *c.list.Load() {
		if !mk.attached.Load() {
			continue
		}
		m |= Mask(mk.mask.Load())
		if ig := Mask(mk.ignore.Load()); ig&AllEvents != 0 {
			if MarkFlags(mk.flags.Load())&IgnoreSurviveModify == 0 {
				m |= Modify // the kernel's FS_MODIFY interest, to clear the ignore mask
			}
			// An ignore mask that covers children makes the object watch its children, as
			// fsnotify_calc_mask: a source must then tell the engine events' parents.
			m |= ig & EventOnChild
		}
	}
	return m
}

// Mark is one group's mark on one object (struct fsnotify_mark). Its masks are read without
// locks by Notify; they change under the connector's lock.
type Mark struct {
	group    *Group
	conn     *connector
	mask     atomic.Uint64
	ignore   atomic.Uint64
	flags    atomic.Uint32
	attached atomic.Bool // FSNOTIFY_MARK_FLAG_ATTACHED
	// volatile: counted in Engine.volatileIgnores (its ignore mask holds permission events
	// that a modification clears); guarded by conn.mu.
	volatile bool
	// perm: counted in its group's permMarks (its event mask holds permission events);
	// guarded by group.markMu.
	perm bool

	prev, next *Mark // the group's list; guarded by group.markMu
}

// MarkInfo describes a mark.
type MarkInfo struct {
	Group  uint64
	Object Object
	MarkSpec
}

func (m *Mark) info() MarkInfo {
	return MarkInfo{Group: m.group.id, Object: m.conn.obj, MarkSpec: m.spec()}
}

func (m *Mark) spec() MarkSpec {
	return MarkSpec{Mask: Mask(m.mask.Load()), Ignore: Mask(m.ignore.Load()), Flags: MarkFlags(m.flags.Load())}
}

// setSpec sets m's masks and flags. Needs m.conn.mu.
func (m *Mark) setSpec(s MarkSpec) {
	perm := s.Mask&PermissionEvents != 0
	if perm {
		m.countPerm(true) // before a mask that gives the group permission events is seen
	}
	m.mask.Store(uint64(s.Mask))
	m.ignore.Store(uint64(s.Ignore))
	m.flags.Store(uint32(s.Flags))
	m.countVolatile(s.Ignore&PermissionEvents != 0 && s.Flags&IgnoreSurviveModify == 0)
	if !perm {
		m.countPerm(false) // after the last mask that gave them
	}
}

// countPerm keeps m's group's permMarks counting m while v holds (m is attached or being
// attached), and the engine's PermissionState up to date when the group's count leaves or
// reaches zero. Called before a new mark is attached and after a removed one is detached, so
// that PermissionState never names a sole group while another group's permission mark is
// attached. Needs m.group.markMu (and m.conn.mu).
func (m *Mark) countPerm(v bool) {
	if v == m.perm {
		return
	}
	m.perm = v
	g := m.group
	if v {
		g.permMarks++
		if g.permMarks == 1 {
			g.e.setPermissionGroup(g, true)
		}
	} else {
		g.permMarks--
		if g.permMarks == 0 {
			g.e.setPermissionGroup(g, false)
		}
	}
}

// countVolatile keeps Engine.volatileIgnores counting m while v holds (and m is attached or
// being attached). Needs m.conn.mu.
func (m *Mark) countVolatile(v bool) {
	if v == m.volatile {
		return
	}
	m.volatile = v
	if v {
		m.group.e.volatileIgnores.Add(1)
	} else {
		m.group.e.volatileIgnores.Add(-1)
	}
}

// permissionGrowth reports whether changing a mark from old to new may give its group
// permission events it did not get: the new event mask holds permission events and changed,
// or permission events left the ignore mask.
func permissionGrowth(old, new MarkSpec) bool {
	if new.Mask&PermissionEvents == 0 {
		return false
	}
	return new.Mask != old.Mask || old.Ignore&^new.Ignore&PermissionEvents != 0 || new.Flags != old.Flags
}

// before orders marks in a connector list: higher class first, then older group.
func before(a, b *Group) bool {
	if a.opts.Class != b.opts.Class {
		return a.opts.Class > b.opts.Class
	}
	return a.id < b.id
}

// find returns g's mark in c's current list (an immutable snapshot; lock c.mu to act on it).
func (c *connector) find(g *Group) *Mark {
	for _, m := range *c.list.Load() {
		if m.group == g {
			return m
		}
	}
	return nil
}

// insertLocked publishes a list with m in priority order. Needs c.mu.
func (c *connector) insertLocked(m *Mark) {
	old := *c.list.Load()
	if len(old) == 0 {
		c.publishOneLocked(m)
		return
	}
	n := make([]*Mark, 0, len(old)+1)
	i := 0
	for ; i < len(old) && before(old[i].group, m.group); i++ {
	}
	n = append(n, old[:i]...)
	n = append(n, m)
	n = append(n, old[i:]...)
	c.publishLocked(n)
}

// publishLocked makes n (freshly made, never changed after) c's list. Needs c.mu.
func (c *connector) publishLocked(n []*Mark) {
	if len(n) == 1 {
		c.publishOneLocked(n[0])
		return
	}
	l := n
	c.list.Store(&l)
}

// publishOneLocked makes {m} c's list. A list of one mark — the embedded guard's, and most
// objects' — is stored with its slice header and array in one 32-byte allocation, one cache
// line, where Notify's walk loaded two: the header, then the array. Needs c.mu.
func (c *connector) publishOneLocked(m *Mark) {
	l := &struct {
		s []*Mark
		a [1]*Mark
	}{}
	l.a[0] = m
	l.s = l.a[:]
	c.list.Store(&l.s)
}

// detachLocked publishes a list without m (fsnotify_detach_mark). Walks that already hold the
// old list still see m, but skip it: it is no longer attached. Needs c.mu.
func (c *connector) detachLocked(m *Mark) {
	m.attached.Store(false)
	m.countVolatile(false)
	m.countPerm(false)
	old := *c.list.Load()
	if len(old) == 1 && old[0] == m {
		c.list.Store(&emptyList)
		return
	}
	n := make([]*Mark, 0, len(old)-1)
	for _, x := range old {
		if x != m {
			n = append(n, x)
		}
	}
	c.publishLocked(n)
}

func validObject(obj Object) bool {
	return obj.Kind >= KindInode && obj.Kind < numKinds && !obj.ID.IsZero()
}

// checkSpecLocked validates a mark's masks for g (fanotify_mark's EINVAL cases).
func (g *Group) checkSpec(s MarkSpec) error {
	if (s.Mask|s.Ignore)&^(AllEvents|EventFlags) != 0 || s.Flags&^IgnoreSurviveModify != 0 {
		return ErrInvalid
	}
	all := s.Mask | s.Ignore
	if all&PermissionEvents != 0 && g.opts.Class == ClassNotification {
		return ErrPermissionBit
	}
	if all&PreContentEvents != 0 && g.opts.Class != ClassPreContent {
		return ErrPreContentBit
	}
	if s.Mask&PreAccess != 0 && s.Mask&OnDir != 0 {
		return ErrInvalid // pre-access is for regular files only
	}
	return nil
}

// AddMark adds events to g's mark on obj, creating the mark if needed: spec.Mask and
// spec.Ignore are ORed into the mark's masks and spec.Flags into its flags (FAN_MARK_ADD).
// If the MaskHook refuses the new union, the mark is restored and the hook's error returned.
func (g *Group) AddMark(obj Object, spec MarkSpec) error {
	return g.changeMark(obj, true, func(old MarkSpec) MarkSpec {
		return MarkSpec{Mask: old.Mask | spec.Mask, Ignore: old.Ignore | spec.Ignore, Flags: old.Flags | spec.Flags}
	}, spec)
}

// ModifyMark replaces g's mark on obj with spec; ErrNoMark if there is none. If the MaskHook
// refuses the new union, the mark is restored and the hook's error returned.
func (g *Group) ModifyMark(obj Object, spec MarkSpec) error {
	return g.changeMark(obj, false, func(MarkSpec) MarkSpec { return spec }, spec)
}

// changeMark applies f to g's mark on obj (creating it when create is set) and syncs the hook.
func (g *Group) changeMark(obj Object, create bool, f func(MarkSpec) MarkSpec, arg MarkSpec) error {
	if !validObject(obj) {
		return ErrInvalid
	}
	if arg.Mask&AllEvents == 0 && arg.Ignore&AllEvents == 0 {
		return ErrInvalid // an empty mask, as fanotify_mark
	}
	if err := g.checkSpec(arg); err != nil {
		return err
	}
	g.markMu.Lock()
	closed := g.markClosed
	g.markMu.Unlock()
	if closed {
		return ErrClosed
	}
	c := g.lockObject(obj, create)
	if c == nil {
		return ErrNoMark
	}
	var (
		m        *Mark
		old, now MarkSpec
		created  bool
		err      error
	)
	switch m = c.find(g); {
	case g.markClosed:
		err = ErrClosed
	case m != nil:
		old = m.spec()
		now = f(old)
		m.setSpec(now)
	case !create:
		err = ErrNoMark
	case g.opts.MarkLimit > 0 && g.nmarks >= g.opts.MarkLimit:
		err = ErrMarkLimit
	default:
		now = f(MarkSpec{})
		m = &Mark{group: g, conn: c}
		m.setSpec(now)
		m.attached.Store(true)
		c.insertLocked(m)
		g.linkLocked(m)
		created = true
	}
	if err != nil {
		g.unlockObject(c) // retires the connector if it was made for this call
		return err
	}
	c.mu.Unlock()
	g.markMu.Unlock()
	defer c.hookMu.Unlock()
	err = g.e.syncHookLocked(c)
	if err == nil {
		if g.e.permHook != nil && permissionGrowth(old, now) {
			g.e.permHook(c.obj)
		}
		return nil
	}
	// Refused: undo. c.hookMu is still held, so no other mark change on the object ran since
	// ours and the undo erases nothing but ours. The one lock-free writer is a modification
	// event clearing the ignore mask (walk.run): it stays cleared where it would have
	// cleared the old ignore mask too.
	g.markMu.Lock()
	c.mu.Lock()
	if created {
		c.detachLocked(m)
		g.unlinkLocked(m)
	} else {
		if now.Ignore != 0 && m.ignore.Load() == 0 && old.Flags&IgnoreSurviveModify == 0 {
			old.Ignore = 0
		}
		m.setSpec(old)
	}
	c.mu.Unlock()
	g.markMu.Unlock()
	g.e.syncHookLocked(c)
	return err
}

// RemoveFromMark clears events from g's mark on obj, removing the mark when both of its masks
// become empty (FAN_MARK_REMOVE). ErrNoMark if there is no mark.
func (g *Group) RemoveFromMark(obj Object, mask, ignore Mask) error {
	c := g.lockObject(obj, false)
	if c == nil {
		return ErrNoMark
	}
	m := c.find(g)
	if m == nil || !m.attached.Load() {
		g.unlockObject(c)
		return ErrNoMark
	}
	old := m.spec()
	s := old
	s.Mask &^= mask
	s.Ignore &^= ignore
	empty := s.Mask&AllEvents == 0 && s.Ignore&AllEvents == 0
	if empty {
		c.detachLocked(m)
		g.unlinkLocked(m)
	} else {
		m.setSpec(s)
	}
	g.unlockObject(c)
	if !empty && g.e.permHook != nil && permissionGrowth(old, s) {
		g.e.permHook(c.obj) // permission events left the ignore mask
	}
	return nil
}

// RemoveMark removes g's mark on obj. It returns promptly whatever is pending anywhere, and
// once it returns no Notify that starts afterwards delivers through the mark.
func (g *Group) RemoveMark(obj Object) error {
	c := g.e.lookup(obj)
	if c == nil {
		return ErrNoMark
	}
	m := c.find(g) // the snapshot is immutable; removeMark checks that m is still attached
	if m == nil || !g.removeMark(m) {
		return ErrNoMark
	}
	return nil
}

// removeMark detaches m from its connector and from g, then syncs the hook. It reports false
// if m was already detached.
func (g *Group) removeMark(m *Mark) bool {
	c := m.conn
	c.hookMu.Lock()
	g.markMu.Lock()
	c.mu.Lock()
	if !m.attached.Load() {
		// Removed meanwhile; c may even be retired. Nothing changed: no hook call.
		c.mu.Unlock()
		g.markMu.Unlock()
		c.hookMu.Unlock()
		return false
	}
	c.detachLocked(m)
	g.unlinkLocked(m)
	g.unlockObject(c)
	return true
}

// FlushMarks removes all of g's marks on objects of kind k (FAN_MARK_FLUSH); k == 0 removes
// every mark.
func (g *Group) FlushMarks(k Kind) {
	g.markMu.Lock()
	var victims []*Mark
	for m := g.marks; m != nil; m = m.next {
		if k == 0 || m.conn.obj.Kind == k {
			victims = append(victims, m)
		}
	}
	g.markMu.Unlock()
	for _, m := range victims {
		g.removeMark(m)
	}
}

// Mark returns g's mark on obj.
func (g *Group) Mark(obj Object) (MarkSpec, bool) {
	c := g.e.lookup(obj)
	if c == nil {
		return MarkSpec{}, false
	}
	m := c.find(g) // the snapshot is immutable
	if m == nil || !m.attached.Load() {
		return MarkSpec{}, false
	}
	return m.spec(), true
}

// Marks returns all of g's marks.
func (g *Group) Marks() []MarkInfo {
	g.markMu.Lock()
	defer g.markMu.Unlock()
	out := make([]MarkInfo, 0, g.nmarks)
	for m := g.marks; m != nil; m = m.next {
		out = append(out, m.info())
	}
	return out
}

// lockObject takes, in lock order, the locks a change of g's mark on obj needs — the
// connector's hookMu, g.markMu, the connector's mu — and returns the connector; with create
// it makes one if there is none, else it returns nil then. A connector found detached was
// retired concurrently: it retries with its successor, if any.
func (g *Group) lockObject(obj Object, create bool) *connector {
	for {
		var c *connector
		if create {
			c = g.e.connectorFor(obj)
		} else if c = g.e.lookup(obj); c == nil {
			return nil
		}
		c.hookMu.Lock()
		g.markMu.Lock()
		c.mu.Lock()
		if !c.detached {
			return c
		}
		c.mu.Unlock()
		g.markMu.Unlock()
		c.hookMu.Unlock()
	}
}

// unlockObject ends a change that lockObject began: it drops c.mu and g.markMu, brings the
// MaskHook up to date (retiring c if it has no marks left) and drops c.hookMu. It returns the
// hook's error.
func (g *Group) unlockObject(c *connector) error {
	c.mu.Unlock()
	g.markMu.Unlock()
	err := g.e.syncHookLocked(c)
	c.hookMu.Unlock()
	return err
}

// linkLocked adds m to g's mark list. Needs g.markMu.
func (g *Group) linkLocked(m *Mark) {
	m.next = g.marks
	if g.marks != nil {
		g.marks.prev = m
	}
	g.marks = m
	g.nmarks++
	g.e.marks.Add(1)
}

// unlinkLocked takes m off g's mark list. Needs g.markMu.
func (g *Group) unlinkLocked(m *Mark) {
	if m.prev != nil {
		m.prev.next = m.next
	} else {
		g.marks = m.next
	}
	if m.next != nil {
		m.next.prev = m.prev
	}
	m.prev, m.next = nil, nil
	g.nmarks--
	g.e.marks.Add(-1)
}

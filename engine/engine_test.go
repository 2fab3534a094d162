package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Object ids used across the tests: a filesystem fs1 with mount mnt1, a directory tree
// root(10) → dir(11) → sub(12), files f(20) in dir and g(21) in sub.
var (
	fs1  = ID{Hi: 1}
	mnt1 = ID{Hi: 2}
	root = ID{Hi: 9, Lo: 10}
	dir  = ID{Hi: 9, Lo: 11}
	sub  = ID{Hi: 9, Lo: 12}
	f    = ID{Hi: 9, Lo: 20}
	g21  = ID{Hi: 9, Lo: 21}
)

// fileEvent is an event on file f in dir (an event on a child).
func fileEvent(m Mask) *Event {
	return &Event{Mask: m, Inode: f, Parent: dir, Mount: mnt1, Filesystem: fs1,
		Ancestors: []ID{dir, root}, Name: "f", Pid: 100}
}

// deepEvent is an event on g21 in sub.
func deepEvent(m Mask) *Event {
	return &Event{Mask: m, Inode: g21, Parent: sub, Mount: mnt1, Filesystem: fs1,
		Ancestors: []ID{sub, dir, root}, Name: "g", Pid: 100}
}

// direntEvent is a directory-entry event in dir (create, delete, move).
func direntEvent(m Mask, name string) *Event {
	return &Event{Mask: m, Inode: dir, Mount: mnt1, Filesystem: fs1, Ancestors: []ID{root}, Name: name, Pid: 100}
}

func newGroup(t testing.TB, e *Engine, opts Options) *Group {
	t.Helper()
	g, err := e.NewGroup(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func mustAdd(t testing.TB, g *Group, obj Object, spec MarkSpec) {
	t.Helper()
	if err := g.AddMark(obj, spec); err != nil {
		t.Fatalf("AddMark(%v, %v): %v", obj, spec.Mask, err)
	}
}

// drain reads everything queued without blocking.
func drain(g *Group) []Delivery {
	var out []Delivery
	for {
		d, err := g.TryRead()
		if err != nil {
			return out
		}
		d.Release()
		out = append(out, d)
	}
}

func masks(ds []Delivery) []Mask {
	var out []Mask
	for _, d := range ds {
		out = append(out, d.Mask)
	}
	return out
}

func TestDeliveryPerMarkType(t *testing.T) {
	tests := []struct {
		name string
		obj  Object
		mark Mask
		ev   *Event
		want Mask // 0: nothing
	}{
		{"inode mark on the file", Inode(f), Open, fileEvent(Open), Open},
		{"inode mark, other event", Inode(f), Open, fileEvent(Access), 0},
		{"dir mark without event-on-child", Inode(dir), Open, fileEvent(Open), 0},
		{"dir mark with event-on-child", Inode(dir), Open | EventOnChild, fileEvent(Open), Open},
		{"dir mark sees dirent events", Inode(dir), Create, direntEvent(Create, "x"), Create},
		{"dirent event on a directory needs OnDir", Inode(dir), Create, direntEvent(Create|OnDir, "d"), 0},
		{"dirent event on a directory with OnDir", Inode(dir), Create | OnDir, direntEvent(Create|OnDir, "d"), Create | OnDir},
		{"dir mark event-on-child does not see grandchildren", Inode(dir), Open | EventOnChild, deepEvent(Open), 0},
		{"mount mark", Mount(mnt1), Open, fileEvent(Open), Open},
		{"filesystem mark", Filesystem(fs1), Open | Close, fileEvent(CloseWrite), CloseWrite},
		{"subtree mark on the parent", Subtree(dir), Open, fileEvent(Open), Open},
		{"subtree mark sees grandchildren", Subtree(dir), Open, deepEvent(Open), Open},
		{"subtree mark sees dirent events inside", Subtree(dir), Create, direntEvent(Create, "x"), Create},
		{"subtree mark on a sibling", Subtree(sub), Open, fileEvent(Open), 0},
		{"permission bit in a notification mask", Inode(f), Open, fileEvent(OpenPerm), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkOneDelivery(t, tt.obj, tt.mark, tt.ev, tt.want) })
	}
}

// checkOneDelivery notifies ev to a fresh engine whose one group has a mark of mask on obj, and
// checks that the group gets one delivery of ev with mask want (0: nothing).
func checkOneDelivery(t *testing.T, obj Object, mask Mask, ev *Event, want Mask) {
	t.Helper()
	e := New(Config{})
	g := newGroup(t, e, Options{})
	mustAdd(t, g, obj, MarkSpec{Mask: mask})
	if r := e.Notify(context.Background(), ev); r.Verdict != Allow {
		t.Fatalf("verdict %v", r)
	}
	got := drain(g)
	if want == 0 {
		if len(got) != 0 {
			t.Fatalf("got %v, want nothing", masks(got))
		}
		return
	}
	if len(got) != 1 || got[0].Mask != want {
		t.Fatalf("got %v, want [%v]", masks(got), want)
	}
	if got[0].Event != ev {
		t.Fatal("delivery does not carry the event")
	}
}

func TestOneDeliveryPerGroup(t *testing.T) {
	e := New(Config{})
	g := newGroup(t, e, Options{})
	mustAdd(t, g, Inode(f), MarkSpec{Mask: Open})
	mustAdd(t, g, Inode(dir), MarkSpec{Mask: Access | EventOnChild})
	mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open})
	mustAdd(t, g, Filesystem(fs1), MarkSpec{Mask: Open})
	mustAdd(t, g, Subtree(root), MarkSpec{Mask: Open})
	e.Notify(context.Background(), fileEvent(Open|Access))
	got := drain(g)
	if len(got) != 1 || got[0].Mask != Open|Access {
		t.Fatalf("got %v, want one OPEN|ACCESS", masks(got))
	}
}

func TestIgnoreMasks(t *testing.T) {
	tests := []struct {
		name   string
		marks  []MarkInfo // Group 1 is g, 2 is other
		ev     *Event
		wantG  Mask
		wantOt Mask
	}{
		{
			name: "inode ignore silences the same group's mount mark",
			marks: []MarkInfo{
				{Group: 1, Object: Mount(mnt1), MarkSpec: MarkSpec{Mask: Open}},
				{Group: 1, Object: Inode(f), MarkSpec: MarkSpec{Ignore: Open}},
				{Group: 2, Object: Mount(mnt1), MarkSpec: MarkSpec{Mask: Open}},
			},
			ev: fileEvent(Open), wantG: 0, wantOt: Open,
		},
		{
			name: "parent ignore without event-on-child does not cover children",
			marks: []MarkInfo{
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open}},
				{Group: 1, Object: Inode(dir), MarkSpec: MarkSpec{Ignore: Open}},
			},
			ev: fileEvent(Open), wantG: Open,
		},
		{
			name: "parent ignore with event-on-child covers children",
			marks: []MarkInfo{
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open}},
				{Group: 1, Object: Inode(dir), MarkSpec: MarkSpec{Ignore: Open | EventOnChild}},
			},
			ev: fileEvent(Open), wantG: 0,
		},
		{
			name: "ignore without OnDir does not cover the directory's own events",
			marks: []MarkInfo{
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open | OnDir}},
				{Group: 1, Object: Inode(dir), MarkSpec: MarkSpec{Ignore: Open}},
			},
			ev:    &Event{Mask: Open | OnDir, Inode: dir, Filesystem: fs1},
			wantG: Open | OnDir,
		},
		{
			name: "ignore with OnDir covers them",
			marks: []MarkInfo{
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open | OnDir}},
				{Group: 1, Object: Inode(dir), MarkSpec: MarkSpec{Ignore: Open | OnDir}},
			},
			ev:    &Event{Mask: Open | OnDir, Inode: dir, Filesystem: fs1},
			wantG: 0,
		},
		{
			name: "subtree ignore covers everything below",
			marks: []MarkInfo{
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open}},
				{Group: 1, Object: Subtree(dir), MarkSpec: MarkSpec{Ignore: Open}},
			},
			ev: deepEvent(Open), wantG: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(Config{})
			gs := []*Group{newGroup(t, e, Options{}), newGroup(t, e, Options{})}
			for _, m := range tt.marks {
				mustAdd(t, gs[m.Group-1], m.Object, m.MarkSpec)
			}
			e.Notify(context.Background(), tt.ev)
			for i, want := range []Mask{tt.wantG, tt.wantOt} {
				got := drain(gs[i])
				var gotMask Mask
				if len(got) > 1 {
					t.Fatalf("group %d: %v", i+1, masks(got))
				}
				if len(got) == 1 {
					gotMask = got[0].Mask
				}
				if gotMask != want {
					t.Errorf("group %d got %v, want %v", i+1, gotMask, want)
				}
			}
		})
	}
}

func TestModifyClearsIgnoreMask(t *testing.T) {
	for _, surv := range []bool{false, true} {
		e := New(Config{})
		g := newGroup(t, e, Options{})
		var flags MarkFlags
		if surv {
			flags = IgnoreSurviveModify
		}
		mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open | Modify})
		mustAdd(t, g, Inode(f), MarkSpec{Ignore: Open, Flags: flags})
		e.Notify(context.Background(), fileEvent(Open))
		e.Notify(context.Background(), fileEvent(Modify))
		e.Notify(context.Background(), &Event{Mask: Open, Inode: f, Mount: mnt1, Pid: 7})
		got := masks(drain(g))
		want := []Mask{Modify, Open}
		if surv {
			want = []Mask{Modify}
		}
		if len(got) != len(want) || got[0] != want[0] || (len(want) > 1 && got[1] != want[1]) {
			t.Errorf("surv=%v: got %v, want %v", surv, got, want)
		}
	}
}

func TestMergeAndOverflow(t *testing.T) {
	e := New(Config{})
	g := newGroup(t, e, Options{QueueLimit: 3})
	mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open | Close | Access})
	ctx := context.Background()
	e.Notify(ctx, fileEvent(Open))
	e.Notify(ctx, fileEvent(Access)) // merges into the unread OPEN
	other := fileEvent(Open)
	other.Pid = 200 // another process: no merge
	e.Notify(ctx, other)
	for i := range 5 {
		ev := &Event{Mask: Open, Inode: ID{Hi: 50, Lo: uint64(i + 1)}, Mount: mnt1}
		e.Notify(ctx, ev)
	}
	got := masks(drain(g))
	want := []Mask{Open | Access, Open, Open, QueueOverflow}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	st := g.Stats()
	if st.Merged != 1 || st.Dropped != 4 || st.Overflows != 1 {
		t.Errorf("stats %+v", st)
	}
	// After reading, the queue takes events again and a later overflow is reported again.
	e.Notify(ctx, fileEvent(Open))
	if got := masks(drain(g)); len(got) != 1 || got[0] != Open {
		t.Fatalf("after drain got %v", got)
	}
}

func TestReadMergeOnlyUnread(t *testing.T) {
	e := New(Config{})
	g := newGroup(t, e, Options{})
	mustAdd(t, g, Inode(f), MarkSpec{Mask: Open | Access})
	e.Notify(context.Background(), fileEvent(Open))
	d, err := g.TryRead()
	if err != nil {
		t.Fatal(err)
	}
	d.Release()
	e.Notify(context.Background(), fileEvent(Access))
	if got := masks(drain(g)); len(got) != 1 || got[0] != Access {
		t.Fatalf("got %v", got)
	}
}

// answerer answers every permission event of g with v until g closes.
func answerer(t testing.TB, g *Group, r Response) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			d, err := g.Read(ctx)
			if err != nil {
				return
			}
			if d.ID != 0 {
				if err := g.Respond(d.ID, r); err != nil {
					t.Errorf("Respond: %v", err)
				}
			}
			d.Release()
		}
	}()
	return func() { cancel(); <-done }
}

func TestPermissionPriorityAndFirstDeny(t *testing.T) {
	e := New(Config{})
	var order []string
	var mu sync.Mutex
	mk := func(name string, class Class, v Verdict) *Group {
		g := newGroup(t, e, Options{Class: class, Name: name})
		mustAdd(t, g, Inode(f), MarkSpec{Mask: OpenPerm})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				d, err := g.Read(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				g.Respond(d.ID, Response{Verdict: v})
				d.Release()
			}
		}()
		t.Cleanup(func() { cancel(); <-done })
		return g
	}
	// Created lowest class first: the walk must still go pre-content, content, notification.
	notif := newGroup(t, e, Options{Name: "notif"})
	mustAdd(t, notif, Inode(f), MarkSpec{Mask: Open})
	mk("content-allow", ClassContent, Allow)
	deny := mk("precontent-deny", ClassPreContent, Deny)
	mk("precontent-allow", ClassPreContent, Allow)

	r := e.Notify(context.Background(), fileEvent(OpenPerm))
	if r.Verdict != Deny || r.Reason != ReasonAnswered || r.Group != deny.ID() {
		t.Fatalf("got %+v, want deny from the first pre-content group", r)
	}
	mu.Lock()
	if len(order) != 1 || order[0] != "precontent-deny" {
		t.Fatalf("order %v: the first deny must end the walk", order)
	}
	order = nil
	mu.Unlock()
	deny.Close()
	r = e.Notify(context.Background(), fileEvent(OpenPerm))
	if r.Verdict != Allow || r.Reason != ReasonAnswered {
		t.Fatalf("got %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 2 || order[0] != "precontent-allow" || order[1] != "content-allow" {
		t.Fatalf("order %v", order)
	}
}

func TestRespondErrors(t *testing.T) {
	e := New(Config{})
	g := newGroup(t, e, Options{Class: ClassContent})
	mustAdd(t, g, Inode(f), MarkSpec{Mask: OpenPerm})
	if err := g.Respond(12345, Response{}); !errors.Is(err, ErrNoSuchEvent) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("unknown id: %v", err)
	}
	res := make(chan Response)
	go func() { res <- e.Notify(context.Background(), fileEvent(OpenPerm)) }()
	d, err := g.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	// An errno from a content group is a plain deny: answered, no error.
	if err := g.Respond(d.ID, Response{Verdict: Deny, Errno: syscall.EIO}); err != nil {
		t.Fatalf("errno from a content group: %v, want a plain deny", err)
	}
	if err := g.Respond(d.ID, Response{}); !errors.Is(err, ErrNoSuchEvent) {
		t.Fatalf("second answer: %v", err)
	}
	if r := <-res; r.Verdict != Deny || r.Errno != 0 {
		t.Fatalf("got %+v, want a plain deny", r)
	}
}

// TestRespondAlwaysAnswers: whatever Respond is given for a pending event, the event is
// answered at once — never left to its deadline — and an answer that is no verdict denies.
func TestRespondAlwaysAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		class   Class
		r       Response
		want    Response
		wantErr error
	}{
		{"errno from content", ClassContent, Response{Verdict: Deny, Errno: syscall.EIO}, Response{Verdict: Deny}, nil},
		{"errno not in the list", ClassPreContent, Response{Verdict: Deny, Errno: syscall.ENOENT}, Response{Verdict: Deny}, nil},
		{"errno from pre-content", ClassPreContent, Response{Verdict: Deny, Errno: syscall.EIO}, Response{Verdict: Deny, Errno: syscall.EIO}, nil},
		{"unknown verdict", ClassContent, Response{Verdict: 7}, Response{Verdict: Deny}, ErrInvalidAnswer},
		{"unknown verdict with cache", ClassPreContent, Response{Verdict: 2, Cache: true}, Response{Verdict: Deny}, ErrInvalidAnswer},
		{"allow with errno", ClassPreContent, Response{Errno: syscall.EIO}, Response{Verdict: Deny}, ErrInvalidAnswer},
		{"deny with cache", ClassContent, Response{Verdict: Deny, Cache: true}, Response{Verdict: Deny}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(Config{})
			g := newGroup(t, e, Options{Class: tc.class}) // no deadline: an unanswered event would hang
			mustAdd(t, g, Inode(f), MarkSpec{Mask: OpenPerm})
			res := make(chan Response, 1)
			go func() { res <- e.Notify(context.Background(), fileEvent(OpenPerm)) }()
			d, err := g.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Release()
			if err := g.Respond(d.ID, tc.r); err != tc.wantErr {
				t.Errorf("Respond(%+v): %v, want %v", tc.r, err, tc.wantErr)
			}
			select {
			case r := <-res:
				if r.Verdict != tc.want.Verdict || r.Errno != tc.want.Errno || r.Cache {
					t.Errorf("Respond(%+v) gave %+v, want %+v", tc.r, r, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Respond(%+v) left the access waiting", tc.r)
			}
			if err := g.Respond(d.ID, Response{}); !errors.Is(err, ErrNoSuchEvent) {
				t.Errorf("a second answer: %v, want ErrNoSuchEvent", err)
			}
		})
	}
}

func TestDenyErrno(t *testing.T) {
	e := New(Config{})
	g := newGroup(t, e, Options{Class: ClassPreContent})
	mustAdd(t, g, Inode(f), MarkSpec{Mask: PreAccess})
	stop := answerer(t, g, Response{Verdict: Deny, Errno: syscall.EIO})
	defer stop()
	ev := fileEvent(PreAccess)
	ev.Range = Range{Offset: 4096, Count: 100}
	if r := e.Notify(context.Background(), ev); r.Verdict != Deny || r.Errno != syscall.EIO {
		t.Fatalf("got %+v", r)
	}
	// An errno outside the kernel's list: TestRespondAlwaysAnswers.
}

func TestMarkValidation(t *testing.T) {
	e := New(Config{})
	notif := newGroup(t, e, Options{})
	content := newGroup(t, e, Options{Class: ClassContent})
	pre := newGroup(t, e, Options{Class: ClassPreContent})
	tests := []struct {
		g    *Group
		obj  Object
		spec MarkSpec
		want error
	}{
		{notif, Inode(f), MarkSpec{}, ErrInvalid},
		{notif, Inode(f), MarkSpec{Mask: OnDir}, ErrInvalid},
		{notif, Inode(f), MarkSpec{Mask: QueueOverflow}, ErrInvalid},
		{notif, Object{Kind: 9, ID: f}, MarkSpec{Mask: Open}, ErrInvalid},
		{notif, Inode(ID{}), MarkSpec{Mask: Open}, ErrInvalid},
		{notif, Inode(f), MarkSpec{Mask: OpenPerm}, ErrPermissionBit},
		{content, Inode(f), MarkSpec{Mask: PreAccess}, ErrPreContentBit},
		{pre, Inode(f), MarkSpec{Mask: PreAccess | OnDir}, ErrInvalid},
		{pre, Inode(f), MarkSpec{Mask: PreAccess | OpenPerm}, nil},
		{content, Mount(mnt1), MarkSpec{Mask: OpenExecPerm | AccessPerm}, nil},
	}
	for i, tt := range tests {
		if err := tt.g.AddMark(tt.obj, tt.spec); !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
			t.Errorf("%d: AddMark(%v, %v) = %v, want %v", i, tt.obj, tt.spec.Mask, err, tt.want)
		}
	}
	if err := notif.RemoveMark(Inode(dir)); !errors.Is(err, ErrNoMark) || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("RemoveMark of a missing mark: %v", err)
	}
	if err := notif.ModifyMark(Inode(dir), MarkSpec{Mask: Open}); !errors.Is(err, ErrNoMark) {
		t.Errorf("ModifyMark of a missing mark: %v", err)
	}
	limited := newGroup(t, e, Options{MarkLimit: 1})
	mustAdd(t, limited, Inode(f), MarkSpec{Mask: Open})
	mustAdd(t, limited, Inode(f), MarkSpec{Mask: Access}) // same mark, no new one
	if err := limited.AddMark(Inode(dir), MarkSpec{Mask: Open}); !errors.Is(err, ErrMarkLimit) {
		t.Errorf("mark limit: %v", err)
	}
}

func TestMarkOperations(t *testing.T) {
	e := New(Config{})
	g := newGroup(t, e, Options{})
	mustAdd(t, g, Inode(f), MarkSpec{Mask: Open})
	mustAdd(t, g, Inode(f), MarkSpec{Mask: Access, Ignore: Modify, Flags: IgnoreSurviveModify})
	if s, ok := g.Mark(Inode(f)); !ok || s.Mask != Open|Access || s.Ignore != Modify || s.Flags != IgnoreSurviveModify {
		t.Fatalf("after adds: %+v %v", s, ok)
	}
	if err := g.ModifyMark(Inode(f), MarkSpec{Mask: Close}); err != nil {
		t.Fatal(err)
	}
	if s, _ := g.Mark(Inode(f)); s.Mask != Close || s.Ignore != 0 {
		t.Fatalf("after modify: %+v", s)
	}
	if err := g.RemoveFromMark(Inode(f), CloseWrite, 0); err != nil {
		t.Fatal(err)
	}
	if s, _ := g.Mark(Inode(f)); s.Mask != CloseNoWrite {
		t.Fatalf("after partial remove: %+v", s)
	}
	if err := g.RemoveFromMark(Inode(f), CloseNoWrite, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Mark(Inode(f)); ok {
		t.Fatal("mark survives an empty mask")
	}
	mustAdd(t, g, Inode(f), MarkSpec{Mask: Open})
	mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open})
	mustAdd(t, g, Filesystem(fs1), MarkSpec{Mask: Open})
	g.FlushMarks(KindMount)
	if len(g.Marks()) != 2 {
		t.Fatalf("after flush of mounts: %v", g.Marks())
	}
	g.FlushMarks(0)
	if len(g.Marks()) != 0 || e.Stats().Connectors != 0 || e.Stats().Marks != 0 {
		t.Fatalf("after flush: %v %+v", g.Marks(), e.Stats())
	}
}

// hookRecorder keeps the MaskHook's view of every object, and can refuse a mask.
type hookRecorder struct {
	mu     sync.Mutex
	masks  map[Object]Mask
	refuse Mask
	calls  int
}

func (h *hookRecorder) hook(obj Object, old, new Mask) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.masks[obj] != old {
		panic("hook: old mask does not match the last new mask")
	}
	h.calls++
	if new&h.refuse != 0 && new&^old != 0 {
		return syscall.EXDEV
	}
	if new == 0 {
		delete(h.masks, obj)
	} else {
		h.masks[obj] = new
	}
	return nil
}

func TestMaskHook(t *testing.T) {
	h := &hookRecorder{masks: map[Object]Mask{}, refuse: AccessPerm}
	e := New(Config{MaskHook: h.hook})
	a := newGroup(t, e, Options{Class: ClassContent})
	b := newGroup(t, e, Options{})
	mustAdd(t, a, Inode(dir), MarkSpec{Mask: OpenPerm | EventOnChild})
	mustAdd(t, b, Inode(dir), MarkSpec{Mask: Create | OnDir})
	mustAdd(t, b, Mount(mnt1), MarkSpec{Ignore: Open}) // a non-surviving ignore mask wants Modify
	check := func(obj Object, want Mask) {
		t.Helper()
		h.mu.Lock()
		defer h.mu.Unlock()
		if got := h.masks[obj]; got != want {
			t.Fatalf("hook's mask for %v = %v, want %v", obj, got, want)
		}
	}
	check(Inode(dir), OpenPerm|EventOnChild|Create|OnDir)
	check(Mount(mnt1), Modify)
	err := a.AddMark(Inode(dir), MarkSpec{Mask: AccessPerm})
	if !errors.Is(err, syscall.EXDEV) {
		t.Fatalf("refused union: %v", err)
	}
	if s, _ := a.Mark(Inode(dir)); s.Mask != OpenPerm|EventOnChild {
		t.Fatalf("refused add was not undone: %v", s.Mask)
	}
	if err := a.AddMark(Inode(f), MarkSpec{Mask: AccessPerm}); !errors.Is(err, syscall.EXDEV) {
		t.Fatalf("refused new mark: %v", err)
	}
	if _, ok := a.Mark(Inode(f)); ok || len(e.MarksOn(Inode(f))) != 0 {
		t.Fatal("refused new mark stayed")
	}
	b.Close()
	check(Inode(dir), OpenPerm|EventOnChild)
	check(Mount(mnt1), 0)
	a.Close()
	check(Inode(dir), 0)
	if st := e.Stats(); st.Connectors != 0 || st.Marks != 0 || st.Groups != 0 {
		t.Fatalf("left over: %+v", st)
	}
}

// countingPayload counts releases.
type countingPayload struct{ n *atomic.Int32 }

func (p countingPayload) Release() { p.n.Add(1) }

func TestPayloadReleasedOnce(t *testing.T) {
	var released atomic.Int32
	e := New(Config{})
	a := newGroup(t, e, Options{})
	b := newGroup(t, e, Options{})
	mustAdd(t, a, Inode(f), MarkSpec{Mask: Open})
	mustAdd(t, b, Inode(f), MarkSpec{Mask: Open})
	ev := fileEvent(Open)
	ev.Payload = countingPayload{&released}
	e.Notify(context.Background(), ev)
	ev.Release() // the source is done
	if released.Load() != 0 {
		t.Fatal("released while groups hold it")
	}
	d, _ := a.TryRead()
	d.Release()
	if released.Load() != 0 {
		t.Fatal("released while b holds it")
	}
	b.Close() // drops b's queued delivery
	if released.Load() != 1 {
		t.Fatalf("released %d times", released.Load())
	}
}

func TestReadBlocksAndCloseUnblocks(t *testing.T) {
	e := New(Config{})
	g, _ := e.NewGroup(Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := g.Read(context.Background())
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	g.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g2 := newGroup(t, e, Options{})
	if _, err := g2.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a done context: %v", err)
	}
	if err := g.AddMark(Inode(f), MarkSpec{Mask: Open}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddMark after Close: %v", err)
	}
	g.Close() // idempotent
}

func TestNotifyContextCancel(t *testing.T) {
	e := New(Config{})
	g := newGroup(t, e, Options{Class: ClassContent})
	mustAdd(t, g, Inode(f), MarkSpec{Mask: OpenPerm})
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan Response)
	go func() { res <- e.Notify(ctx, fileEvent(OpenPerm)) }()
	for g.Stats().Pending == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if r := <-res; r.Verdict != Allow || r.Reason != ReasonCancelled {
		t.Fatalf("got %+v", r)
	}
	if st := g.Stats(); st.Queued != 0 || st.Pending != 0 || st.Cancelled != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestQueueFullPermission(t *testing.T) {
	for _, v := range []Verdict{Allow, Deny} {
		e := New(Config{})
		g := newGroup(t, e, Options{Class: ClassContent, QueueLimit: 1, QueueFullVerdict: v})
		mustAdd(t, g, Inode(f), MarkSpec{Mask: OpenPerm})
		first := make(chan Response)
		go func() { first <- e.Notify(context.Background(), fileEvent(OpenPerm)) }()
		for g.Stats().Pending == 0 {
			time.Sleep(time.Millisecond)
		}
		if r := e.Notify(context.Background(), fileEvent(OpenPerm)); r.Verdict != v || r.Reason != ReasonQueueFull {
			t.Fatalf("full queue: got %+v, want %v", r, v)
		}
		got := drain(g) // the pending event, then the overflow
		if len(got) != 2 || got[0].ID == 0 || got[1].Mask != QueueOverflow {
			t.Fatalf("queue: %v", masks(got))
		}
		g.Respond(got[0].ID, Response{})
		<-first
	}
}

func TestCacheVerdict(t *testing.T) {
	e := New(Config{})
	a := newGroup(t, e, Options{Class: ClassContent})
	b := newGroup(t, e, Options{Class: ClassContent})
	mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
	mustAdd(t, b, Mount(mnt1), MarkSpec{Mask: OpenPerm})
	stopA := answerer(t, a, Response{Cache: true})
	defer stopA()
	stopB := answerer(t, b, Response{})
	if r := e.Notify(context.Background(), fileEvent(OpenPerm)); r.Cache {
		t.Fatal("cacheable although one group did not allow caching")
	}
	stopB()
	b.Close()
	if r := e.Notify(context.Background(), fileEvent(OpenPerm)); !r.Cache || r.Verdict != Allow {
		t.Fatalf("got %+v, want a cacheable allow", r)
	}
}

func TestHandlerAnswersInline(t *testing.T) {
	e := New(Config{})
	var seen atomic.Int32
	fast := newGroup(t, e, Options{Class: ClassPreContent, Handler: func(d Delivery) (Response, bool) {
		seen.Add(1)
		if d.Event.Name == "slow" {
			return Response{}, false // needs the queue
		}
		if d.Event.Name == "bad" {
			return Response{Verdict: Deny}, true
		}
		return Response{Cache: true}, true
	}})
	mustAdd(t, fast, Inode(dir), MarkSpec{Mask: OpenPerm | EventOnChild})

	// Answered inline: Dispatch finishes without a Walk.
	ev := fileEvent(OpenPerm)
	r, w := e.Dispatch(ev)
	if w != nil || r.Verdict != Allow || r.Reason != ReasonAnswered || !r.Cache {
		t.Fatalf("inline allow: %+v %v", r, w)
	}
	ev.Name = "bad"
	if r, w := e.Dispatch(ev); w != nil || r.Verdict != Deny {
		t.Fatalf("inline deny: %+v %v", r, w)
	}
	// Declined: the event is queued and the Walk waits for Respond.
	ev.Name = "slow"
	r, w = e.Dispatch(ev)
	if w == nil {
		t.Fatalf("declined event finished at once: %+v", r)
	}
	done := make(chan Response)
	go func() { done <- w.Wait(context.Background()) }()
	d, err := fast.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fast.Respond(d.ID, Response{Verdict: Deny})
	d.Release()
	if r := <-done; r.Verdict != Deny {
		t.Fatalf("queued answer: %+v", r)
	}
	if st := fast.Stats(); st.Handled != 2 || st.Answered != 3 || seen.Load() != 3 {
		t.Fatalf("stats %+v, handler saw %d", st, seen.Load())
	}
	ev.Release()
}

func TestAwaitFinishesOnTheAnsweringGoroutine(t *testing.T) {
	e := New(Config{})
	hi := newGroup(t, e, Options{Class: ClassPreContent})
	lo := newGroup(t, e, Options{Class: ClassContent, Deadline: 50 * time.Millisecond, DeadlineVerdict: Deny})
	mustAdd(t, hi, Inode(f), MarkSpec{Mask: OpenPerm})
	mustAdd(t, lo, Inode(f), MarkSpec{Mask: OpenPerm})
	ev := fileEvent(OpenPerm)
	r, w := e.Dispatch(ev)
	if w == nil {
		t.Fatalf("finished at once: %+v", r)
	}
	got := make(chan Response, 1)
	w.Await(context.Background(), func(r Response) { got <- r })
	d, err := hi.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hi.Respond(d.ID, Response{}) // the walk goes on to lo, here
	d.Release()
	select {
	case r := <-got:
		t.Fatalf("finished before the lower group answered: %+v", r)
	default:
	}
	// lo never answers: its deadline's timer finishes the walk.
	if r := <-got; r.Verdict != Deny || r.Reason != ReasonDeadline || r.Group != lo.ID() {
		t.Fatalf("got %+v, want lo's deadline deny", r)
	}
	ev.Release()

	// Close and cancel resume awaiting walks too.
	ctx, cancel := context.WithCancel(context.Background())
	ev2 := fileEvent(OpenPerm)
	_, w2 := e.Dispatch(ev2)
	w2.Await(ctx, func(r Response) { got <- r })
	cancel()
	if r := <-got; r.Reason != ReasonCancelled {
		t.Fatalf("after cancel: %+v", r)
	}
	ev2.Release()
	ev3 := fileEvent(OpenPerm)
	_, w3 := e.Dispatch(ev3)
	w3.Await(context.Background(), func(r Response) { got <- r })
	hi.Close() // allow: the walk goes on to lo, whose deadline denies
	if r := <-got; r.Reason != ReasonDeadline || r.Group != lo.ID() {
		t.Fatalf("after close: %+v", r)
	}
	ev3.Release()
	if st := e.Stats(); st.Groups != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// With an Executor, an awaiting walk goes on through it, never on the stack of the call that
// delivered the answer: Respond, a deadline's timer, ctx's end and Close each hand it exactly
// one continuation and return without having run a lower group's Handler or the callback.
func TestAwaitGoesOnThroughTheExecutor(t *testing.T) {
	posted := make(chan func(), 16)
	e := New(Config{Executor: func(fn func()) { posted <- fn }})
	hi := newGroup(t, e, Options{Class: ClassPreContent, Deadline: time.Hour})
	var lowSeen atomic.Int32
	lo := newGroup(t, e, Options{Class: ClassContent, Handler: func(Delivery) (Response, bool) {
		lowSeen.Add(1)
		return Response{Verdict: Deny}, true
	}})
	mustAdd(t, hi, Inode(f), MarkSpec{Mask: OpenPerm})
	mustAdd(t, lo, Inode(f), MarkSpec{Mask: OpenPerm})
	got := make(chan Response, 4)
	// run plays the loop: it runs the one continuation handed over, and checks there is no
	// second.
	run := func(what string) {
		t.Helper()
		select {
		case fn := <-posted:
			if n := lowSeen.Load(); n != 0 {
				t.Fatalf("%s: the lower group's Handler ran before the executor ran the walk", what)
			}
			select {
			case r := <-got:
				t.Fatalf("%s: the walk finished (%+v) before the executor ran it", what, r)
			default:
			}
			fn()
		case <-time.After(hangTimeout):
			t.Fatalf("%s: nothing handed to the executor", what)
		}
		if r := <-got; r.Verdict != Deny || r.Group != lo.ID() {
			t.Fatalf("%s: %+v, want the lower group's deny", what, r)
		}
		if n := lowSeen.Swap(0); n != 1 {
			t.Fatalf("%s: the lower group's Handler ran %d times", what, n)
		}
		select {
		case <-posted:
			t.Fatalf("%s: a second continuation", what)
		default:
		}
	}
	await := func(ctx context.Context) *Event {
		t.Helper()
		ev := fileEvent(OpenPerm)
		_, w := e.Dispatch(ev)
		if w == nil {
			t.Fatal("the walk finished at once")
		}
		w.Await(ctx, func(r Response) { got <- r })
		return ev
	}

	ev := await(context.Background())
	d, err := hi.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := hi.Respond(d.ID, Response{}); err != nil {
		t.Fatal(err)
	}
	d.Release()
	run("Respond")
	ev.Release()

	ctx, cancel := context.WithCancel(context.Background())
	ev = await(ctx)
	cancel()
	run("ctx's end")
	ev.Release()

	ev = await(context.Background())
	hi.Close()
	run("Close")
	ev.Release()

	short := newGroup(t, e, Options{Class: ClassPreContent, Deadline: 20 * time.Millisecond})
	mustAdd(t, short, Inode(f), MarkSpec{Mask: OpenPerm})
	ev = await(context.Background())
	run("the deadline")
	ev.Release()
}

// OnQueue runs on the queueing goroutine when the queue goes from empty to non-empty, with no
// lock held (it may read the group); it can even answer a permission event before the walk
// waits for it.
func TestOnQueue(t *testing.T) {
	e := New(Config{})
	var g *Group
	var calls int
	var got []Delivery
	g = newGroup(t, e, Options{Class: ClassContent, OnQueue: func() {
		calls++
		var buf [4]Delivery
		n, err := g.TryReadBatch(buf[:])
		if err != nil {
			t.Errorf("TryReadBatch in OnQueue: %v", err)
		}
		for _, d := range buf[:n] {
			if d.ID != 0 {
				g.Respond(d.ID, Response{Verdict: Deny})
			}
			d.Release()
			got = append(got, d)
		}
	}})
	mustAdd(t, g, Inode(dir), MarkSpec{Mask: Open | Modify | OpenPerm | EventOnChild})
	e.Notify(context.Background(), fileEvent(Open))
	e.Notify(context.Background(), fileEvent(Modify))
	if calls != 2 || len(got) != 2 {
		t.Fatalf("OnQueue called %d times, read %d events; want 2 and 2 (each one emptied the queue)", calls, len(got))
	}
	// Answered from inside OnQueue, before the walk waits: Notify returns the answer.
	if r := e.Notify(context.Background(), fileEvent(OpenPerm)); r.Verdict != Deny {
		t.Fatalf("permission event answered in OnQueue: %+v", r)
	}
	// Events queued while the queue is non-empty do not call it again.
	g.opts.OnQueue = func() { calls++ }
	e.Notify(context.Background(), fileEvent(Open))
	other := fileEvent(Modify)
	other.Pid = 101 // no merge
	e.Notify(context.Background(), other)
	if calls != 4 {
		t.Fatalf("OnQueue called %d times in all, want 4 (2, the permission event's, 1)", calls)
	}
	if n, err := g.TryReadBatch(nil); err != ErrInvalid || n != 0 {
		t.Errorf("TryReadBatch(nil): %d, %v", n, err)
	}
	if ds := drain(g); len(ds) != 2 {
		t.Errorf("%d events queued (%v), want 2", len(ds), masks(ds))
	}
	var buf [1]Delivery
	if n, err := g.TryReadBatch(buf[:]); n != 0 || err != nil {
		t.Errorf("TryReadBatch of an empty queue: %d, %v", n, err)
	}
	g.Close()
	if _, err := g.TryReadBatch(buf[:]); err != ErrClosed {
		t.Errorf("TryReadBatch after Close: %v", err)
	}
}

// An event whose ancestry the source could not learn reaches every subtree and
// children-watching directory mark it may be below, and no other.
func TestAncestryUnknownIsPossiblyInside(t *testing.T) {
	lost := func(m Mask, maybe ...ID) *Event {
		return &Event{Mask: m, Inode: g21, Mount: mnt1, Filesystem: fs1, Pid: 100,
			AncestryUnknown: true, PossibleAncestors: maybe}
	}
	other := ID{Hi: 9, Lo: 30}
	tests := []struct {
		name string
		obj  Object
		mark Mask
		ev   *Event
		want Mask
	}{
		{"subtree root listed", Subtree(root), Open, lost(Open, root, dir), Open},
		{"subtree root listed second", Subtree(dir), Open, lost(Open, root, dir), Open},
		{"subtree root not listed", Subtree(other), Open, lost(Open, root, dir), 0},
		{"dir watching children, listed", Inode(dir), Open | EventOnChild, lost(Open, dir), Open},
		{"dir not watching children, listed", Inode(dir), Open, lost(Open, dir), 0},
		{"no candidates: filesystem mark still", Filesystem(fs1), Open, lost(Open), Open},
		{"no candidates: subtree mark", Subtree(root), Open, lost(Open), 0},
		{"list ignored without the marker", Subtree(root), Open,
			&Event{Mask: Open, Inode: g21, Filesystem: fs1, PossibleAncestors: []ID{root}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkOneDelivery(t, tt.obj, tt.mark, tt.ev, tt.want) })
	}
	// A permission event of unknown place is decided by a guard of any listed subtree, once
	// per group even with marks on several candidates.
	e := New(Config{})
	guard := newGroup(t, e, Options{Class: ClassContent})
	mustAdd(t, guard, Subtree(root), MarkSpec{Mask: OpenPerm})
	mustAdd(t, guard, Subtree(dir), MarkSpec{Mask: OpenPerm})
	stop := answerer(t, guard, Response{Verdict: Deny})
	defer stop()
	if r := e.Notify(context.Background(), lost(OpenPerm, root, dir)); r.Verdict != Deny || r.Group != guard.ID() {
		t.Fatalf("permission event of unknown place: %+v, want the subtree guard's deny", r)
	}
	if st := guard.Stats(); st.Answered != 1 {
		t.Fatalf("guard answered %d times, want once", st.Answered)
	}
}

// blockingHook is a hookRecorder whose refusals wait: each call that it will refuse signals
// entered, then waits for release. It lets a test run another operation while a refused
// mark change waits for the hook's answer.
type blockingHook struct {
	hookRecorder
	entered, release chan struct{}
}

func (h *blockingHook) hook(obj Object, old, new Mask) error {
	if new&h.refuse != 0 && new&^old != 0 {
		h.entered <- struct{}{}
		<-h.release
	}
	return h.hookRecorder.hook(obj, old, new)
}

// TestRefusedMarkChangeUndoesOnlyItself: a mark change that the MaskHook refuses undoes its
// own change and nothing else. The undo used to restore the whole spec read before the change,
// erasing a RemoveFromMark that ran while the hook decided (RemoveFromMark did not take the
// hook lock): bits removed by a call that had returned came back, and a removal that emptied
// the mark left a permission bit that made an open wait for a listener that no longer wanted
// it. Each case blocks the hook, runs another operation on the same mark, then lets the hook
// refuse.
func TestRefusedMarkChangeUndoesOnlyItself(t *testing.T) {
	obj := Inode(f)
	cases := []struct {
		name      string
		before    *MarkSpec                       // the mark before the refused change; nil: none
		refused   func(g *Group) error            // the change the hook refuses (AccessPerm is refused)
		during    func(e *Engine, g *Group) error // runs while the hook decides
		duringErr error
		after     *MarkSpec // the mark once both returned; nil: none
		// silent, if set, is an event that must reach nobody afterwards.
		silent Mask
	}{
		{
			name:    "removal empties the mark",
			before:  &MarkSpec{Mask: Open | OpenPerm},
			refused: func(g *Group) error { return g.AddMark(obj, MarkSpec{Mask: AccessPerm}) },
			during:  func(_ *Engine, g *Group) error { return g.RemoveFromMark(obj, Open|OpenPerm, 0) },
			silent:  OpenPerm | Open,
		},
		{
			name:    "removal of one bit during a modify",
			before:  &MarkSpec{Mask: Open | Modify},
			refused: func(g *Group) error { return g.ModifyMark(obj, MarkSpec{Mask: Open | Modify | AccessPerm}) },
			during:  func(_ *Engine, g *Group) error { return g.RemoveFromMark(obj, Modify, 0) },
			after:   &MarkSpec{Mask: Open},
			silent:  Modify,
		},
		{
			name:    "removal of an ignore bit",
			before:  &MarkSpec{Mask: Open, Ignore: Access | Attrib, Flags: IgnoreSurviveModify},
			refused: func(g *Group) error { return g.AddMark(obj, MarkSpec{Mask: AccessPerm}) },
			during:  func(_ *Engine, g *Group) error { return g.RemoveFromMark(obj, 0, Access) },
			after:   &MarkSpec{Mask: Open, Ignore: Attrib, Flags: IgnoreSurviveModify},
		},
		{
			name:    "RemoveMark",
			before:  &MarkSpec{Mask: Open},
			refused: func(g *Group) error { return g.AddMark(obj, MarkSpec{Mask: AccessPerm}) },
			during:  func(_ *Engine, g *Group) error { return g.RemoveMark(obj) },
			silent:  Open,
		},
		{
			// The refused change's new mark never existed: there was nothing to remove.
			name:      "removal from a refused new mark",
			refused:   func(g *Group) error { return g.AddMark(obj, MarkSpec{Mask: Open | AccessPerm}) },
			during:    func(_ *Engine, g *Group) error { return g.RemoveFromMark(obj, AccessPerm, 0) },
			duringErr: ErrNoMark,
			silent:    Open,
		},
		{
			// A modification clears a non-surviving ignore mask, the refused one's or the old
			// one's alike: it stays cleared.
			name:    "ignore mask cleared by a modification",
			before:  &MarkSpec{Mask: Open, Ignore: Access},
			refused: func(g *Group) error { return g.ModifyMark(obj, MarkSpec{Mask: Open | AccessPerm, Ignore: Access}) },
			during: func(e *Engine, _ *Group) error {
				e.Notify(context.Background(), fileEvent(Modify))
				return nil
			},
			after: &MarkSpec{Mask: Open},
		},
		{
			// The old ignore mask survived modifications: the undo brings it back.
			name:    "surviving ignore mask during a modification",
			before:  &MarkSpec{Mask: Open, Ignore: Access, Flags: IgnoreSurviveModify},
			refused: func(g *Group) error { return g.ModifyMark(obj, MarkSpec{Mask: Open | AccessPerm, Ignore: Access}) },
			during: func(e *Engine, _ *Group) error {
				e.Notify(context.Background(), fileEvent(Modify))
				return nil
			},
			after: &MarkSpec{Mask: Open, Ignore: Access, Flags: IgnoreSurviveModify},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &blockingHook{hookRecorder: hookRecorder{masks: map[Object]Mask{}, refuse: AccessPerm},
				entered: make(chan struct{}), release: make(chan struct{})}
			e := New(Config{MaskHook: h.hook})
			g := newGroup(t, e, Options{Class: ClassContent, QueueLimit: -1})
			if tc.before != nil {
				mustAdd(t, g, obj, *tc.before)
			}
			refused := make(chan error, 1)
			go func() { refused <- tc.refused(g) }()
			<-h.entered
			inHook, _ := g.Mark(obj)
			during := make(chan error, 1)
			go func() { during <- tc.during(e, g) }()
			// Let the operation go as far as it can while the hook decides: until it returns
			// or changes the mark (the old engine did at once), or for 100 ms (an operation that
			// waits for the hook lock does neither).
			for start := time.Now(); time.Since(start) < 100*time.Millisecond; time.Sleep(time.Millisecond) {
				if s, ok := g.Mark(obj); len(during) > 0 || !ok || s != inHook {
					break
				}
			}
			close(h.release)
			if err := <-refused; !errors.Is(err, syscall.EXDEV) {
				t.Fatalf("refused change: %v, want EXDEV", err)
			}
			var err error
			prompt(t, "the operation run during the hook", func() { err = <-during })
			if err != tc.duringErr {
				t.Fatalf("the operation during the hook: %v, want %v", err, tc.duringErr)
			}
			s, ok := g.Mark(obj)
			switch {
			case tc.after == nil && ok:
				t.Fatalf("mark %+v is back, want none", s)
			case tc.after != nil && (!ok || s != *tc.after):
				t.Fatalf("mark %+v (present %v), want %+v", s, ok, *tc.after)
			}
			h.mu.Lock()
			union := h.masks[obj]
			h.mu.Unlock()
			var marks Mask
			if c := e.lookup(obj); c != nil {
				marks = c.interest()
			}
			if union != marks {
				t.Fatalf("the hook's union for %v is %v, the marks' is %v", obj, union, marks)
			}
			if tc.silent != 0 {
				// A permission bit left over would make this wait for a reader: bound it.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				ev := fileEvent(tc.silent)
				if r := e.Notify(ctx, ev); r.Reason != ReasonNone {
					t.Errorf("%v after the removal: %+v, want no group", tc.silent, r)
				}
				ev.Release()
				if got := drain(g); len(got) != 0 {
					t.Errorf("%v after the removal delivered %v", tc.silent, masks(got))
				}
			}
		})
	}
}

// TestPermissionHook: the hook is called for every mark operation that may give a group
// permission events it did not get — also when the object's union stays the same (a second
// group with the same mask) — and for no other; VolatilePermissionIgnores counts the marks
// whose permission ignore mask a modification would clear.
func TestPermissionHook(t *testing.T) {
	var calls []Object
	var mu sync.Mutex
	e := New(Config{PermissionHook: func(obj Object) {
		mu.Lock()
		calls = append(calls, obj)
		mu.Unlock()
	}})
	a := newGroup(t, e, Options{Class: ClassContent})
	b := newGroup(t, e, Options{Class: ClassContent})
	obj := Subtree(dir)
	perm := MarkSpec{Mask: OpenPerm}
	steps := []struct {
		name     string
		op       func() error
		called   bool
		volatile bool
	}{
		{"a new permission mark", func() error { return a.AddMark(obj, perm) }, true, false},
		{"the same mask again", func() error { return a.AddMark(obj, perm) }, false, false},
		{"another group, same union", func() error { return b.AddMark(obj, perm) }, true, false},
		{"a notification bit on a permission mark", func() error { return b.AddMark(obj, MarkSpec{Mask: Open}) }, true, false},
		{"a notification mark", func() error { return a.AddMark(Inode(f), MarkSpec{Mask: Open}) }, false, false},
		{"ModifyMark to permission", func() error { return a.ModifyMark(Inode(f), perm) }, true, false},
		{"a volatile permission ignore", func() error {
			return b.AddMark(Inode(g21), MarkSpec{Mask: Open, Ignore: OpenPerm})
		}, false, true},
		{"a surviving permission ignore", func() error {
			return b.ModifyMark(Inode(g21), MarkSpec{Mask: OpenPerm, Ignore: OpenPerm, Flags: IgnoreSurviveModify})
		}, true, false},
		{"permission ignore taken off", func() error { return b.RemoveFromMark(Inode(g21), 0, OpenPerm) }, true, false},
		{"volatile again", func() error {
			return b.ModifyMark(Inode(g21), MarkSpec{Mask: OpenPerm, Ignore: OpenPerm})
		}, true, true},
		{"the volatile mark removed", func() error { return b.RemoveMark(Inode(g21)) }, false, false},
		{"a mark removed", func() error { return a.RemoveMark(obj) }, false, false},
	}
	for _, s := range steps {
		mu.Lock()
		before := len(calls)
		mu.Unlock()
		if err := s.op(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		mu.Lock()
		got := len(calls) > before
		mu.Unlock()
		if got != s.called {
			t.Errorf("%s: PermissionHook called %v, want %v", s.name, got, s.called)
		}
		if v := e.VolatilePermissionIgnores(); v != s.volatile {
			t.Errorf("%s: VolatilePermissionIgnores %v, want %v", s.name, v, s.volatile)
		}
	}
	// Closing a group detaches its marks: nothing volatile stays counted.
	mustAdd(t, b, Inode(f), MarkSpec{Mask: Open, Ignore: AccessPerm})
	if !e.VolatilePermissionIgnores() {
		t.Fatal("volatile ignore not counted")
	}
	b.Close()
	if e.VolatilePermissionIgnores() {
		t.Fatal("a closed group's volatile ignore stays counted")
	}
}

// TestWalkCredit: a walk takes its groups' references on the event in one add (walk.credit)
// and gives back what it did not use: after Notify, the event holds exactly one reference per
// group that queued it — none for a merge, a full queue, a group without the event in its
// mask, or a permission group that answered at once — and the payload is released once, when
// the source and the last of those groups are done, not before.
func TestWalkCredit(t *testing.T) {
	type kind int
	const (
		queues  kind = iota // takes the event
		merges              // holds an exact repeat, unread (MergeLast)
		full                // a queue of one, already holding another event
		other               // marks the file for another event only
		answers             // a content group whose Handler answers at once
	)
	for _, tc := range []struct {
		name   string
		groups []kind
	}{
		{"one group", []kind{queues}},
		{"ten groups", []kind{queues, queues, queues, queues, queues, queues, queues, queues, queues, queues}},
		{"a merge among them", []kind{queues, merges, queues}},
		{"only merges", []kind{merges, merges}},
		{"a full queue", []kind{full, queues}},
		{"a mask that does not match", []kind{other, queues, other}},
		{"a permission answered at once", []kind{answers, queues, queues}},
		{"nothing queued", []kind{other, full, merges}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(Config{})
			var gs []*Group
			want := 0
			for i, k := range tc.groups {
				opts := Options{MergeLast: true}
				mask := Open
				switch k {
				case full:
					opts.QueueLimit = 1
				case other:
					mask = Modify
				case answers:
					opts.Class = ClassContent
					opts.Handler = func(Delivery) (Response, bool) { return Response{Verdict: Allow}, true }
					mask = Open | OpenPerm
				case queues:
					want++
				}
				opts.Name = string(rune('a' + i))
				g := newGroup(t, e, opts)
				mustAdd(t, g, Inode(f), MarkSpec{Mask: mask})
				gs = append(gs, g)
			}
			// The groups that merge hold an exact repeat already, the full ones another
			// process's open (no merge).
			pre, another := fileEvent(Open), fileEvent(Open)
			another.Pid = 7
			for i, k := range tc.groups {
				if k == merges || k == full {
					p := pre
					if k == full {
						p = another
					}
					p.Hold()
					gs[i].queueNotification(p, Open, mergeKey(p))
				}
			}
			var released atomic.Int32
			ev := fileEvent(Open | OpenPerm)
			ev.Payload = countingPayload{&released}
			if k := tc.groups[0]; k != answers {
				ev.Mask = Open
			}
			e.Notify(context.Background(), ev)
			for i, k := range tc.groups {
				st := gs[i].Stats()
				if (k == merges) != (st.Merged == 1) || (k == full) != (st.Dropped == 1) {
					t.Fatalf("group %d: %d merged, %d dropped: not the case the test sets up", i, st.Merged, st.Dropped)
				}
			}
			if n := int(ev.refs.Load()); n != want {
				t.Fatalf("after Notify the event holds %d references besides the source's, want %d (one per group that queued it)", n, want)
			}
			ev.Release() // the source is done
			for i, g := range gs {
				for {
					d, err := g.TryRead()
					if err != nil {
						break
					}
					if d.Event == ev && released.Load() != 0 {
						t.Fatalf("payload released while group %d still held a delivery", i)
					}
					d.Release()
				}
			}
			if n := released.Load(); n != 1 {
				t.Fatalf("payload released %d times, want 1", n)
			}
		})
	}
}

// TestReleaseN: ReleaseN(n) is n Releases in one: the payload goes once, with the last
// reference (the source's included), 0 drops none, and more than are held panics as Release
// does.
func TestReleaseN(t *testing.T) {
	for _, tc := range []struct {
		name   string
		held   int32   // Holds beyond the source's reference
		steps  []int32 // ReleaseN calls, the source's Release (-1) among them
		want   []int32 // payload releases after each step
		panics bool    // the last step panics
	}{
		{"all at once", 5, []int32{-1, 5}, []int32{0, 1}, false},
		{"the source last", 5, []int32{5, -1}, []int32{0, 1}, false},
		{"in parts", 5, []int32{2, 0, -1, 3}, []int32{0, 0, 0, 1}, false},
		{"one", 1, []int32{1, -1}, []int32{0, 1}, false},
		{"too many", 2, []int32{-1, 3}, []int32{0, 0}, true},
		{"negative", 2, []int32{-2}, []int32{0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var released atomic.Int32
			ev := fileEvent(Open)
			ev.Payload = countingPayload{&released}
			for range tc.held {
				ev.Hold()
			}
			for i, n := range tc.steps {
				last := i == len(tc.steps)-1
				func() {
					defer func() {
						if r := recover(); (r != nil) != (last && tc.panics) {
							t.Fatalf("step %d (%d): panic %v", i, n, r)
						}
					}()
					switch n {
					case -1:
						ev.Release()
					case -2:
						ev.ReleaseN(-1)
					default:
						ev.ReleaseN(n)
					}
				}()
				if got := released.Load(); got != tc.want[i] {
					t.Fatalf("after step %d (%d): payload released %d times, want %d", i, n, got, tc.want[i])
				}
			}
		})
	}
}

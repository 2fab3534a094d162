package engine

import (
	"context"
	"testing"
)

// TestIgnoreMasksKernelRules restates send_to_group and fsnotify_effective_ignore_mask
// (FAN_MARK_IGNORE semantics, Linux 6.0+) for the cases TestIgnoreMasks and
// TestModifyClearsIgnoreMask leave out: every mark of the group involved contributes its
// ignore mask (a mount or filesystem ignore silences the same group's inode and parent marks,
// never another group's); a modification clears the non-surviving ignore mask of every mark of
// the group it is reported through (the mount's, the parent's that watches children), but
// not of a parent mark that does not watch children (fsnotify_iter_select_report_types skips
// it); children's events meet a directory's ignore mask only with EventOnChild in it.
// Each step is one Notify; want is what each group got from it (0: nothing).
func TestIgnoreMasksKernelRules(t *testing.T) {
	type step struct {
		ev           *Event
		wantG, wantO Mask
	}
	openDir := &Event{Mask: Open | OnDir, Inode: dir, Parent: root, Mount: mnt1, Filesystem: fs1,
		Ancestors: []ID{root}, Name: "dir", Pid: 100}
	tests := []struct {
		name  string
		marks []MarkInfo // Group 1 is g, 2 is other
		steps []step
	}{
		{
			name: "mount ignore silences the same group's inode mark only",
			marks: []MarkInfo{
				{Group: 1, Object: Inode(f), MarkSpec: MarkSpec{Mask: Open}},
				{Group: 1, Object: Mount(mnt1), MarkSpec: MarkSpec{Ignore: Open, Flags: IgnoreSurviveModify}},
				{Group: 2, Object: Inode(f), MarkSpec: MarkSpec{Mask: Open}},
			},
			steps: []step{{fileEvent(Open), 0, Open}},
		},
		{
			name: "filesystem ignore silences the same group's parent mark watching children",
			marks: []MarkInfo{
				{Group: 1, Object: Inode(dir), MarkSpec: MarkSpec{Mask: Open | EventOnChild}},
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Ignore: Open, Flags: IgnoreSurviveModify}},
			},
			steps: []step{{fileEvent(Open), 0, 0}},
		},
		{
			name: "filesystem ignore without OnDir leaves a directory's own events",
			marks: []MarkInfo{
				{Group: 1, Object: Inode(dir), MarkSpec: MarkSpec{Mask: Open | OnDir}},
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Ignore: Open, Flags: IgnoreSurviveModify}},
			},
			steps: []step{{openDir, Open | OnDir, 0}},
		},
		{
			name: "a modification anywhere on the mount clears the mount's ignore mask",
			marks: []MarkInfo{
				{Group: 1, Object: Inode(f), MarkSpec: MarkSpec{Mask: Open}},
				{Group: 1, Object: Mount(mnt1), MarkSpec: MarkSpec{Ignore: Open}},
			},
			steps: []step{
				{fileEvent(Open), 0, 0},
				{deepEvent(Modify), 0, 0}, // another file: the mount's mark is involved
				{fileEvent(Open), Open, 0},
			},
		},
		{
			name: "a surviving mount ignore mask outlives a modification",
			marks: []MarkInfo{
				{Group: 1, Object: Inode(f), MarkSpec: MarkSpec{Mask: Open | Modify}},
				{Group: 1, Object: Mount(mnt1), MarkSpec: MarkSpec{Ignore: Open, Flags: IgnoreSurviveModify}},
			},
			steps: []step{
				{fileEvent(Modify), Modify, 0},
				{fileEvent(Open), 0, 0},
			},
		},
		{
			name: "a child's modification clears the ignore mask of a parent watching children",
			marks: []MarkInfo{
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open}},
				{Group: 1, Object: Inode(dir), MarkSpec: MarkSpec{Ignore: Open | EventOnChild}},
			},
			steps: []step{
				{fileEvent(Open), 0, 0},
				{fileEvent(Modify), 0, 0},
				{fileEvent(Open), Open, 0},
			},
		},
		{
			name: "a child's modification keeps the ignore mask of a parent not watching children",
			marks: []MarkInfo{
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open | OnDir}},
				{Group: 1, Object: Inode(dir), MarkSpec: MarkSpec{Ignore: Open | OnDir}},
			},
			steps: []step{
				{openDir, 0, 0},
				{fileEvent(Modify), 0, 0},
				{openDir, 0, 0},
			},
		},
		{
			name: "a modification of another file leaves an inode mark's ignore mask",
			marks: []MarkInfo{
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open}},
				{Group: 1, Object: Inode(f), MarkSpec: MarkSpec{Ignore: Open}},
				{Group: 2, Object: Inode(g21), MarkSpec: MarkSpec{Mask: Modify}},
			},
			steps: []step{
				{deepEvent(Modify), 0, Modify}, // group 1's inode mark is not involved
				{fileEvent(Open), 0, 0},
			},
		},
		{
			name: "a child's event meets a surviving parent ignore only with EventOnChild",
			marks: []MarkInfo{
				{Group: 1, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open}},
				{Group: 1, Object: Inode(dir), MarkSpec: MarkSpec{Ignore: Open | OnDir, Flags: IgnoreSurviveModify}},
				{Group: 2, Object: Filesystem(fs1), MarkSpec: MarkSpec{Mask: Open}},
			},
			steps: []step{{fileEvent(Open), Open, Open}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(Config{})
			gs := []*Group{newGroup(t, e, Options{}), newGroup(t, e, Options{})}
			for _, m := range tt.marks {
				mustAdd(t, gs[m.Group-1], m.Object, m.MarkSpec)
			}
			for i, s := range tt.steps {
				e.Notify(context.Background(), s.ev)
				for gi, want := range []Mask{s.wantG, s.wantO} {
					got := drain(gs[gi])
					var gotMask Mask
					if len(got) > 1 {
						t.Fatalf("step %d: group %d got %v", i, gi+1, masks(got))
					}
					if len(got) == 1 {
						gotMask = got[0].Mask
					}
					if gotMask != want {
						t.Errorf("step %d (%v on %v): group %d got %v, want %v", i, s.ev.Mask, s.ev.Inode, gi+1, gotMask, want)
					}
				}
			}
		})
	}
}

// TestPermissionEventsNeverMerge: fanotify_merge never merges a permission event, nor
// anything into one (the kernel's event types differ). Under both merge rules, identical
// permission events from one process on one file each keep a queue entry and an id of their
// own, and a notification of the same process and file is never ORed into them: it merges
// only into an earlier unread notification (fanotify's rule), or not at all when a
// permission event is the newest entry (MergeLast).
func TestPermissionEventsNeverMerge(t *testing.T) {
	for _, mergeLast := range []bool{false, true} {
		t.Run(map[bool]string{false: "fanotify", true: "MergeLast"}[mergeLast], func(t *testing.T) {
			e := New(Config{})
			g := newGroup(t, e, Options{Class: ClassContent, MergeLast: mergeLast})
			mustAdd(t, g, Inode(f), MarkSpec{Mask: Open | OpenPerm})
			var walks []*Walk
			for _, m := range []Mask{OpenPerm, Open, OpenPerm, Open, OpenPerm} {
				ev := fileEvent(m)
				if _, w := e.Dispatch(ev); w != nil {
					walks = append(walks, w)
				}
				ev.Release()
			}
			want := []Mask{OpenPerm, Open, OpenPerm, OpenPerm}
			if mergeLast {
				want = []Mask{OpenPerm, Open, OpenPerm, Open, OpenPerm}
			}
			got := drain(g)
			ids := map[uint64]bool{}
			for _, d := range got {
				if d.ID != 0 {
					ids[d.ID] = true
					if err := g.Respond(d.ID, Response{Verdict: Allow}); err != nil {
						t.Error(err)
					}
				}
			}
			for _, w := range walks {
				if r := w.Wait(context.Background()); r.Verdict != Allow || r.Reason != ReasonAnswered {
					t.Errorf("walk ended %+v", r)
				}
			}
			if len(walks) != 3 || len(ids) != 3 {
				t.Errorf("%d walks held, %d distinct ids: want 3 of each", len(walks), len(ids))
			}
			gm := masks(got)
			if len(gm) != len(want) {
				t.Fatalf("queue %v, want %v", gm, want)
			}
			for i := range want {
				if gm[i] != want[i] {
					t.Fatalf("queue %v, want %v", gm, want)
				}
			}
			if st := g.Stats(); st.Pending != 0 {
				t.Errorf("%d still pending", st.Pending)
			}
		})
	}
}

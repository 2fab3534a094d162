package engine

import (
	"context"
	"slices"
	"testing"
)

// MergeLast: only an exact repeat of the newest unread event merges (inotify's rule);
// fanotify's rule (the default) merges into any unread event on the object.
func TestMergeLast(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		last bool
		want []Mask
	}{
		{false, []Mask{Open | Modify | Access}},
		{true, []Mask{Open, Modify, Access, Modify}},
	} {
		e := New(Config{})
		g := newGroup(t, e, Options{MergeLast: c.last})
		mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open | Modify | Access})
		e.Notify(ctx, fileEvent(Open))
		e.Notify(ctx, fileEvent(Modify))
		e.Notify(ctx, fileEvent(Modify)) // an exact repeat of the newest: merges under both rules
		e.Notify(ctx, fileEvent(Access))
		e.Notify(ctx, fileEvent(Modify)) // not the newest's mask: merges only under fanotify's
		if got := masks(drain(g)); !slices.Equal(got, c.want) {
			t.Errorf("MergeLast=%v: got %v, want %v", c.last, got, c.want)
		}
		wantMerged := uint64(1)
		if !c.last {
			wantMerged = 4
		}
		if st := g.Stats(); st.Merged != wantMerged {
			t.Errorf("MergeLast=%v: merged %d, want %d", c.last, st.Merged, wantMerged)
		}
	}
}

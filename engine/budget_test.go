package engine

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestQueueBudgetSharedByGroups: three groups sharing a budget of 6 entries, each with a
// QueueLimit of 100, hold 6 events between them (and one overflow each, in place behind
// what they kept), not 3 x 100; what a group reads, closes or has withdrawn gives the room
// back; and with the budget gone (every group closed) it holds nothing. Fails without the
// budget's check (each group keeps all 10 events) or with an entry not given back.
func TestQueueBudgetSharedByGroups(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	b := NewQueueBudget(6)
	var gs []*Group
	for range 3 {
		g := newGroup(t, e, Options{QueueLimit: 100, QueueBudget: b, MergeLast: true})
		mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open})
		gs = append(gs, g)
	}
	notify := func(pids ...int32) {
		for _, p := range pids {
			ev := fileEvent(Open)
			ev.Pid = p
			e.Notify(ctx, ev)
			ev.Release()
		}
	}
	read := func(g *Group) (got []int32) { // drain releases each; the events are the test's
		for _, d := range drain(g) {
			if d.Event == nil {
				got = append(got, -1)
			} else {
				got = append(got, d.Event.Pid)
			}
		}
		return got
	}
	queued := func() (n int) {
		for _, g := range gs {
			n += g.Stats().Queued
		}
		return n
	}
	notify(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	// Events 1 and 2 reach all three groups (6 entries); 3 finds no room in any: each group
	// queues its overflow (9 entries), and 4-10 are lost behind them.
	if n, u := queued(), b.Used(); n != 9 || u != 9 {
		t.Fatalf("queued %d, budget used %d; want 9 and 9 (6 events and an overflow per group)", n, u)
	}
	for i, g := range gs {
		if st := g.Stats(); st.Dropped != 8 || st.Overflows != 1 {
			t.Errorf("group %d: dropped %d, overflows %d; want 8 and 1", i, st.Dropped, st.Overflows)
		}
	}
	if got := read(gs[0]); !slices.Equal(got, []int32{1, 2, -1}) {
		t.Fatalf("group 0 read %v, want [1 2 overflow]", got)
	}
	if u := b.Used(); u != 6 {
		t.Fatalf("after group 0 read its 3 entries, budget used %d, want 6", u)
	}
	// The others still hold the budget: group 0's next event is a gap of its own, in place.
	notify(11)
	if got := read(gs[0]); !slices.Equal(got, []int32{-1}) {
		t.Fatalf("group 0 read %v, want [overflow] (the budget held by the others)", got)
	}
	gs[1].Close()
	if u := b.Used(); u != 3 {
		t.Fatalf("after group 1 closed, budget used %d, want 3 (group 2's)", u)
	}
	notify(12)
	if got, want := read(gs[0]), []int32{12}; !slices.Equal(got, want) {
		t.Fatalf("group 0 read %v, want %v once group 1's room was given back", got, want)
	}
	if got, want := read(gs[2]), []int32{1, 2, -1, 12}; !slices.Equal(got, want) {
		t.Fatalf("group 2 read %v, want %v", got, want)
	}
	if u := b.Used(); u != 0 {
		t.Fatalf("everything read: budget used %d, want 0", u)
	}
}

// TestQueueBudgetWithin: budgets within one parent (the daemon's per-uid budgets within the
// unprivileged users' total) each keep their own limit first, and together hold no more than
// the parent's; what a group reads gives room back to both.
func TestQueueBudgetWithin(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	total := NewQueueBudget(5)
	var gs []*Group
	var bs []*QueueBudget
	for range 3 {
		b := NewQueueBudgetWithin(total, 3)
		g := newGroup(t, e, Options{QueueLimit: 100, QueueBudget: b})
		mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open})
		gs, bs = append(gs, g), append(bs, b)
	}
	for p := range int32(10) {
		ev := fileEvent(Open)
		ev.Pid = p
		e.Notify(ctx, ev)
		ev.Release()
	}
	// Events 0 and 1 reach all three (6 entries would pass each budget of 3, but the total
	// of 5 stops the third group's second): 0 for all, 1 for two, then the total is spent
	// and each group queues an overflow in place.
	if u := total.Used(); u > total.Limit()+len(gs) {
		t.Fatalf("the groups hold %d entries, over the total budget %d and an overflow each", u, total.Limit())
	}
	for i, b := range bs {
		if u := b.Used(); u > b.Limit()+1 {
			t.Errorf("group %d holds %d entries, over its budget %d and an overflow", i, u, b.Limit())
		}
		if st := gs[i].Stats(); st.Overflows != 1 {
			t.Errorf("group %d: %d overflows, want 1", i, st.Overflows)
		}
	}
	sum := 0
	for _, b := range bs {
		sum += b.Used()
	}
	if sum != total.Used() {
		t.Errorf("the budgets within hold %d, the total counts %d", sum, total.Used())
	}
	for _, g := range gs {
		drain(g)
	}
	if u := total.Used(); u != 0 {
		t.Errorf("everything read: the total budget counts %d, want 0", u)
	}
}

// TestQueueBudgetHeldRead: entries read with TryReadBatchHeld stay counted (in the budget
// and the one it is within) until Released, so they make no room for more meanwhile: a group
// whose held entries fill the budget overflows the next event; after Release it takes it.
func TestQueueBudgetHeldRead(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	total := NewQueueBudget(100)
	b := NewQueueBudgetWithin(total, 2)
	g := newGroup(t, e, Options{QueueLimit: 100, QueueBudget: b})
	mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open})
	notify := func(pid int32) {
		ev := fileEvent(Open)
		ev.Pid = pid
		e.Notify(ctx, ev)
		ev.Release()
	}
	notify(1)
	notify(2)
	buf := make([]Delivery, 8)
	n, err := g.TryReadBatchHeld(buf)
	if err != nil || n != 2 {
		t.Fatalf("TryReadBatchHeld: %d, %v; want the 2 events", n, err)
	}
	for i := range n {
		buf[i].Event.Release()
	}
	if b.Used() != 2 || total.Used() != 2 {
		t.Fatalf("after a held read, the budgets count %d and %d, want 2 and 2", b.Used(), total.Used())
	}
	notify(3)
	if st := g.Stats(); st.Dropped != 1 || st.Overflows != 1 {
		t.Errorf("an event while the held read fills the budget: dropped %d, overflows %d; want 1 and 1", st.Dropped, st.Overflows)
	}
	drain(g) // the overflow
	b.Release(n)
	if b.Used() != 0 || total.Used() != 0 {
		t.Fatalf("after Release, the budgets count %d and %d, want 0", b.Used(), total.Used())
	}
	notify(4)
	if ds := drain(g); len(ds) != 1 || ds[0].Event == nil {
		t.Errorf("after Release, read %d deliveries, want the event", len(ds))
	}
}

// TestQueueBudgetPermissionEvents: a permission event that finds the budget spent gets the
// group's QueueFullVerdict at once, as on a full queue, and one withdrawn at its deadline
// gives its entry back.
func TestQueueBudgetPermissionEvents(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	b := NewQueueBudget(1)
	g := newGroup(t, e, Options{Class: ClassContent, QueueBudget: b, QueueFullVerdict: Deny,
		Deadline: 50 * time.Millisecond, DeadlineVerdict: Allow})
	mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: OpenPerm})
	var wg sync.WaitGroup
	var first Response
	wg.Add(1)
	go func() { // queued, never read: answered at its deadline
		defer wg.Done()
		ev := fileEvent(OpenPerm)
		first = e.Notify(ctx, ev)
		ev.Release()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for b.Used() != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ev := fileEvent(OpenPerm)
	r := e.Notify(ctx, ev)
	ev.Release()
	if r.Verdict != Deny || r.Reason != ReasonQueueFull {
		t.Errorf("second permission event with the budget spent: %+v, want the QueueFullVerdict (deny, queue full)", r)
	}
	wg.Wait()
	if first.Verdict != Allow || first.Reason != ReasonDeadline {
		t.Errorf("first permission event: %+v, want the deadline verdict", first)
	}
	// What stays is the overflow the refused event left in place (as a full queue's).
	if u := b.Used(); u != 1 {
		t.Errorf("after the deadline withdrew the queued event, budget used %d, want 1 (the overflow)", u)
	}
	if ds := drain(g); len(ds) != 1 || ds[0].Mask != QueueOverflow {
		t.Errorf("read %d deliveries, want the one overflow", len(ds))
	}
	if u := b.Used(); u != 0 {
		t.Errorf("after the overflow was read, budget used %d, want 0", u)
	}
}

// TestQueueBudgetAccountsUnderConcurrency: groups queueing, reading and closing at once
// (-race) keep the budget's count equal to what they hold, within its stated overshoot
// (one entry per concurrent queuer and one overflow per group), and give everything back.
func TestQueueBudgetAccountsUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	const limit, groups, notifiers = 50, 8, 4
	b := NewQueueBudget(limit)
	var gs []*Group
	for range groups {
		g, err := e.NewGroup(Options{QueueLimit: 1000, QueueBudget: b})
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open | Modify})
		gs = append(gs, g)
	}
	stop := make(chan struct{})
	var wg, readers sync.WaitGroup
	var maxUsed int
	var mu sync.Mutex
	for i := range notifiers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 1000; n++ {
				ev := fileEvent(Open)
				ev.Pid = int32(i*100000 + n)
				e.Notify(ctx, ev)
				ev.Release()
				if u := b.Used(); u > limit {
					mu.Lock()
					maxUsed = max(maxUsed, u)
					mu.Unlock()
				}
			}
		}()
	}
	for i, g := range gs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					if i%2 == 0 {
						g.Close() // half close with events queued
					}
					return
				default:
				}
				if i%3 == 0 {
					time.Sleep(time.Millisecond) // slow readers keep the budget spent
				} else {
					time.Sleep(20 * time.Microsecond) // not a spin: the notifiers need the CPUs
				}
				drain(g) // releases what it reads
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if maxUsed > limit+notifiers+groups {
		t.Errorf("budget used reached %d, over its limit %d by more than %d concurrent queuers and %d overflows", maxUsed, limit, notifiers, groups)
	}
	held := 0
	for _, g := range gs {
		held += g.Stats().Queued
	}
	if u := b.Used(); u != held {
		t.Errorf("budget used %d, but the open groups hold %d", u, held)
	}
	for _, g := range gs {
		g.Close()
	}
	if u := b.Used(); u != 0 {
		t.Errorf("every group closed: budget used %d, want 0", u)
	}
}

package engine

import (
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStalledGroupFreezesNothing is the seed's guarantee under churn, randomized (the seed
// is printed; FSN_STALLED_SEED replays it): group A (pre-content, the highest priority, no
// deadline, close verdict Deny) never reads nor answers the identical permission events it
// holds on f, and group D (content, a short deadline with verdict Deny) never answers those
// on g21, while other goroutines for stalledFor add and remove marks of an answering group B
// on the same objects (A's inode, its parent, the mount), toggle bits of A's own mark,
// create and close groups marked on f, and notify permission events and notifications on
// other files. Every one of those operations returns within hangTimeout; every event D holds
// is answered Deny with ReasonDeadline no sooner than its deadline and within
// deadline+hangTimeout; A's identical events never merge (Pending and Queued count each);
// closing A returns promptly and answers each of them with its close verdict (Deny,
// ReasonClosed), which ends their walks: B, below A, never sees one of them.
func TestStalledGroupFreezesNothing(t *testing.T) {
	seed := envInt("FSN_STALLED_SEED", time.Now().UnixNano())
	t.Logf("seed %d (FSN_STALLED_SEED=%d replays it)", seed, seed)
	const (
		stalledFor = 300 * time.Millisecond
		deadline   = 20 * time.Millisecond
		heldByA    = 40
	)
	e := New(Config{})
	a := newGroup(t, e, Options{Class: ClassPreContent, Name: "A", CloseVerdict: Deny})
	mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
	d := newGroup(t, e, Options{Class: ClassContent, Name: "D", Deadline: deadline, DeadlineVerdict: Deny})
	mustAdd(t, d, Inode(g21), MarkSpec{Mask: OpenPerm})
	b := newGroup(t, e, Options{Class: ClassContent, Name: "B"})
	mustAdd(t, b, Mount(mnt1), MarkSpec{Mask: OpenPerm | Open})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var bSawF atomic.Int32 // permission events on f that reached B
	wg.Add(1)
	go func() { // B answers everything Allow
		defer wg.Done()
		for {
			dl, err := b.Read(ctx)
			if err != nil {
				return
			}
			if dl.ID != 0 {
				if dl.Event.Inode == f {
					bSawF.Add(1)
				}
				b.Respond(dl.ID, Response{Verdict: Allow})
			}
			dl.Release()
		}
	}()

	// A's events: identical (same pid, object, mask), never answered.
	aRes := make(chan Response, heldByA)
	for range heldByA {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := fileEvent(OpenPerm)
			aRes <- e.Notify(context.Background(), ev)
			ev.Release()
		}()
	}
	waitUntil := time.Now().Add(hangTimeout)
	for a.Stats().Pending < heldByA {
		if time.Now().After(waitUntil) {
			t.Fatalf("only %d of %d permission events pending in A", a.Stats().Pending, heldByA)
		}
		time.Sleep(time.Millisecond)
	}
	if st := a.Stats(); st.Pending != heldByA || st.Queued != heldByA || st.Merged != 0 {
		t.Fatalf("A's identical permission events merged: %+v", st)
	}

	var mu sync.Mutex
	var failures []string
	fail := func(s string) {
		mu.Lock()
		failures = append(failures, s)
		mu.Unlock()
	}
	// bounded runs op on a goroutine of its own and records a failure if it outlives
	// hangTimeout; then it leaves op behind (goleak names it at the package's end).
	bounded := func(what string, op func()) bool {
		done := make(chan struct{})
		go func() { defer close(done); op() }()
		select {
		case <-done:
			return true
		case <-time.After(hangTimeout):
			fail(what + " did not return while A held its permission events")
			return false
		}
	}
	stop := time.Now().Add(stalledFor)
	var steps [5]atomic.Int32
	var toDeadline, toB atomic.Int32
	worker := func(i int, step func(rng *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(i)))
			for time.Now().Before(stop) {
				step(rng)
				steps[i].Add(1)
			}
		}()
	}
	objs := []Object{Inode(f), Inode(dir), Mount(mnt1), Filesystem(fs1)}
	worker(1, func(rng *rand.Rand) { // B's marks on A's objects
		obj := objs[rng.Intn(len(objs))]
		if obj == Mount(mnt1) {
			obj = Inode(g21)
		}
		bounded("B's mark change on "+obj.String(), func() {
			if rng.Intn(2) == 0 {
				_ = b.AddMark(obj, MarkSpec{Mask: OpenPerm | Open | EventOnChild})
			} else {
				_ = b.RemoveMark(obj)
			}
		})
	})
	worker(2, func(rng *rand.Rand) { // A's own mark: notification bits and ignore bits come and go
		bounded("A's mark change", func() {
			if rng.Intn(2) == 0 {
				_ = a.AddMark(Inode(f), MarkSpec{Mask: Access, Ignore: Close, Flags: IgnoreSurviveModify})
			} else {
				_ = a.RemoveFromMark(Inode(f), Access, Close)
			}
		})
	})
	worker(3, func(rng *rand.Rand) { // groups marked on f come and go
		bounded("a group's life on f", func() {
			c, err := e.NewGroup(Options{Class: ClassContent, CloseVerdict: Allow})
			if err != nil {
				fail(err.Error())
				return
			}
			_ = c.AddMark(objs[rng.Intn(len(objs))], MarkSpec{Mask: OpenPerm | Open | EventOnChild})
			if rng.Intn(2) == 0 {
				_ = c.RemoveMark(Inode(f))
			}
			c.Close()
		})
	})
	worker(4, func(rng *rand.Rand) { // events on other files: B answers, or D's deadline
		id := ID{Hi: 9, Lo: 100 + uint64(rng.Intn(50))}
		toD := rng.Intn(4) == 0
		if toD {
			id = g21
		}
		m := []Mask{Open, OpenPerm, OpenPerm | Open, Modify}[rng.Intn(4)]
		ev := &Event{Mask: m, Inode: id, Parent: sub, Mount: mnt1, Filesystem: fs1,
			Ancestors: []ID{sub, dir, root}, Name: "x", Pid: int32(rng.Intn(1000))}
		start := time.Now()
		var r Response
		if !bounded(fmt.Sprintf("an event on %v", id), func() { r = e.Notify(context.Background(), ev); ev.Release() }) {
			return
		}
		took := time.Since(start)
		switch {
		case toD && m&OpenPerm != 0:
			toDeadline.Add(1)
			if r.Verdict != Deny || r.Reason != ReasonDeadline || took < deadline {
				fail("D's event: " + r.Reason.String() + " " + r.Verdict.String() + " after " + took.String())
			}
		case m&OpenPerm != 0:
			toB.Add(1)
			if r.Verdict != Allow {
				fail("B's event denied: " + r.Reason.String())
			}
		}
	})
	wg.Add(1)
	go func() { // A's stall persists throughout
		defer wg.Done()
		for time.Now().Before(stop) {
			if n := a.Stats().Pending; n != heldByA {
				fail("A's pending events changed to " + strconv.Itoa(n))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(time.Until(stop))
	if n := len(aRes); n != 0 {
		t.Fatalf("%d of A's events were answered before its close", n)
	}
	prompt(t, "closing A", func() { a.Close() })
	for i := range heldByA {
		select {
		case r := <-aRes:
			if r.Verdict != Deny || r.Reason != ReasonClosed {
				t.Errorf("A's event %d got %+v, want its close verdict Deny (ReasonClosed)", i, r)
			}
		case <-time.After(hangTimeout):
			t.Fatalf("only %d of A's %d events answered after its close", i, heldByA)
		}
	}
	cancel()
	wg.Wait()
	if n := bSawF.Load(); n != 0 {
		t.Errorf("B saw %d of A's denied events: the first deny did not end their walks", n)
	}
	if st := d.Stats(); st.Pending != 0 {
		t.Errorf("D still holds %d events past their deadline", st.Pending)
	}
	for _, s := range failures {
		t.Error(s)
	}
	for i := 1; i < len(steps); i++ {
		if steps[i].Load() == 0 {
			t.Errorf("churner %d never ran while A stalled", i)
		}
	}
	if toDeadline.Load() == 0 || toB.Load() == 0 {
		t.Errorf("no permission event reached D's deadline (%d) or B (%d) while A stalled", toDeadline.Load(), toB.Load())
	}
	t.Logf("while A stalled: churner steps %d %d %d %d, %d of D's deadlines, %d of B's answers",
		steps[1].Load(), steps[2].Load(), steps[3].Load(), steps[4].Load(), toDeadline.Load(), toB.Load())
}

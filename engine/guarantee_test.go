package engine

// The seed's guarantee (../shared/seed, Linux 4.12): a listener sitting on permission events
// must not freeze anything else. "Promptly" below means well within hangTimeout: these tests
// catch hangs, they do not measure speed.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const hangTimeout = 10 * time.Second

// prompt runs f and fails the test if it does not return within hangTimeout.
func prompt(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(hangTimeout):
		t.Fatalf("%s did not return while permission events were pending", what)
	}
}

// blockOn starts n Notify calls of permission events on file f that group a will hold, waits
// until a has all of them pending, and returns a channel of their results.
func blockOn(t *testing.T, e *Engine, a *Group, n int, read bool) <-chan Response {
	t.Helper()
	res := make(chan Response, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			ev := fileEvent(OpenPerm)
			ev.Pid = int32(1000 + i)
			res <- e.Notify(context.Background(), ev)
			ev.Release()
		}(i)
	}
	deadline := time.Now().Add(hangTimeout)
	for a.Stats().Pending < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d permission events pending", a.Stats().Pending, n)
		}
		time.Sleep(time.Millisecond)
	}
	if read {
		// Move some to the access list (read, unanswered), as a real listener would.
		for i := 0; i < n/2; i++ {
			d, err := a.TryRead()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Release)
		}
	}
	return res
}

func TestPendingPermissionFreezesNothingElse(t *testing.T) {
	const pending = 200
	e := New(Config{})
	a := newGroup(t, e, Options{Class: ClassContent, Name: "A"})
	mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
	mustAdd(t, a, Mount(mnt1), MarkSpec{Mask: OpenPerm})
	b := newGroup(t, e, Options{Class: ClassContent, Name: "B"})
	mustAdd(t, b, Inode(f), MarkSpec{Mask: OpenPerm | Open})
	mustAdd(t, b, Inode(dir), MarkSpec{Mask: Open | EventOnChild})
	res := blockOn(t, e, a, pending, true)

	prompt(t, "closing another group with marks on the same objects", func() { b.Close() })

	c := newGroup(t, e, Options{Name: "C"})
	prompt(t, "adding marks", func() {
		mustAdd(t, c, Inode(f), MarkSpec{Mask: Open})
		mustAdd(t, c, Inode(g21), MarkSpec{Mask: Open})
	})
	prompt(t, "dispatching unrelated events", func() {
		e.Notify(context.Background(), deepEvent(Open))
		e.Notify(context.Background(), fileEvent(Open)) // same file, a notification
	})
	if got := drain(c); len(got) != 2 {
		t.Fatalf("other group got %v", masks(got))
	}
	prompt(t, "removing the mark the pending events came through", func() {
		if err := a.RemoveMark(Inode(f)); err != nil {
			t.Error(err)
		}
		if err := a.RemoveMark(Mount(mnt1)); err != nil {
			t.Error(err)
		}
	})
	// A mark removed before a dispatch began never receives it.
	prompt(t, "a permission event after the removal", func() {
		if r := e.Notify(context.Background(), fileEvent(OpenPerm)); r.Reason != ReasonNone {
			t.Errorf("removed marks still took an event: %+v", r)
		}
	})
	if st := a.Stats(); st.Pending != pending || st.Marks != 0 {
		t.Fatalf("A: %+v", st)
	}
	prompt(t, "closing the group holding the events", func() { a.Close() })
	for i := 0; i < pending; i++ {
		r := <-res
		if r.Verdict != Allow || r.Reason != ReasonClosed {
			t.Fatalf("pending event got %+v", r)
		}
	}
}

func TestCloseAnswersPendingAndWalkContinues(t *testing.T) {
	for _, v := range []Verdict{Allow, Deny} {
		t.Run(v.String(), func(t *testing.T) {
			const pending = 100
			e := New(Config{})
			a := newGroup(t, e, Options{Class: ClassPreContent, CloseVerdict: v})
			mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
			lower := newGroup(t, e, Options{Class: ClassContent})
			mustAdd(t, lower, Inode(f), MarkSpec{Mask: OpenPerm})
			var lowerSaw atomic.Int32
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					d, err := lower.Read(ctx)
					if err != nil {
						return
					}
					lowerSaw.Add(1)
					lower.Respond(d.ID, Response{})
					d.Release()
				}
			}()
			defer func() { cancel(); wg.Wait() }()
			res := blockOn(t, e, a, pending, true)
			if lowerSaw.Load() != 0 {
				t.Fatal("a lower group saw the event before the higher one answered")
			}
			prompt(t, "Close", func() { a.Close() })
			for i := 0; i < pending; i++ {
				r := <-res
				if r.Verdict != v {
					t.Fatalf("got %+v, want %v", r, v)
				}
			}
			want := int32(pending)
			if v == Deny {
				want = 0 // the close verdict denied: the walk ended there
			}
			if got := lowerSaw.Load(); got != want {
				t.Fatalf("lower-priority group saw %d events, want %d", got, want)
			}
		})
	}
}

func TestMarksChangingDuringWait(t *testing.T) {
	e := New(Config{})
	a := newGroup(t, e, Options{Class: ClassPreContent, Name: "A"})
	mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
	stays := newGroup(t, e, Options{Name: "stays"})
	mustAdd(t, stays, Inode(f), MarkSpec{Mask: Open})
	mustAdd(t, stays, Mount(mnt1), MarkSpec{Mask: Open})
	removed := newGroup(t, e, Options{Name: "removed"})
	mustAdd(t, removed, Inode(f), MarkSpec{Mask: Open})
	grows := newGroup(t, e, Options{Name: "grows"})
	mustAdd(t, grows, Inode(dir), MarkSpec{Mask: Open | EventOnChild})
	late := newGroup(t, e, Options{Name: "late"})
	readd := newGroup(t, e, Options{Class: ClassContent, Name: "readd"})
	mustAdd(t, readd, Inode(f), MarkSpec{Mask: OpenPerm})

	ev := fileEvent(OpenPerm | Open)
	res := make(chan Response, 1)
	go func() { res <- e.Notify(context.Background(), ev) }()
	d, err := a.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// While A holds the event: remove one group's mark, add marks for groups already
	// walked-to-be and for a new one, and remove and re-add a permission mark.
	if err := removed.RemoveMark(Inode(f)); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, grows, Inode(f), MarkSpec{Mask: Open})
	mustAdd(t, grows, Subtree(root), MarkSpec{Mask: Open})
	mustAdd(t, late, Inode(f), MarkSpec{Mask: Open})
	if err := readd.RemoveMark(Inode(f)); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, readd, Inode(f), MarkSpec{Mask: OpenPerm})
	a.Respond(d.ID, Response{})
	d.Release()
	if r := <-res; r.Verdict != Allow {
		t.Fatalf("got %+v", r)
	}
	ev.Release()
	if got := drain(stays); len(got) != 1 {
		t.Errorf("a mark attached all along got %v, want one event", masks(got))
	}
	if got := drain(removed); len(got) != 0 {
		t.Errorf("a mark removed during the wait got %v", masks(got))
	}
	if got := drain(grows); len(got) != 1 {
		t.Errorf("a group that added marks during the wait got %v, want exactly one", masks(got))
	}
	if got := drain(late); len(got) > 1 {
		t.Errorf("a mark added during the wait got %v", masks(got))
	}
	if got := drain(readd); len(got) > 1 {
		t.Errorf("a re-added permission mark got %v", masks(got))
	}
}

// deadlineSlack bounds how late a deadline verdict may come on a shared 2-vCPU machine
// under -race: a timer fires within a few milliseconds there; a regression that counts the
// deadline twice, or from the wrong moment, is late by a whole deadline.
const deadlineSlack = 60 * time.Millisecond

func TestDeadline(t *testing.T) {
	for _, v := range []Verdict{Allow, Deny} {
		t.Run(v.String(), func(t *testing.T) {
			const deadline = 100 * time.Millisecond
			e := New(Config{})
			a := newGroup(t, e, Options{Class: ClassContent, Deadline: deadline, DeadlineVerdict: v})
			mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
			start := time.Now()
			ev := fileEvent(OpenPerm)
			r := e.Notify(context.Background(), ev)
			took := time.Since(start)
			ev.Release()
			if r.Verdict != v || r.Reason != ReasonDeadline {
				t.Fatalf("got %+v", r)
			}
			if took < deadline || took > deadline+deadlineSlack {
				t.Fatalf("returned after %v, want %v to %v", took, deadline, deadline+deadlineSlack)
			}
			// Unread at the deadline: the event left the queue.
			if st := a.Stats(); st.Queued != 0 || st.Pending != 0 || st.DeadlineExpired != 1 {
				t.Fatalf("stats %+v", st)
			}
			// Read, then not answered in time: a late answer is refused.
			res := make(chan Response, 1)
			start = time.Now()
			go func() { res <- e.Notify(context.Background(), fileEvent(OpenPerm)) }()
			d, err := a.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Release()
			if r := <-res; r.Reason != ReasonDeadline {
				t.Fatalf("got %+v", r)
			}
			if took := time.Since(start); took < deadline || took > deadline+deadlineSlack {
				t.Fatalf("read and unanswered: returned after %v, want %v to %v", took, deadline, deadline+deadlineSlack)
			}
			if err := a.Respond(d.ID, Response{}); !errors.Is(err, ErrNoSuchEvent) {
				t.Fatalf("late answer: %v", err)
			}
		})
	}
}

// dispatchHeld dispatches a permission event on file f, which a group must hold, and returns
// its walk; the event is released when the test ends.
func dispatchHeld(t *testing.T, e *Engine) *Walk {
	t.Helper()
	ev := fileEvent(OpenPerm)
	t.Cleanup(ev.Release)
	r, w := e.Dispatch(ev)
	if w == nil {
		t.Fatalf("the event was not queued: %+v", r)
	}
	return w
}

// TestDeadlineRunsFromQueueing: a group's deadline runs from when the event was queued,
// whenever and however the source waits. With Dispatch and a later Wait, the deadline used to
// start at Wait, so an answer after the deadline but before Wait was accepted.
func TestDeadlineRunsFromQueueing(t *testing.T) {
	const deadline = 50 * time.Millisecond
	for _, how := range []string{"Wait", "Await"} {
		t.Run(how, func(t *testing.T) {
			e := New(Config{})
			a := newGroup(t, e, Options{Class: ClassContent, Deadline: deadline, DeadlineVerdict: Deny})
			mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
			start := time.Now()
			w := dispatchHeld(t, e)
			d, err := a.TryRead()
			if err != nil {
				t.Fatal(err)
			}
			defer d.Release()
			// The source has not waited yet; the deadline passes all the same. (Errorf, not
			// Fatalf, until the walk is finished below: a group's Close used to wait for it.)
			for a.Stats().DeadlineExpired == 0 && time.Since(start) <= deadline+deadlineSlack {
				time.Sleep(time.Millisecond)
			}
			took := time.Since(start)
			if a.Stats().DeadlineExpired == 0 {
				t.Errorf("no deadline verdict %v after queueing (the source had not waited)", took)
			} else if took < deadline {
				t.Errorf("deadline verdict after %v, before the deadline %v", took, deadline)
			}
			if err := a.Respond(d.ID, Response{}); !errors.Is(err, ErrNoSuchEvent) {
				t.Errorf("an answer after the deadline: %v, want ErrNoSuchEvent", err)
			}
			got := make(chan Response, 1)
			if how == "Wait" {
				go func() { got <- w.Wait(context.Background()) }()
			} else {
				w.Await(context.Background(), func(r Response) { got <- r })
			}
			select {
			case r := <-got:
				if r.Verdict != Deny || r.Reason != ReasonDeadline {
					t.Fatalf("%s after the deadline: %+v, want the deadline's deny", how, r)
				}
			case <-time.After(deadlineSlack):
				t.Errorf("%s after the deadline did not return within %v", how, deadlineSlack)
				<-got
			}
			if st := a.Stats(); st.Pending != 0 || st.Answered != 0 || st.DeadlineExpired != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestCloseDoesNotWaitForTheSource: Close answers a dispatched event and returns before the
// source calls Wait; it used to wait for every dispatched walk's Wait, so a slow source
// stalled a listener's Close.
func TestCloseDoesNotWaitForTheSource(t *testing.T) {
	// Close does no waiting at all: a bound well under a second catches one that waits for
	// the source, which never comes here until the check is over.
	const bound = 500 * time.Millisecond
	for _, v := range []Verdict{Allow, Deny} {
		t.Run(v.String(), func(t *testing.T) {
			e := New(Config{})
			a, err := e.NewGroup(Options{Class: ClassContent, CloseVerdict: v})
			if err != nil {
				t.Fatal(err)
			}
			lower := newGroup(t, e, Options{Class: ClassContent, Handler: func(Delivery) (Response, bool) {
				return Response{Cache: true}, true
			}})
			mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
			mustAdd(t, lower, Inode(f), MarkSpec{Mask: OpenPerm})
			w := dispatchHeld(t, e)
			closed := make(chan struct{})
			start := time.Now()
			go func() { a.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(bound):
				t.Errorf("Close did not return within %v while the source had not called Wait", bound)
			}
			r := w.Wait(context.Background()) // lets a waiting Close go on
			<-closed
			if took := time.Since(start); took > bound && !t.Failed() {
				t.Errorf("Close took %v", took)
			}
			want := Response{Verdict: v, Reason: ReasonClosed, Group: a.ID()}
			if v == Allow { // the walk went on to the lower group
				want = Response{Verdict: Allow, Reason: ReasonAnswered, Group: lower.ID()}
			}
			if r != want {
				t.Fatalf("Wait after Close: %+v, want %+v", r, want)
			}
			if st := a.Stats(); st.Pending != 0 || st.ClosedAnswered != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestClosingGroupAnswersWithItsCloseVerdict: a permission event that reaches a group after
// Close began and before it removed the group's marks gets the close verdict, like the events
// pending at Close. It used to get Allow whatever the close verdict. Close is held in that
// window by an awaiting walk it resumes, whose callback waits.
func TestClosingGroupAnswersWithItsCloseVerdict(t *testing.T) {
	for _, v := range []Verdict{Allow, Deny} {
		t.Run(v.String(), func(t *testing.T) {
			e := New(Config{})
			a, err := e.NewGroup(Options{Class: ClassContent, CloseVerdict: v,
				Handler: func(Delivery) (Response, bool) { return Response{}, false }})
			if err != nil {
				t.Fatal(err)
			}
			mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
			w := dispatchHeld(t, e)
			inClose, release := make(chan Response), make(chan struct{})
			w.Await(context.Background(), func(r Response) { inClose <- r; <-release })
			closed := make(chan struct{})
			go func() { a.Close(); close(closed) }()
			if r := <-inClose; r.Verdict != v || r.Reason != ReasonClosed {
				t.Errorf("the pending event: %+v, want %v (closed)", r, v)
			}
			// Close is between answering its pending events and removing its marks.
			ev2 := fileEvent(OpenPerm)
			ev2.Pid = 101
			ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
			r := e.Notify(ctx, ev2)
			cancel()
			ev2.Release()
			close(release)
			prompt(t, "Close", func() { <-closed })
			if r.Verdict != v || r.Reason != ReasonClosed || r.Group != a.ID() {
				t.Fatalf("an event during Close: %+v, want %v (closed) from group %d", r, v, a.ID())
			}
			if st := a.Stats(); st.ClosedAnswered != 2 || st.Pending != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestNothingLeaks(t *testing.T) {
	var released atomic.Int32
	var made int32
	e := New(Config{})
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		a, _ := e.NewGroup(Options{Class: ClassContent})
		b, _ := e.NewGroup(Options{QueueLimit: 5})
		mustAdd(t, a, Subtree(root), MarkSpec{Mask: OpenPerm})
		mustAdd(t, b, Filesystem(fs1), MarkSpec{Mask: Open | Access})
		mustAdd(t, b, Inode(f), MarkSpec{Ignore: Access})
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				ev := deepEvent(OpenPerm | Open)
				ev.Pid = int32(i)
				ev.Payload = countingPayload{&released}
				e.Notify(ctx, ev)
				ev.Release()
			}(i)
		}
		atomic.AddInt32(&made, 20)
		for a.Stats().Pending < 20 {
			time.Sleep(time.Millisecond)
		}
		if d, err := a.TryRead(); err == nil { // one read and never answered, never released
			_ = d
		}
		a.Close()
		wg.Wait()
		b.Close()
	}
	if got := released.Load(); got != made-3 {
		// The three deliveries read from A above were never released by their reader.
		t.Fatalf("payloads released %d, want %d", got, made-3)
	}
	if st := e.Stats(); st.Groups != 0 || st.Connectors != 0 || st.Marks != 0 {
		t.Fatalf("left over: %+v", st)
	}
}

// TestDeadlineEachEventItsOwn: a group's deadline timer is one for all its events (armed for
// the earliest unanswered one), yet each event gets its own deadline: events answered in time
// keep their answers, an unanswered one between them expires at its deadline and no sooner,
// and an event queued later expires a full deadline after its own queueing, not at the timer's
// earlier arming.
func TestDeadlineEachEventItsOwn(t *testing.T) {
	const deadline = 100 * time.Millisecond
	e := New(Config{})
	a := newGroup(t, e, Options{Class: ClassContent, Deadline: deadline, DeadlineVerdict: Deny})
	mustAdd(t, a, Inode(f), MarkSpec{Mask: OpenPerm})
	type result struct {
		r    Response
		took time.Duration
	}
	wait := func(w *Walk, start time.Time) <-chan result {
		ch := make(chan result, 1)
		go func() {
			r := w.Wait(context.Background())
			ch <- result{r, time.Since(start)}
		}()
		return ch
	}
	start := time.Now()
	var walks [3]<-chan result
	var ids [3]uint64
	for i := range walks {
		walks[i] = wait(dispatchHeld(t, e), start)
		d, err := a.TryRead()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Release()
		ids[i] = d.ID
	}
	// Out of order: the last, then the first; the middle one is never answered.
	for _, i := range []int{2, 0} {
		if err := a.Respond(ids[i], Response{Verdict: Allow}); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if r := <-walks[i]; r.r.Reason != ReasonAnswered || r.r.Verdict != Allow {
			t.Fatalf("event %d: got %+v, want its answer", i, r.r)
		}
	}
	// Half a deadline later, a fourth event, never answered.
	time.Sleep(deadline / 2)
	start4 := time.Now()
	fourth := wait(dispatchHeld(t, e), start4)
	r := <-walks[1]
	if r.r.Reason != ReasonDeadline || r.r.Verdict != Deny {
		t.Fatalf("unanswered event: got %+v, want the deadline verdict", r.r)
	}
	if r.took < deadline || r.took > deadline+deadlineSlack {
		t.Fatalf("unanswered event expired after %v, want %v to %v", r.took, deadline, deadline+deadlineSlack)
	}
	r = <-fourth
	if r.r.Reason != ReasonDeadline {
		t.Fatalf("fourth event: got %+v, want the deadline verdict", r.r)
	}
	if r.took < deadline || r.took > deadline+deadlineSlack {
		t.Fatalf("fourth event expired %v after it was queued, want %v to %v", r.took, deadline, deadline+deadlineSlack)
	}
	if st := a.Stats(); st.DeadlineExpired != 2 || st.Answered != 2 || st.Pending != 0 {
		t.Fatalf("stats %+v: want 2 expired, 2 answered, none pending", st)
	}
	// Nothing is kept for answered events: the deadline list is empty again.
	a.mu.Lock()
	n := a.dl.Len()
	a.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d deadlines kept with no event pending", n)
	}
}

package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// ringPair returns a daemon ring and the client side mapped from its grant, as over a socket,
// closed when the test ends.
func ringPair(t *testing.T) (*DaemonRing, *ClientRing) {
	t.Helper()
	d, c := newRingPair(t)
	t.Cleanup(func() { c.Close(); d.Close() })
	return d, c
}

// newRingPair is ringPair for a caller that closes them itself.
func newRingPair(t *testing.T) (*DaemonRing, *ClientRing) {
	t.Helper()
	d, err := NewDaemonRing()
	if err != nil {
		t.Fatal(err)
	}
	g, err := d.Grant(1)
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	c, err := NewClientRing(g)
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	return d, c
}

func frameFor(t *testing.T, id uint64, name string) []byte {
	t.Helper()
	b, _, err := Append(nil, nil, &Event{ID: id, Mask: fsevent.OpenPerm, Pid: 1, Path: "/x/" + name})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRingRoundTrip: frames put and published reach the reader in order, across the end of
// the ring many times; answers reach the daemon in order; a sleeping reader is woken.
func TestRingRoundTrip(t *testing.T) {
	d, c := ringPair(t)
	const n = 20000 // ~60 bytes a record: the 256 KiB ring wraps several times
	got := make(chan uint64, n+1)
	done := make(chan error, 1)
	go func() {
		for {
			ok, err := c.Next(func(f []byte) error {
				m, err := Decode(f, nil)
				if err != nil {
					return err
				}
				ev := m.(*Event)
				got <- ev.ID
				// The up ring holds 1024 answers; the test takes them after each put and
				// while it waits for room, so a full one empties soon.
				for deadline := time.Now().Add(10 * time.Second); !c.Answer(&Respond{EventID: ev.ID, Verdict: fsevent.Verdict(ev.ID % 2)}); {
					if time.Now().After(deadline) {
						return errors.New("up ring full for 10 s")
					}
					time.Sleep(50 * time.Microsecond)
				}
				return nil
			})
			if !ok || err != nil {
				done <- err
				return
			}
		}
	}()
	var answered []uint64
	take := func() {
		for {
			took := 0
			_, _, err := d.Answers(func(r *Respond) {
				if want := fsevent.Verdict(r.EventID % 2); r.Verdict != want {
					t.Errorf("answer %d: verdict %d", r.EventID, r.Verdict)
				}
				answered = append(answered, r.EventID)
				took++
			})
			if err != nil {
				t.Fatal(err)
			}
			if took == 0 {
				return
			}
		}
	}
	next := uint64(1)
	for id := uint64(1); id <= n; id++ {
		f := frameFor(t, id, "f")
		for {
			ok, err := d.Put(f)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			d.Publish()
			d.WantRoom()
			take()
			time.Sleep(10 * time.Microsecond)
		}
		if id%7 == 0 || id == n {
			d.Publish()
		}
		for len(got) > 0 {
			if g := <-got; g != next {
				t.Fatalf("event %d read, want %d", g, next)
			}
			next++
		}
		take()
	}
	deadline := time.Now().Add(10 * time.Second)
	for next <= n && time.Now().Before(deadline) {
		// Answers are taken meanwhile: the reader answers as it reads, and once the up ring
		// holds RingUpSlots answers it waits for room (it read 1,025 more than were taken
		// when this loop took none: a stall of the test, not of the ring).
		take()
		select {
		case g := <-got:
			if g != next {
				t.Fatalf("event %d read, want %d", g, next)
			}
			next++
		case <-time.After(time.Millisecond):
		}
	}
	for len(answered) < n && time.Now().Before(deadline) {
		take()
		time.Sleep(time.Millisecond)
	}
	if next != n+1 || len(answered) != n {
		t.Fatalf("read %d, answered %d of %d", next-1, len(answered), n)
	}
	for i, id := range answered {
		if id != uint64(i+1) {
			t.Fatalf("answer %d is for %d", i, id)
		}
	}
	c.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRingHostileClient: what a client can write in the shared pages never makes the
// daemon act on something it did not send, read out of bounds, or go on trusting the ring.
func TestRingHostileClient(t *testing.T) {
	t.Run("tail-beyond-head", func(t *testing.T) {
		d, c := ringPair(t)
		d.Put(frameFor(t, 1, "a"))
		d.Publish()
		c.w.dTail.Store(d.head + 4*RingDown) // claims to have consumed what was never written
		for i := 0; ; i++ {
			ok, err := d.Put(frameFor(t, 2, "b"))
			if errors.Is(err, ErrRingBroken) {
				break
			}
			if err != nil || (!ok && i > RingDown) {
				t.Fatalf("Put: %v %v after %d", ok, err, i)
			}
		}
		if !d.Broken() {
			t.Fatal("not broken")
		}
		if _, _, err := d.Answers(func(*Respond) { t.Fatal("answer taken from a broken ring") }); !errors.Is(err, ErrRingBroken) {
			t.Fatalf("Answers: %v", err)
		}
	})
	t.Run("tail-backwards", func(t *testing.T) {
		d, c := ringPair(t)
		for i := range 3000 { // past one wrap: the tail taken is no longer 0
			ok, err := d.Put(frameFor(t, uint64(i+1), "a"))
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				c.w.dTail.Store(d.head)
				d.refreshTailLocked()
			}
		}
		c.w.dTail.Store(d.tail - 8) // before what it consumed already
		if d.refreshTailLocked() || !d.Broken() {
			t.Fatal("a tail going backwards was taken")
		}
	})
	t.Run("head-far-ahead", func(t *testing.T) {
		d, c := ringPair(t)
		c.w.uHead.Store(RingUpSlots + 1)
		if _, _, err := d.Answers(func(*Respond) { t.Fatal("answer taken") }); !errors.Is(err, ErrRingBroken) {
			t.Fatalf("Answers: %v", err)
		}
	})
	t.Run("garbage-slots", func(t *testing.T) {
		d, c := ringPair(t)
		up := c.mem[RingCtrl+RingDown:]
		for i := range 10 {
			slot := up[i*RingAnswerSize : (i+1)*RingAnswerSize]
			for j := range slot {
				slot[j] = 0xff // verdict 255, unknown flags: never a valid answer
			}
		}
		binary.LittleEndian.PutUint64(up[3*RingAnswerSize:], 77) // one valid: allow 77
		for j := 8; j < RingAnswerSize; j++ {
			up[3*RingAnswerSize+j] = 0
		}
		c.w.uHead.Store(10)
		var ids []uint64
		bad, _, err := d.Answers(func(r *Respond) { ids = append(ids, r.EventID) })
		if err != nil || bad != 9 || len(ids) != 1 || ids[0] != 77 {
			t.Fatalf("Answers: bad %d, ids %v, %v", bad, ids, err)
		}
		// Taken once: the same positions are not taken again.
		if _, _, err := d.Answers(func(r *Respond) { t.Fatal("answer taken twice") }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("shrink-refused", func(t *testing.T) {
		d, _ := ringPair(t)
		g, err := d.Grant(2)
		if err != nil {
			t.Fatal(err)
		}
		defer CloseFDs(g)
		if err := syscall.Ftruncate(g.Mem.Int(), 4096); err == nil {
			t.Fatal("the client could shrink the ring under the daemon's mapping")
		}
		if err := syscall.Ftruncate(g.Mem.Int(), RingSize*2); err == nil {
			t.Fatal("the client could grow the ring")
		}
	})
	t.Run("oversized-frame", func(t *testing.T) {
		d, _ := ringPair(t)
		if _, err := d.Put(make([]byte, ringMaxRecord)); err == nil {
			t.Fatal("a frame larger than a record was put")
		}
		// The largest event there can be fits (a put that fails would end the session).
		if ok, err := d.Put(make([]byte, HeaderSize+MaxPayloadOf(TypeEvent))); !ok || err != nil {
			t.Fatalf("the largest event frame does not fit the empty ring: %v %v", ok, err)
		}
	})
}

// TestRingWakesSleeper: a reader asleep in FUTEX_WAIT is woken by Publish and by Stop.
func TestRingWakesSleeper(t *testing.T) {
	d, c := ringPair(t)
	res := make(chan int, 1)
	go func() {
		n := 0
		for {
			ok, _ := c.Next(func([]byte) error { n++; return nil })
			if !ok {
				res <- n
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // asleep by now, most likely
	d.Put(frameFor(t, 1, "a"))
	d.Publish()
	deadline := time.Now().Add(5 * time.Second)
	for d.w.dTail.Load() != d.head && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if d.w.dTail.Load() != d.head {
		t.Fatal("the sleeping reader was not woken by Publish")
	}
	time.Sleep(20 * time.Millisecond)
	c.Stop()
	select {
	case n := <-res:
		if n != 1 {
			t.Fatalf("read %d frames", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not wake the reader")
	}
}

func FuzzDecodeAnswer(f *testing.F) {
	var b [RingAnswerSize]byte
	putAnswer(b[:], &Respond{EventID: 1})
	f.Add(b[:])
	putAnswer(b[:], &Respond{EventID: 1 << 60, Verdict: fsevent.Deny, Errno: syscall.EIO})
	f.Add(b[:])
	putAnswer(b[:], &Respond{EventID: 9, Cache: true})
	f.Add(b[:])
	f.Add(bytes.Repeat([]byte{0xff}, RingAnswerSize))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeAnswer(in)
		if err != nil {
			if m != nil {
				t.Fatal("a message with its error")
			}
			return
		}
		if m.EventID == 0 || m.Verdict > fsevent.Deny || m.Errno > MaxErrno || m.Req != 0 {
			t.Fatalf("accepted %+v", m)
		}
		var out [RingAnswerSize]byte
		putAnswer(out[:], m)
		if !bytes.Equal(out[:], in) {
			t.Fatalf("re-encoding %x differs from %x", out, in)
		}
	})
}

// FuzzRingRecords: whatever the down ring holds (the client trusts the daemon, but a bug must
// not make it read out of bounds), Next either hands over frames that lie inside the ring or
// returns an error; it never panics and never loops.
func FuzzRingRecords(f *testing.F) {
	var rec []byte
	fr, _, _ := Append(nil, nil, &Event{ID: 1, Mask: fsevent.OpenPerm, Pid: 1, Path: "/x"})
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(fr)))
	rec = append(rec, fr...)
	for len(rec)%8 != 0 {
		rec = append(rec, 0)
	}
	f.Add(rec, uint32(len(rec)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint32(8))
	f.Add([]byte{0x10, 0, 0, 0}, uint32(RingDown))
	d, err := NewDaemonRing()
	if err != nil {
		f.Fatal(err)
	}
	g, err := d.Grant(1)
	if err != nil {
		f.Fatal(err)
	}
	c, err := NewClientRing(g)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close(); d.Close() })
	f.Fuzz(func(t *testing.T, data []byte, head uint32) {
		down := c.mem[RingCtrl : RingCtrl+RingDown]
		clear(down)
		copy(down, data)
		c.tail = 0
		head %= RingDown + 1
		if head == 0 {
			head = 8
		}
		c.w.dHead.Store(head)
		frames := 0
		c.Next(func(fr []byte) error {
			frames++
			if len(fr) > ringMaxRecord {
				t.Fatalf("a frame of %d bytes", len(fr))
			}
			_, _ = DecodeRingFrame(fr, nil, nil)
			return nil
		})
		if frames > RingDown/8 {
			t.Fatalf("%d frames from %d bytes", frames, head)
		}
	})
}

// TestRingKickArmedOnlyToSleep: the client kicks the pipe after an answer only while the
// daemon's loop asked for it (ArmKick, before it sleeps); once the loop is awake
// (DisarmKick) answers cost no kick and ArmKick reports them instead of arming; either way
// every answer is taken.
func TestRingKickArmedOnlyToSleep(t *testing.T) {
	d, c := ringPair(t)
	kicked := func() bool {
		var ps sys.PollSet
		ready := []bool{false}
		ok, err := ps.WaitFor([]int{d.KickFd()}, ready, 0)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	var got []uint64
	take := func(r *Respond) { got = append(got, r.EventID) }
	answer := func(id uint64) {
		if !c.Answer(&Respond{EventID: id, Verdict: fsevent.Allow}) {
			t.Fatalf("answer %d refused", id)
		}
	}
	// Sleeping: armed, nothing pending; the answer kicks.
	d.DisarmKick() // the ring starts armed
	if d.ArmKick() {
		t.Fatal("ArmKick found answers in an empty ring")
	}
	answer(1)
	if !kicked() {
		t.Fatal("an answer while the loop sleeps did not kick the pipe")
	}
	if _, eof, err := d.Answers(take); err != nil || eof {
		t.Fatal(err, eof)
	}
	if kicked() {
		t.Fatal("the pipe stayed readable after Answers drained it")
	}
	// Awake: disarmed; answers cost no kick, and ArmKick reports them without arming.
	d.DisarmKick()
	answer(2)
	answer(3)
	if kicked() {
		t.Fatal("an answer while the loop is awake kicked the pipe")
	}
	if !d.ArmKick() {
		t.Fatal("ArmKick did not report the answers published while the loop was awake")
	}
	if _, err := d.TakeAnswers(take); err != nil {
		t.Fatal(err)
	}
	answer(4)
	if kicked() {
		t.Fatal("ArmKick that found answers left the kick armed")
	}
	if !d.ArmKick() {
		t.Fatal("ArmKick missed answer 4")
	}
	d.TakeAnswers(take)
	if d.ArmKick() {
		t.Fatal("ArmKick found answers after all were taken")
	}
	if fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("answers taken %v, want [1 2 3 4]", got)
	}
}

// TestRingStopAlwaysEndsNext: Stop ends a reader's Next whenever it comes — before the reader
// looks, while it goes to sleep, once it sleeps — promptly: a wake that comes between the
// reader's last look at the closed word and its FUTEX_WAIT is lost (the futex word, d_head,
// does not change), and the reader sleeps without a timeout, so a Stop that woke only once
// would leave Next asleep for good. Stop wakes again until the reader is woken or out of the
// way (ClientRing.Stop).
func TestRingStopAlwaysEndsNext(t *testing.T) {
	const rounds = 400
	var slowest time.Duration
	for i := 0; i < rounds; i++ {
		d, c := newRingPair(t)
		ended := make(chan bool, 1)
		go func() {
			ok, _ := c.Next(func([]byte) error { return nil })
			ended <- ok
		}()
		for j := 0; j < i%50; j++ { // from at once to well after the reader sleeps
			runtime.Gosched()
		}
		start := time.Now()
		c.Stop()
		select {
		case ok := <-ended:
			if ok {
				t.Fatalf("round %d: Next reported frames after Stop", i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Next still sleeps 5 s after Stop", i)
		}
		slowest = max(slowest, time.Since(start))
		c.Close()
		d.Close()
	}
	t.Logf("%d rounds, the slowest Stop-to-return %v", rounds, slowest)
}

// TestRingStopAfterOrDuringClose: Stop from another goroutine may come after the reader has
// returned and closed the ring (the client's readLoop stops the ring when the connection
// ends, while the ring's reader, ended by the daemon's close, closes it): it must then do
// nothing, where it used to touch the unmapped words and crash the process (SIGSEGV in
// Stop, seen once in a CI run of the client's tests). Sequential first (deterministic), then
// racing the reader's Close.
func TestRingStopAfterOrDuringClose(t *testing.T) {
	d, c := newRingPair(t)
	c.Close()
	c.Stop() // after Close: returns at once, touching nothing
	d.Close()
	for i := 0; i < 200; i++ {
		d, c := newRingPair(t)
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			c.Next(func([]byte) error { return nil }) // ended by the daemon's Close below
			c.Close()
		}()
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for j := 0; j < i%20; j++ {
				runtime.Gosched()
			}
			c.Stop()
		}()
		d.Close()
		for _, ch := range []chan struct{}{closed, stopped} {
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: the reader or Stop still runs 5 s after the daemon's Close", i)
			}
		}
		c.Stop() // after Close again
	}
}

// TestRingIdleReaderSleepsOnce: a reader with nothing to read enters FUTEX_WAIT once and stays
// there: no timed recheck wakes it (an idle client costs the machine no wake-ups), and a
// frame published after a long sleep still wakes it at once.
func TestRingIdleReaderSleepsOnce(t *testing.T) {
	d, c := newRingPair(t)
	defer d.Close()
	defer c.Close()
	defer c.Stop() // a reader a failed check left asleep
	got := make(chan int, 1)
	go func() {
		n := 0
		c.Next(func([]byte) error { n++; return nil })
		got <- n
	}()
	time.Sleep(350 * time.Millisecond)
	if n := c.sleeps.Load(); n != 1 {
		t.Fatalf("an idle reader entered FUTEX_WAIT %d times in 350 ms, want 1", n)
	}
	if ok, err := d.Put(frameFor(t, 1, "a")); !ok || err != nil {
		t.Fatalf("Put: %v %v", ok, err)
	}
	start := time.Now()
	d.Publish()
	select {
	case n := <-got:
		if n != 1 {
			t.Fatalf("Next returned %d frames, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a frame published after a long idle sleep did not wake the reader in 5 s")
	}
	t.Logf("woken %v after Publish", time.Since(start))
}

// TestRingTakeAnswersReusesOneRespond: the daemon's take of the ring's answers allocates
// nothing per answer (each is decoded into the ring's one Respond), and each answer reaches
// fn whole, with nothing of the one before: a deny with an errno, then an allow with Cache,
// then a deny without either, then a slot that does not decode between two valid
// ones (skipped and counted; the next is not taken for it).
func TestRingTakeAnswersReusesOneRespond(t *testing.T) {
	d, c := ringPair(t)
	want := []Respond{
		{EventID: 7, Verdict: fsevent.Deny, Errno: syscall.EIO},
		{EventID: 8, Verdict: fsevent.Allow, Cache: true},
		{EventID: 9, Verdict: fsevent.Deny},
		{EventID: 10, Verdict: fsevent.Allow},
	}
	var got []Respond
	take := func(r *Respond) { got = append(got, *r) }
	for i := range want {
		if i == 3 { // a slot the client scribbled: unknown flags
			off := RingCtrl + RingDown + int(c.uHead%RingUpSlots)*RingAnswerSize
			putAnswer(c.mem[off:off+RingAnswerSize], &Respond{EventID: 99, Verdict: fsevent.Deny, Errno: syscall.EPERM})
			c.mem[off+9] = 0x80
			c.uHead++
			c.w.uHead.Swap(c.uHead)
		}
		if !c.Answer(&want[i]) {
			t.Fatalf("answer %d refused", want[i].EventID)
		}
	}
	bad, err := d.TakeAnswers(take)
	if err != nil || bad != 1 {
		t.Fatalf("TakeAnswers: %d bad, %v; want 1 bad, no error", bad, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("answers taken:\n  %+v\nwant\n  %+v", got, want)
	}
	// One answer published, then taken, per run: no allocation.
	one := func(*Respond) {}
	allocs := testing.AllocsPerRun(200, func() {
		c.Answer(&want[0])
		if n, err := d.TakeAnswers(one); n != 0 || err != nil {
			t.Fatal(n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per answer taken, want 0", allocs)
	}
}

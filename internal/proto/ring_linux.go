package proto

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/schedtick"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// The permission ring (version 5, docs/protocol.md "The permission ring"): shared memory that
// carries a permission client's events (daemon → client) and its answers (client → daemon)
// instead of the socket, which stays for everything else and for the end of the connection.
//
// One sealed memfd, created by the daemon (its size can never change: a shrunk file would
// fault whoever reads it), mapped by both; a pipe whose write end the client holds and
// whose read end the daemon's event loop polls, as it polls the socket today. Layout:
//
//	offset         size       written by  what
//	0              4          daemon      dHead: bytes of records published in the down ring
//	64             4          client      dTail: bytes of records the client has consumed
//	128            4          client      cSleep: nonzero while the client sleeps (FUTEX_WAIT on dHead)
//	192            4          client      uHead: answers published in the up ring
//	256            4          daemon      uTail: answers the daemon has taken
//	320            4          daemon      dWantAns: nonzero: kick the pipe after an answer
//	384            4          daemon      dWantRoom: nonzero: kick the pipe after consuming
//	448            4          either      closed: nonzero once either side is done
//	RingCtrl       RingDown   daemon      down ring: records [u32 length][frame][pad to 8];
//	                                      length ringWrap: the rest up to the end is unused
//	RingCtrl+RingDown RingUp  client      up ring: RingUpSlots answers of RingAnswerSize bytes
//
// Counters are free-running uint32s (positions modulo the ring's size). Soundness (the
// daemon trusts nothing in the pages, docs/security.md "The permission ring"): the daemon
// keeps its own dHead, dTail and uTail and only ever reads the client's words: a dTail or
// uHead out of the range it could legitimately hold breaks the ring for good (the daemon
// stops using it: the client's events reach their deadline, as for a client that stops
// reading its socket); each answer slot is copied once and decoded from the copy
// (DecodeAnswer); an answer is acted on only for an event pending for this client (the
// daemon's respond, as for a socket Respond). The daemon never waits on the pages: it only
// stores, loads and FUTEX_WAKEs; only the client sleeps.
//
// Full barriers: every store that the other side's wake-up depends on — a store of one word
// followed by a look at another: dHead then cSleep, cSleep then dHead and closed, uHead then
// dWantAns, dWantAns then uHead, dTail then dWantRoom, dWantRoom then dTail, closed then
// cSleep — is a Swap. Each pair is Dekker's: the store must be visible before the look, a
// full barrier. A Store gives one in a normal build (XCHG on amd64, as Swap) but not under
// the race detector, whose stores are release-only (__tsan_go_atomic32_store, mo_release: a
// plain MOV, which x86 lets a later load pass): there both sides could miss each other and
// an answer wait for its deadline (daemon TestRingClientLibrary: 3 hangs in 60 runs under
// -race with Stores, none in 400 with Swaps). A Swap is a locked exchange in both builds,
// at no cost in a normal one.
const (
	RingCtrl       = 4096
	RingDown       = 256 << 10
	RingUpSlots    = 1024
	RingAnswerSize = 16
	RingUp         = RingUpSlots * RingAnswerSize
	RingSize       = RingCtrl + RingDown + RingUp

	RingOffDHead     = 0
	RingOffDTail     = 64
	RingOffCSleep    = 128
	RingOffUHead     = 192
	RingOffUTail     = 256
	RingOffDWantAns  = 320
	RingOffDWantRoom = 384
	RingOffClosed    = 448

	ringWrap = 0xffffffff
	// ringMaxRecord bounds one record: the largest event frame fits three times.
	ringMaxRecord = RingDown / 3
)

// ErrRingBroken says the client wrote a position the daemon could not have let it reach: the
// daemon no longer uses the ring.
var ErrRingBroken = errors.New("permission ring: the client wrote an impossible position")

type ringWords struct {
	dHead, dTail, cSleep, uHead, uTail, dWantAns, dWantRoom, closed *atomic.Uint32
}

func wordsOf(mem []byte) ringWords {
	return ringWords{
		dHead: sys.Word32(mem, RingOffDHead), dTail: sys.Word32(mem, RingOffDTail),
		cSleep: sys.Word32(mem, RingOffCSleep), uHead: sys.Word32(mem, RingOffUHead),
		uTail: sys.Word32(mem, RingOffUTail), dWantAns: sys.Word32(mem, RingOffDWantAns),
		dWantRoom: sys.Word32(mem, RingOffDWantRoom), closed: sys.Word32(mem, RingOffClosed),
	}
}

// answer flags.
const answerCache = 1

// DecodeAnswer decodes one up-ring slot (a copy the caller owns) into a Respond with no
// request id. It refuses (CodeBadField) an id 0, a verdict other than allow or deny, unknown
// flags, an errno above MaxErrno or nonzero reserved bytes — the checks of a socket Respond.
func DecodeAnswer(b []byte) (*Respond, error) {
	m := new(Respond)
	if err := decodeAnswerInto(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeAnswerInto is DecodeAnswer into m, which it overwrites whole (what it holds is not
// valid if it fails): the daemon's TakeAnswers decodes every answer into one Respond of its
// own, with no allocation per answer.
func decodeAnswerInto(b []byte, m *Respond) error {
	if len(b) != RingAnswerSize {
		return errorf(CodeTruncated, "ring answer of %d bytes, want %d", len(b), RingAnswerSize)
	}
	*m = Respond{
		EventID: binary.LittleEndian.Uint64(b[0:]),
		Verdict: fsevent.Verdict(b[8]),
		Errno:   syscall.Errno(binary.LittleEndian.Uint16(b[10:])),
	}
	flags := b[9]
	switch {
	case flags&^answerCache != 0:
		return errorf(CodeBadField, "ring answer: unknown flags %#x", flags&^answerCache)
	case binary.LittleEndian.Uint32(b[12:]) != 0:
		return errorf(CodeBadField, "ring answer: reserved bytes not zero")
	}
	m.Cache = flags&answerCache != 0
	if err := m.check(); err != nil {
		return err
	}
	return nil
}

// appendAnswer encodes r (built by NewRespond: always valid) into an up-ring slot.
func putAnswer(b []byte, r *Respond) {
	binary.LittleEndian.PutUint64(b[0:], r.EventID)
	b[8] = byte(r.Verdict)
	var f byte
	if r.Cache {
		f |= answerCache
	}
	b[9] = f
	binary.LittleEndian.PutUint16(b[10:], uint16(r.Errno))
	binary.LittleEndian.PutUint32(b[12:], 0)
}

// DaemonRing is the daemon's side of one client's ring. Put and Publish are called by the
// session's sender (under its sendMu); Answers, NoteRoom and the kick pipe by the event
// loop's callback (one goroutine). The two halves share no field but broken and the mapping.
type DaemonRing struct {
	mem   []byte
	w     ringWords
	memfd int // the client's copy is sent in RingGrant; closed by Close
	kickR int // polled by the daemon's loop
	kickW int // the client's: sent in RingGrant, then closed here

	broken atomic.Bool

	// The sender's (sendMu).
	head, tail uint32
	// The loop's.
	uTail uint32
	kbuf  [64]byte
	ans   Respond // TakeAnswers decodes each answer here: fn may not keep it
}

// NewDaemonRing creates a ring and its kick pipe. A kernel without sealed memfds is an error
// matching sys.ErrNotSupported: the client then stays on the socket.
func NewDaemonRing() (*DaemonRing, error) {
	fd, err := sys.MemfdSealed("fsnotifyd-ring", RingSize)
	if err != nil {
		return nil, err
	}
	mem, err := sys.MmapShared(fd, RingSize)
	if err != nil {
		sys.Close(fd)
		return nil, err
	}
	r, w, err := sys.KickPipe()
	if err != nil {
		sys.Munmap(mem)
		sys.Close(fd)
		return nil, err
	}
	d := &DaemonRing{mem: mem, w: wordsOf(mem), memfd: fd, kickR: r, kickW: w}
	d.w.dWantAns.Store(1) // the first answer kicks
	return d, nil
}

// Grant returns the RingGrant that hands the client the memfd and the pipe's write end
// (duplicates: the message owns them).
func (r *DaemonRing) Grant(req uint64) (*RingGrant, error) {
	m, err := sys.Dup(r.memfd)
	if err != nil {
		return nil, err
	}
	k, err := sys.Dup(r.kickW)
	if err != nil {
		sys.Close(m)
		return nil, err
	}
	return &RingGrant{Req: req, Mem: NewFD(m), Kick: NewFD(k)}, nil
}

// KickFd is the pipe's read end, for the daemon's event loop.
func (r *DaemonRing) KickFd() int { return r.kickR }

// Broken reports whether the client broke the ring.
func (r *DaemonRing) Broken() bool { return r.broken.Load() }

// refreshTailLocked takes the client's dTail if it lies between the tail last taken and the
// head (wrap-aware), else breaks the ring.
func (r *DaemonRing) refreshTailLocked() bool {
	t := r.w.dTail.Load()
	if r.head-t > r.head-r.tail {
		r.broken.Store(true)
		return false
	}
	r.tail = t
	return true
}

// Put appends one frame as a record, without publishing it (Publish), and reports whether it
// fit. A frame that cannot fit even in the empty ring is an error. Sender only.
func (r *DaemonRing) Put(frame []byte) (bool, error) {
	if r.broken.Load() {
		return false, ErrRingBroken
	}
	rec := (4 + len(frame) + 7) &^ 7
	if rec > ringMaxRecord {
		return false, errorf(CodeTooLarge, "frame of %d bytes does not fit the permission ring", len(frame))
	}
	pos := int(r.head % RingDown)
	need := rec
	if pos+rec > RingDown {
		need += RingDown - pos // wrapped: the rest of the ring is skipped
	}
	if RingDown-int(r.head-r.tail) < need {
		if !r.refreshTailLocked() {
			return false, ErrRingBroken
		}
		if RingDown-int(r.head-r.tail) < need {
			return false, nil
		}
	}
	down := r.mem[RingCtrl : RingCtrl+RingDown]
	if pos+rec > RingDown {
		binary.LittleEndian.PutUint32(down[pos:], ringWrap)
		r.head += uint32(RingDown - pos)
		pos = 0
	}
	binary.LittleEndian.PutUint32(down[pos:], uint32(len(frame)))
	copy(down[pos+4:], frame)
	r.head += uint32(rec)
	return true, nil
}

// Publish makes the records put so far visible and wakes the client if it said it sleeps;
// it reports whether there was anything to publish. It never waits. Sender only.
func (r *DaemonRing) Publish() bool {
	if r.w.dHead.Load() == r.head {
		return false
	}
	r.w.dHead.Swap(r.head) // a Swap: see "Full barriers" above
	if r.w.cSleep.Load() != 0 {
		sys.FutexWake(r.w.dHead, 1)
	}
	return true
}

// WantRoom asks the client to kick the pipe when it next consumes; the caller then tries its
// Put once more (a consumption between the failed Put and the request is not kicked).
// Sender only.
func (r *DaemonRing) WantRoom() { r.w.dWantRoom.Swap(1) } // a Swap: "Full barriers"

// Answers drains the kick pipe and takes the answers (TakeAnswers: fn may not keep its
// Respond). eof says the client
// closed its end of the pipe. Loop only.
func (r *DaemonRing) Answers(fn func(*Respond)) (bad int, eof bool, err error) {
	eof, err = sys.DrainKicks(r.kickR, r.kbuf[:])
	bad, terr := r.TakeAnswers(fn)
	if terr != nil {
		err = terr
	}
	return bad, eof, err
}

// ArmKick asks the client to kick the pipe after its next answer, for the daemon's loop that
// is about to sleep, and reports whether answers are published already (then it takes the
// request back: the caller takes them, TakeAnswers, instead of sleeping). The request is
// made before the look (the client publishes, then looks at the request): an answer comes
// either before the look or with a kick. Loop only.
func (r *DaemonRing) ArmKick() (pending bool) {
	if r.broken.Load() {
		return false
	}
	r.w.dWantAns.Swap(1) // a Swap: "Full barriers"
	if r.w.uHead.Load() != r.uTail {
		r.w.dWantAns.Store(0)
		return true
	}
	return false
}

// DisarmKick takes back ArmKick's request once the loop is awake: answers published while it
// is busy cost the client no write and the loop no read; it looks at them before it sleeps
// (ArmKick). Only the loop sets the word and the client only clears it (Answer's Swap, when
// it kicks), so a word found clear needs no store: after a kick, the wake-up most often, the
// loop reads the line the client wrote instead of taking it back with a locked exchange.
// Loop only.
func (r *DaemonRing) DisarmKick() {
	if r.w.dWantAns.Load() != 0 {
		r.w.dWantAns.Store(0)
	}
}

// TakeAnswers calls fn for each valid answer published since the last call (at most
// RingUpSlots); a slot that does not decode is skipped (its event reaches its deadline) and
// counted in bad. fn must not keep its Respond: the next answer is decoded into it. Answers published meanwhile wait for the next call (it never loops on the
// client's pace): the loop makes one before it sleeps (ArmKick finds them). Loop only.
func (r *DaemonRing) TakeAnswers(fn func(*Respond)) (bad int, err error) {
	if r.broken.Load() {
		return 0, ErrRingBroken
	}
	p := r.w.uHead.Load()
	if p-r.uTail > RingUpSlots {
		r.broken.Store(true)
		return 0, ErrRingBroken
	}
	up := r.mem[RingCtrl+RingDown:]
	var slot [RingAnswerSize]byte
	for r.uTail != p {
		off := int(r.uTail%RingUpSlots) * RingAnswerSize
		copy(slot[:], up[off:off+RingAnswerSize]) // once: what is decoded cannot change
		r.uTail++
		if derr := decodeAnswerInto(slot[:], &r.ans); derr == nil {
			fn(&r.ans)
		} else {
			bad++
		}
	}
	r.w.uTail.Store(r.uTail)
	return bad, nil
}

// Close tells the client the ring is done and wakes it; it unmaps and closes everything.
// Call it once neither the sender nor the loop can use the ring.
func (r *DaemonRing) Close() {
	r.w.closed.Store(1)
	sys.FutexWake(r.w.dHead, 1<<30)
	sys.Munmap(r.mem)
	sys.Close(r.memfd)
	sys.Close(r.kickR)
	sys.Close(r.kickW)
	r.mem = nil
}

// DecodeRingFrame decodes one record of the down ring: an Event (into into, reusing *last as
// Conn.ReadMsgInto does) or an Overflow, which carry no fds there; any other message is an
// error (CodeUnexpected).
func DecodeRingFrame(frame []byte, into *Event, last *string) (Msg, error) {
	h, err := DecodeHeader(frame)
	if err != nil {
		return nil, err
	}
	if h.Type != TypeEvent && h.Type != TypeOverflow {
		return nil, errorf(CodeUnexpected, "%s in the permission ring: only events and overflows go there", h.Type)
	}
	return decodeFrame(frame, nil, into, last)
}

// stopRetry is how long Stop waits before it wakes the reader again, and stopGiveUp how long
// it keeps trying (see Stop).
const (
	stopRetry  = 50 * time.Microsecond
	stopGiveUp = 2 * time.Second
)

// ClientRing is a client's side of its ring: one reader (Next) and any number of answerers
// (Answer).
type ClientRing struct {
	mem  []byte
	w    ringWords
	kick int

	tail   uint32         // the reader's
	tick   schedtick.Tick // the reader's: it lives in FUTEX_WAIT as a socket reader in poll (internal/schedtick)
	sleeps atomic.Uint32  // FUTEX_WAITs the reader entered: for tests (an idle reader sleeps once)

	mu    sync.Mutex // answerers, Stop and Close: held while they touch the mapping
	uHead uint32
}

// NewClientRing maps the memfd of a RingGrant (checking that its size is sealed) and takes
// ownership of both descriptors (the memfd is closed once mapped).
func NewClientRing(g *RingGrant) (*ClientRing, error) {
	mfd, kfd := g.Mem.Int(), g.Kick.Int()
	if mfd < 0 || kfd < 0 {
		CloseFDs(g)
		return nil, errors.New("permission ring: grant without its descriptors")
	}
	if err := sys.CheckSealedSize(mfd, RingSize); err != nil {
		CloseFDs(g)
		return nil, err
	}
	mem, err := sys.MmapShared(mfd, RingSize)
	g.Mem.Close()
	if err != nil {
		g.Kick.Close()
		return nil, err
	}
	w := wordsOf(mem)
	return &ClientRing{mem: mem, w: w, kick: g.Kick.Take(), tail: w.dHead.Load(), uHead: w.uHead.Load()}, nil
}

// Next calls fn for each frame published and not consumed yet, sleeping (FUTEX_WAIT) while
// there is none, until the ring is closed (by either side: it then returns false). fn must
// not keep the frame: the daemon reuses its bytes once Next returns.
func (r *ClientRing) Next(fn func(frame []byte) error) (bool, error) {
	for {
		if r.w.closed.Load() != 0 {
			return false, nil
		}
		h := r.w.dHead.Load()
		if h == r.tail {
			r.w.cSleep.Swap(1) // a Swap: "Full barriers"
			if r.w.dHead.Load() == h && r.w.closed.Load() == 0 {
				r.tick.MaybeYield()
				r.sleeps.Add(1)
				if err := sys.FutexWait(r.w.dHead, h); err != nil {
					return false, err
				}
			}
			r.w.cSleep.Store(0)
			continue
		}
		down := r.mem[RingCtrl : RingCtrl+RingDown]
		for r.tail != h {
			pos := int(r.tail % RingDown)
			if pos+4 > RingDown {
				return false, errors.New("permission ring: record header past the end")
			}
			n := binary.LittleEndian.Uint32(down[pos:])
			if n == ringWrap {
				if h-r.tail < uint32(RingDown-pos) {
					return false, errors.New("permission ring: a wrap past the head")
				}
				r.tail += uint32(RingDown - pos)
				continue
			}
			rec := (4 + n + 7) &^ 7
			if int(n) > ringMaxRecord || pos+4+int(n) > RingDown || h-r.tail < rec {
				return false, errors.New("permission ring: record out of bounds")
			}
			if err := fn(down[pos+4 : pos+4+int(n)]); err != nil {
				return false, err
			}
			r.tail += rec
		}
		r.w.dTail.Swap(r.tail) // a Swap: "Full barriers"
		if r.w.dWantRoom.Load() != 0 && r.w.dWantRoom.Swap(0) != 0 {
			sys.Kick(r.kick)
		}
		return true, nil
	}
}

// Answer publishes an answer and kicks the daemon if it asked; it reports false, having done
// nothing, when the up ring is full (answer on the socket then).
func (r *ClientRing) Answer(m *Respond) bool {
	r.mu.Lock()
	if r.mem == nil || r.uHead-r.w.uTail.Load() >= RingUpSlots {
		r.mu.Unlock()
		return false
	}
	off := RingCtrl + RingDown + int(r.uHead%RingUpSlots)*RingAnswerSize
	putAnswer(r.mem[off:off+RingAnswerSize], m)
	r.uHead++
	r.w.uHead.Swap(r.uHead) // a Swap: "Full barriers"
	// Under mu: Close unmaps under it.
	if r.w.dWantAns.Load() != 0 && r.w.dWantAns.Swap(0) != 0 {
		sys.Kick(r.kick)
	}
	r.mu.Unlock()
	return true
}

// Stop makes Next return false (from any goroutine): it marks the ring closed and wakes the
// reader until the reader is either woken or out of its way to sleep.
//
// One wake is not enough: the futex word is d_head, which closing does not change, so a wake
// that lands after the reader's last look at the closed word and before its FUTEX_WAIT is
// lost, and the reader would sleep on with nothing to end it. The reader stores cSleep before
// that look, and Stop stores closed before it looks at cSleep (Swaps, "Full barriers": one
// of the two sees the other's store), so when Stop finds cSleep zero, the
// reader's next look sees closed; when a wake finds the reader queued (woken > 0), it ends
// that sleep. Otherwise the reader is between the two, a few instructions: Stop tries again
// after stopRetry. This is why an idle reader can sleep without a timeout (it wakes for
// nothing). The daemon's own Close wakes once: its wake may be lost the same way, and then
// the client's readLoop, which sees the connection end, calls Stop. stopGiveUp bounds Stop
// against a daemon that writes cSleep itself (it can only keep its own client's reader
// asleep, which it could anyway by not publishing).
//
// Each look at the shared words is made under mu and only while the ring is mapped: the
// reader closes the ring (Close, which unmaps it) as soon as its Next returns, which can be
// while another goroutine's Stop is still at work (the client's readLoop stops the ring when
// the connection ends, and the daemon, closing both, also ends Next), and a Stop that touched
// the words after that faulted on the unmapped page. A Stop after Close does nothing.
func (r *ClientRing) Stop() {
	give := time.Now().Add(stopGiveUp)
	for first := true; ; first = false {
		r.mu.Lock()
		if r.mem == nil {
			r.mu.Unlock()
			return
		}
		if first {
			r.w.closed.Swap(1) // a Swap: "Full barriers"
		}
		woken, err := sys.FutexWake(r.w.dHead, 1<<30)
		done := err != nil || woken > 0 || r.w.cSleep.Load() == 0 || time.Now().After(give)
		r.mu.Unlock()
		if done {
			return
		}
		time.Sleep(stopRetry)
	}
}

// Shared returns the mapping itself: for tests that play a hostile client (they write the
// words at the RingOff offsets and the slots directly).
func (r *ClientRing) Shared() []byte { return r.mem }

// Kick kicks the daemon's pipe, as Answer does when asked: for tests.
func (r *ClientRing) Kick() { sys.Kick(r.kick) }

// Close unmaps the ring and closes the pipe; call it once Next has returned and no Answer
// can run (Answer after Close reports false).
func (r *ClientRing) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mem == nil {
		return
	}
	sys.Munmap(r.mem)
	sys.Close(r.kick)
	r.mem = nil
}

//go:build linux

package daemon

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/evloop"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// The permission ring (protocol version 5, proto's ring_linux.go, docs/protocol.md "The
// permission ring"): a permission client read inline (inline.go) that asks for it gets its
// events through shared memory instead of its socket, and may answer through it; the socket
// stays for every other request and reply and for the end of the connection.
//
// What the daemon does with the shared pages, and why that is sound (docs/security.md "The
// permission ring"):
//   - It never waits on them: the sender only stores records and FUTEX_WAKEs the client if it
//     said it sleeps (a lie costs the daemon one wake per batch); the loop reads the kick
//     pipe's read end, a description the client does not share, without waiting.
//   - It trusts no word the client writes: proto.DaemonRing keeps its own head and tails and
//     breaks the ring for good on an impossible position; each answer is copied once and
//     decoded from the copy, then goes through respond like a socket Respond: an id that is
//     not pending for this client (never sent, answered already, past its deadline) changes
//     nothing.
//   - A client that stops reading, scribbles its ring, stops (SIGSTOP) or dies has its events
//     wait as a client that stops reading its socket: the records stay in the ring or in
//     leftover, the engine queue behind them, and its pending events get the deadline's
//     verdict (the close verdict once its connection ends).
//   - Order: one FIFO ring written under sendMu by forward and writeLoop, as the socket was:
//     the per-opener order holds (TestPermissionOrderPerOpener, TestRingOrderPerOpener).
//
// Ownership: ring is set in admit, before any event can be queued, and closed by runInline
// once the loop no longer calls onKick (Unregister) and writeLoop has returned; ringOff,
// under sendMu, keeps forward from writing once it is closing.

// ringEnabled lets tests turn the ring off daemon-wide (a daemon without it answers
// WantRing with CodeNotSupported).
var ringEnabled = true

// ringState is a session's ring.
type ringState struct {
	ring        *proto.DaemonRing
	ringReg     atomic.Pointer[evloop.Registration] // the kick pipe's, on the backend's loop (set once onKick may already run)
	ringOff     bool                                // under sendMu: closing, write nothing more
	ringStalled atomic.Bool                         // writeLoop waits for room: onKick kicks it
	ringBad     atomic.Uint64                       // answers that did not decode (skipped)
	ringBroken  atomic.Bool                         // logged once
	rbuf        []byte                              // under sendMu: one frame's encoding
	// pubPosted (under sendMu): forward put records and posted publishRing, which has not
	// run yet; publishFn is c.publishRing, bound once. publishes counts the publications
	// that published something (under sendMu; for the tests).
	pubPosted bool
	publishFn func()
	publishes uint64
	ansAt     time.Duration // the loop's: when the current take of answers began (sinceStart; onKick, ringBeforeWait)
}

// offerRing answers a Hello that asked for the ring: a RingGrant, or a Result saying why not.
// Called by admit, before the session runs.
func (c *session) offerRing(req uint64) error {
	why := ""
	switch {
	case !ringEnabled:
		why = "the permission ring is disabled in this daemon"
	case !c.direct:
		why = "the permission ring is for permission clients (content or pre-content class)"
	case c.eventFDs:
		why = "permission events with their fds go through the socket"
	case c.s.threadPerClient:
		why = "the daemon reads each client on a thread of its own (thread_per_client)"
	}
	if why == "" {
		r, err := proto.NewDaemonRing()
		if err != nil {
			why = "the kernel gave no shared memory for the ring: " + err.Error()
		} else {
			g, err := r.Grant(req)
			if err != nil {
				r.Close()
				why = err.Error()
			} else {
				err = c.conn.WriteMsg(g)
				proto.CloseFDs(g)
				if err != nil {
					r.Close()
					return err
				}
				c.ring = r
				return nil
			}
		}
	}
	return c.conn.WriteMsg(proto.ResultFor(req, 0, proto.Errorf(proto.CodeNotSupported, "%s", why)))
}

// ringWriteLocked puts msgs in the ring, in order, and publishes them (writeLoop's); it
// returns how many it put. It stops, with no error, where the ring is full or broken (what
// is left waits, as on a socket that is not read). Needs sendMu.
func (c *session) ringWriteLocked(msgs []proto.Msg) (int, error) {
	if c.ringOff {
		return 0, errRingClosed
	}
	defer c.publishLocked()
	return c.ringPutLocked(msgs)
}

// ringForwardLocked is forward's write to the ring: msgs are put now and published once the
// loop is done with what it is doing (publishRing, posted): the events of one kernel batch,
// each forwarded as the engine queues it, are published together, with one wake of the
// client, instead of one each (a client woken by the first, on the loop's core, answered it
// before the loop forwarded the next: h30-daemonsys, TestRingOnePublishPerBatch). Needs sendMu.
func (c *session) ringForwardLocked(msgs []proto.Msg) (int, error) {
	if c.ringOff {
		return 0, errRingClosed
	}
	n, err := c.ringPutLocked(msgs)
	if !c.pubPosted {
		c.pubPosted = true
		if c.publishFn == nil {
			c.publishFn = c.publishRing
		}
		c.s.b.Loop().Post(c.publishFn) // on the loop: after the current callback, no wake
	}
	return n, err
}

// publishRing publishes what forward put. On the loop (posted by ringForwardLocked), which
// never waits for sendMu: if another holds it (writeLoop, or endRing), writeLoop publishes
// at the end of its round, which the kick asks for (endRing: nothing is published any more).
func (c *session) publishRing() {
	if !c.sendMu.TryLock() {
		c.kickWriter()
		return
	}
	c.publishPostedLocked()
	c.sendMu.Unlock()
}

// publishPostedLocked publishes what forward put since it posted publishRing (publishRing's,
// and writeLoop's at the end of a round when publishRing found sendMu held). Needs sendMu.
func (c *session) publishPostedLocked() {
	c.pubPosted = false
	if !c.ringOff {
		c.publishLocked()
	}
}

// publishLocked publishes what was put (and counts it). Needs sendMu, ring not off.
func (c *session) publishLocked() {
	if c.ring.Publish() {
		c.publishes++
	}
}

// ringPutLocked puts msgs in the ring, in order, without publishing them (ringWriteLocked).
// Needs sendMu, ring not off.
func (c *session) ringPutLocked(msgs []proto.Msg) (int, error) {
	for i, m := range msgs {
		b, _, err := proto.Append(c.rbuf[:0], nil, m)
		if err != nil {
			return i, err
		}
		c.rbuf = b
		ok, err := c.ring.Put(b)
		if err != nil && !errors.Is(err, proto.ErrRingBroken) {
			return i, err
		}
		if !ok {
			return i, nil
		}
	}
	return len(msgs), nil
}

var errRingClosed = errors.New("permission ring closed")

// tryWriteLocked writes msgs without waiting, to the ring or the socket; it returns how many
// it wrote. Needs sendMu.
func (c *session) tryWriteLocked(msgs []proto.Msg) (int, error) {
	if c.ring != nil {
		return c.ringForwardLocked(msgs)
	}
	return c.conn.TryWriteMsgs(msgs...)
}

// ringWaitLocked is writeLoop's write to the ring: what does not fit stays in leftover and
// writeLoop waits for a kick (onKick, once the client consumed). It reports false if the
// session must end. Needs sendMu.
func (c *session) ringWaitLocked(msgs []proto.Msg) bool {
	w, err := c.ringWriteLocked(msgs)
	if err == nil && w < len(msgs) {
		// Ask for a kick, then try once more: the client may have consumed in between.
		c.ringStalled.Store(true)
		c.ring.WantRoom()
		var w2 int
		w2, err = c.ringWriteLocked(msgs[w:])
		w += w2
	}
	for _, m := range msgs[:w] {
		proto.CloseFDs(m)
	}
	c.recycleLocked(msgs[:w])
	if err != nil {
		return false
	}
	if w < len(msgs) {
		c.leftover = append(c.leftover[:0:0], msgs[w:]...)
		return true
	}
	c.ringStalled.Store(false)
	return true
}

// onKick runs on the loop when the client kicked the pipe (after an answer, if the loop
// asked before it slept, ringBeforeWait; after consuming, if writeLoop asked for room): it
// takes the answers published since, and wakes writeLoop if it waits for room.
func (c *session) onKick() {
	c.ansAt = c.s.sinceStart()
	bad, eof, err := c.ring.Answers(c.ringAnswer)
	c.tookAnswers(bad, eof, err)
}

// ringBeforeWait is the kick pipe's Before hook (evloop "Wait hooks"), run just before the
// loop sleeps: it asks the client for a kick on its next answer, unless answers are published
// already, which it takes instead (at most a ring's worth: if more came meanwhile, the loop
// calls this again, and polls its other descriptors without sleeping first if this took
// answers twice since its last poll: evloop "Wait hooks"). It reports whether it took any. The kick is taken back once the loop wakes (DisarmKick, the After hook): answers
// that come while it is busy are taken here, with no pipe write, read or wake-up.
func (c *session) ringBeforeWait() bool {
	if !c.ring.ArmKick() {
		return false
	}
	c.ansAt = c.s.sinceStart()
	bad, err := c.ring.TakeAnswers(c.ringAnswer)
	c.tookAnswers(bad, false, err)
	return true
}

// tookAnswers finishes a take of the ring's answers. On the loop.
func (c *session) tookAnswers(bad int, eof bool, err error) {
	if bad > 0 {
		c.ringBad.Add(uint64(bad))
	}
	if err != nil || eof {
		// Broken (its events now wait for their deadline), or the client closed its end:
		// nothing more to read here; the socket says when the connection ends.
		if reg := c.ringReg.Load(); reg != nil { // nil: registering, and called again after
			reg.Pause()
		}
		if err != nil {
			c.ringBroken.Store(true) // logged by endRing: the loop never waits on a log write
		}
	}
	if c.ringStalled.Load() {
		c.kickWriter()
	}
}

// ringAnswer acts on one answer from the ring as on a Respond without a request id: an
// answer for an event not pending for this client is refused by respond (and not reported:
// there is no request to reply to). The take's one clock reading (ansAt) stands for each of
// its answers' times, for idle and for the verdict latency: two readings per answer fewer.
func (c *session) ringAnswer(m *proto.Respond) {
	c.touchAt(c.ansAt)
	c.respondAt(m, c.ansAt)
}

// registerRing has the loop poll the kick pipe. Called by runInline.
func (c *session) registerRing() error {
	reg, err := c.s.b.Loop().RegisterHooks(c.ring.KickFd(), c.onKick,
		evloop.Hooks{Before: c.ringBeforeWait, After: c.ring.DisarmKick})
	if err != nil {
		return err
	}
	c.ringReg.Store(reg)
	return nil
}

// endRing releases the ring once nothing can use it: the loop no longer calls onKick
// (unregistered) and writeLoop has returned; forward, which may still run from the backend,
// finds ringOff. It tells the client (the ring's closed word, and a wake).
func (c *session) endRing() {
	if c.ring == nil {
		return
	}
	if reg := c.ringReg.Swap(nil); reg != nil {
		reg.Unregister() // on a failed start (runInline unregisters it otherwise)
	}
	c.sendMu.Lock()
	c.ringOff = true
	c.sendMu.Unlock()
	c.ring.Close()
	if bad, broken := c.ringBad.Load(), c.ringBroken.Load(); bad > 0 || broken {
		c.s.log.Warn("client misused its permission ring: the events it did not answer got the deadline's verdict",
			"client", c.id, "name", c.name, "broke it", broken, "answers that were no answer", bad)
	}
}

//go:build linux

package daemon

import (
	"sync"

	"github.com/fsnotifyd/fsnotifyd/internal/evloop"
	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// Permission clients are read "inline": their sockets are registered with the backend's event
// loop (backend.Backend.Loop), the thread that reads the kernel's permission events. A
// client's answer then wakes the thread that sent it the event, which reads the answer
// (onReadable) and hands it to the engine (Respond); the engine posts the walk's continuation
// to the loop, which runs it as soon as onReadable returns — the next group, then the kernel
// answer — with no second thread to wake on another CPU (bench/relayfloor: the event-loop
// shape is about 0.75 of the two-thread one's per-open time on a 2-vCPU VM).
// docs/design/fastpath.md follows one event through it.
//
// The loop only reads (never waits: proto.Conn.TryReadMsg) and acts on Respond itself; every
// other request goes, in order, to the client's own goroutine (inlineLoop), which carries it
// out and writes its reply, as readLoop does for other clients. When that goroutine falls
// behind (its queue is full), the loop stops polling the client's socket (the registration is
// paused) until the goroutine has caught up: a client that floods requests slows itself only.
//
// Locks: inlineMu is held for one turn of reading and answering (which never waits: no
// socket wait, no channel send that blocks), and the loop only TryLocks it: it never waits
// for a client's goroutine. Its place in the lock tree is in doc.go.

// inlineItem is what the loop hands a client's goroutine: a request to carry out, a reply to
// write, or the end of the connection.
type inlineItem struct {
	m     proto.Msg // a request
	reply proto.Msg // a reply the loop could not write without waiting
	err   error     // reading failed: the connection ends
}

const inlineQueue = 64

// inlineState is a client's, for inline reading.
type inlineState struct {
	reqs     chan inlineItem      // to inlineLoop, in order
	resume   chan struct{}        // capacity 1: the loop paused; see resumeIfPaused
	inlineMu lockorder.Mutex      // lockInline
	reg      *evloop.Registration // the socket's on the loop; under inlineMu
	paused   bool                 // not polled: reqs was full, or reading ended
	stash    *inlineItem          // the item that did not fit, handled before resuming
	ended    bool                 // inlineLoop has returned: nothing more may be handed over
}

// runInline serves a permission client whose socket the backend's loop reads. It reports
// false, having done nothing, if the loop takes no more descriptors (the backend closed).
func (c *session) runInline() bool {
	fd, err := c.conn.RawFd()
	if err != nil {
		c.close()
		return true
	}
	c.reqs = make(chan inlineItem, inlineQueue)
	c.resume = make(chan struct{}, 1)
	c.inlineMu.Lock() // onReadable, which may run at once, waits for reg (TryLock)
	c.reg, err = c.s.b.Loop().Register(fd, c.onReadable)
	c.inlineMu.Unlock()
	if err == nil && c.ring != nil {
		if err = c.registerRing(); err != nil {
			c.reg.Unregister()
		}
	}
	if err != nil {
		if c.ring != nil {
			// Its answers could only be read on the loop: end the connection (the client
			// may connect again) rather than serve a ring nobody reads.
			c.close()
			c.endRing()
			return true
		}
		return false
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	c.inlineLoop()
	c.reg.Unregister() // then the loop no longer reads the socket, which close closes
	if reg := c.ringReg.Swap(nil); reg != nil {
		reg.Unregister() // nor the kick pipe, which endRing closes
	}
	c.inlineMu.Lock()
	c.ended = true // nothing more is handed over
	stash := c.stash
	c.stash = nil
	c.inlineMu.Unlock()
	c.close()
	wg.Wait()
	c.endRing()
	// Release what was handed over and never handled (the fds of an AddMark).
	if stash != nil {
		proto.CloseFDs(stash.m)
	}
	for {
		select {
		case it := <-c.reqs:
			proto.CloseFDs(it.m)
		default:
			return true
		}
	}
}

// inlineLoop carries out, in order, what the loop hands over, until the connection ends.
func (c *session) inlineLoop() {
	for {
		select {
		case it := <-c.reqs:
			if c.handleItem(it) {
				return
			}
		case <-c.resume:
		case <-c.done:
			return
		}
		if end := c.resumeIfPaused(); end {
			return
		}
	}
}

// handleItem reports whether the connection ends.
func (c *session) handleItem(it inlineItem) (end bool) {
	switch {
	case it.err != nil:
		c.readFailed(it.err)
		return true
	case it.reply != nil:
		return c.conn.WriteMsg(it.reply) != nil
	}
	return c.handle(it.m)
}

// resumeIfPaused has the loop poll the client's socket again once everything handed over
// before the pause is handled (then the stashed item, which came after it), after taking
// what was received before the pause and is still buffered (poll does not see that).
func (c *session) resumeIfPaused() (end bool) {
	c.inlineMu.Lock()
	// Under inlineMu, under which the loop hands over: once paused, reqs only shrinks.
	if !c.paused || len(c.reqs) > 0 {
		c.inlineMu.Unlock()
		return false
	}
	stash := c.stash
	c.stash = nil
	c.inlineMu.Unlock()
	if stash != nil && c.handleItem(*stash) {
		return true
	}
	c.inlineMu.Lock()
	defer c.inlineMu.Unlock()
	if c.paused = false; !c.takeLocked(false) {
		return false // paused again: the queue filled
	}
	c.reg.Resume()
	return false
}

// onReadable runs on the loop when the client's socket is readable (or hung up). It never
// waits for the client's lock: if inlineLoop holds it, it is resuming (and then takes what is
// buffered), and what is left in the socket poll reports again.
func (c *session) onReadable() {
	if !c.inlineMu.TryLock() {
		return
	}
	defer c.inlineMu.Unlock()
	if c.reg == nil || c.paused || c.ended {
		return // registering, or a call decided before a pause
	}
	c.takeLocked(true)
}

// takeLocked takes the messages the client sent, without waiting: it answers the engine for
// each Respond (the walk goes on on the loop once the caller returns: engine.Config.Executor)
// and hands the rest over. It takes every message already buffered and, with read, reads the
// socket once: poll says when there is more, so no read finds it empty. It reports false if
// it paused the client. Needs inlineMu.
func (c *session) takeLocked(read bool) bool {
	for {
		m, err := c.conn.BufferedMsg()
		if m == nil && err == nil {
			if !read {
				return true
			}
			read = false
			if m, err = c.conn.TryReadMsg(); m == nil && err == nil {
				return true
			}
		}
		if err != nil {
			if c.handOverLocked(inlineItem{err: err}) {
				c.pauseLocked() // nothing more to read: stop polling it
			}
			return false
		}
		if r, ok := m.(*proto.Respond); ok {
			err := c.respond(r)
			if r.Req != 0 || err != nil {
				reply := proto.ResultFor(r.Req, r.EventID, err)
				if n, _ := c.conn.TryWriteMsgs(reply); n == 0 && !c.handOverLocked(inlineItem{reply: reply}) {
					return false
				}
			}
			continue
		}
		if !c.handOverLocked(inlineItem{m: m}) {
			return false
		}
	}
}

// handOverLocked queues it for inlineLoop; if the queue is full, it stashes it and pauses
// the client. It reports whether the loop may go on reading. Needs inlineMu.
func (c *session) handOverLocked(it inlineItem) bool {
	select {
	case c.reqs <- it:
		return true
	default:
	}
	c.stash = &it
	c.pauseLocked()
	return false
}

// pauseLocked stops the loop from polling the client's socket and tells inlineLoop. Needs
// inlineMu.
func (c *session) pauseLocked() {
	c.paused = true
	c.reg.Pause()
	select {
	case c.resume <- struct{}{}:
	default:
	}
}

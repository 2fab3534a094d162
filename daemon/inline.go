//go:build linux

package daemon

import (
	"sync"
	"sync/atomic"

	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// Permission clients are read "inline": their sockets are waited for by the backend's FD
// group reader, the thread that reads the kernel's permission events (backend.ReaderHook). A
// client's answer then wakes the thread that sent it the event, which reads the answer and
// writes the verdict to the kernel at once — no second thread to wake on another CPU
// (bench/relayfloor: the event-loop shape is about 0.75 of the two-thread one's per-open time
// on a 2-vCPU VM).
//
// The reader only reads (never waits: proto.Conn.TryReadMsg) and acts on Respond itself;
// every other request goes, in order, to the client's own goroutine (inlineLoop), which
// carries it out and writes its reply, as readLoop does for other clients. When that goroutine
// falls behind (its queue is full), the reader stops waiting for the client's socket (it is
// paused) until the goroutine has caught up: a client that floods requests slows itself only.
//
// Lock order: client.inlineMu, then inlineSet.mu. inlineMu is held while a turn of reading
// and answering runs (which never waits: no socket wait, no channel send that blocks), and
// the reader only TryLocks it: it never waits for a client's goroutine.

// inlineItem is what the reader hands a client's goroutine: a request to carry out, a reply
// to write, or the end of the connection.
type inlineItem struct {
	m     proto.Msg // a request
	reply proto.Msg // a reply the reader could not write without waiting
	err   error     // reading failed: the connection ends
}

const inlineQueue = 64

// inlineSet is the backend.ReaderHook of a Server: its inline clients.
type inlineSet struct {
	s *Server

	startOnce sync.Once
	startErr  error

	mu      sync.Mutex
	clients []*client                 // copy on write
	snap    atomic.Pointer[[]*client] // clients, for the reader
	last    []*client                 // the reader's: the clients of its last AppendPollFds
}

// start installs the hook, once; it reports whether inline reading is available.
func (is *inlineSet) start() bool {
	is.startOnce.Do(func() {
		is.startErr = is.s.b.ShareReader(is)
		if is.startErr != nil {
			is.s.log.Info("permission clients are read by a thread each", "reason", is.startErr)
		}
	})
	return is.startErr == nil
}

// AppendPollFds is the reader's: the sockets of the clients not paused.
func (is *inlineSet) AppendPollFds(dst []int) []int {
	is.last = is.last[:0]
	if p := is.snap.Load(); p != nil {
		for _, c := range *p {
			dst = append(dst, c.rawFd)
			is.last = append(is.last, c)
		}
	}
	return dst
}

// Readable is the reader's.
func (is *inlineSet) Readable(i int) { is.last[i].readInline(true) }

func (is *inlineSet) add(c *client) {
	is.mu.Lock()
	is.clients = append(is.clients[:len(is.clients):len(is.clients)], c)
	cs := is.clients
	is.snap.Store(&cs)
	is.mu.Unlock()
	is.s.b.NudgeReader()
}

func (is *inlineSet) remove(c *client) {
	is.mu.Lock()
	var cs []*client
	for _, o := range is.clients {
		if o != c {
			cs = append(cs, o)
		}
	}
	is.clients = cs
	is.snap.Store(&cs)
	is.mu.Unlock()
	is.s.b.NudgeReader() // its descriptor may be closed and reused: stop waiting for it
}

// inlineState is a client's, for inline reading.
type inlineState struct {
	rawFd    int
	reqs     chan inlineItem // to inlineLoop, in order
	resume   chan struct{}   // capacity 1: the reader paused; see resumeIfPaused
	inlineMu sync.Mutex
	paused   bool        // not waited for: reqs was full, or reading ended
	stash    *inlineItem // the item that did not fit, handled before resuming
	ended    bool        // inlineLoop has returned: nothing more may be handed over
}

// runInline serves a permission client whose socket the backend's reader waits for.
func (c *client) runInline() {
	fd, err := c.conn.RawFd()
	if err != nil {
		c.close()
		return
	}
	c.rawFd = fd
	c.reqs = make(chan inlineItem, inlineQueue)
	c.resume = make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	c.s.inline.add(c)
	c.inlineLoop()
	c.s.inline.remove(c)
	c.inlineMu.Lock()
	c.ended = true // the reader hands nothing more over
	stash := c.stash
	c.stash = nil
	c.inlineMu.Unlock()
	c.close()
	wg.Wait()
	// Release what was handed over and never handled (the fds of an AddMark).
	if stash != nil {
		proto.CloseFDs(stash.m)
	}
	for {
		select {
		case it := <-c.reqs:
			proto.CloseFDs(it.m)
		default:
			return
		}
	}
}

// inlineLoop carries out, in order, what the reader hands over, until the connection ends.
func (c *client) inlineLoop() {
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
func (c *client) handleItem(it inlineItem) (end bool) {
	switch {
	case it.err != nil:
		c.readFailed(it.err)
		return true
	case it.reply != nil:
		return c.conn.WriteMsg(it.reply) != nil
	}
	return c.handle(it.m)
}

// resumeIfPaused lets the reader wait for the client's socket again once everything handed
// over before the pause is handled (then the stashed item, which came after it). The client
// stays paused until it is back in the set, so that a reader still holding it from before the
// pause leaves it alone.
func (c *client) resumeIfPaused() (end bool) {
	c.inlineMu.Lock()
	// Under inlineMu, under which the reader hands over: once paused, reqs only shrinks.
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
	c.paused = false
	c.s.inline.add(c)
	c.inlineMu.Unlock()
	c.readInline(false) // what was received before the pause and is still buffered
	return false
}

// readInline runs on the backend's reader when the client's socket is readable: it takes
// what has come, without waiting, answers the kernel for each Respond, and hands the rest
// over. It takes every message already buffered (poll(2) does not see those) but reads the
// socket at most a few times a turn, so that one client cannot hold the reader: poll says
// when there is more. inlineLoop runs it too, after a pause, for what was left buffered.
func (c *client) readInline(fromReader bool) {
	if fromReader {
		// The reader never waits for a client's lock: if inlineLoop holds it, it is reading
		// itself (or about to), and what it leaves in the socket poll reports again.
		if !c.inlineMu.TryLock() {
			return
		}
	} else {
		c.inlineMu.Lock()
	}
	defer c.inlineMu.Unlock()
	if c.paused || c.ended {
		return // a stale wait: it was removed meanwhile
	}
	reads := 0
	for {
		m, err := c.conn.BufferedMsg()
		if m == nil && err == nil {
			if reads == inlineReads {
				return
			}
			reads++
			if m, err = c.conn.TryReadMsg(); m == nil && err == nil {
				return
			}
		}
		if err != nil {
			c.handOverLocked(inlineItem{err: err})
			if !c.paused {
				c.pauseLocked() // nothing more to read: stop waiting for it
			}
			return
		}
		if r, ok := m.(*proto.Respond); ok {
			err := c.respond(r)
			if r.Req != 0 || err != nil {
				reply := proto.ResultFor(r.Req, r.EventID, err)
				if n, _ := c.conn.TryWriteMsgs(reply); n == 0 && !c.handOverLocked(inlineItem{reply: reply}) {
					return
				}
			}
			continue
		}
		if !c.handOverLocked(inlineItem{m: m}) {
			return
		}
	}
}

// inlineReads bounds the socket reads of one readInline.
const inlineReads = 4

// handOverLocked queues it for inlineLoop; if the queue is full, it stashes it and pauses
// the client. It reports whether the reader may go on reading. Needs inlineMu.
func (c *client) handOverLocked(it inlineItem) bool {
	select {
	case c.reqs <- it:
		return true
	default:
	}
	c.stash = &it
	c.pauseLocked()
	return false
}

// pauseLocked stops the reader from waiting for the client's socket and tells inlineLoop.
// Needs inlineMu.
func (c *client) pauseLocked() {
	c.paused = true
	c.s.inline.remove(c)
	select {
	case c.resume <- struct{}{}:
	default:
	}
}

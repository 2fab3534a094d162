package proto

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/schedtick"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Side is the end of a connection a Conn serves; it decides which messages the Conn accepts.
type Side uint8

const (
	// DaemonSide reads client messages and writes daemon messages.
	DaemonSide Side = iota + 1
	// ClientSide reads daemon messages and writes client messages.
	ClientSide
)

func (s Side) String() string {
	switch s {
	case DaemonSide:
		return "daemon"
	case ClientSide:
		return "client"
	}
	return "side(?)"
}

// Read buffer sizes. A daemon holds one buffer per client and clients send small requests,
// so its buffers start small; a client reads bursts of events, so its buffer is larger. A
// buffer grows to hold a large frame and shrinks back once it is read.
const (
	daemonReadBuffer = 4 << 10
	clientReadBuffer = 64 << 10
	// maxKeptBuffer: a write buffer grown beyond this (by a large Stats) is dropped after use.
	maxKeptBuffer = 64 << 10
	// maxQueuedFDs bounds the received fds not yet claimed by a frame. A write that carries
	// fds starts with the frame they belong to, so one read can return the fds of the frame
	// just completing and of the next one, never more. A client may also hold a RingGrant's
	// two (version 5) with the next frame's.
	maxQueuedFDs       = 2 * MaxFDs
	maxQueuedClientFDs = maxGrantFDs + MaxFDs
	// oobSize leaves room for the fds one write may carry and for SCM_CREDENTIALS, should a
	// daemon enable SO_PASSCRED. More fds than that is a protocol violation anyway: the
	// kernel closes what does not fit and sets MSG_CTRUNC, which fails the connection.
	oobSize = 128
)

// Conn is one end of a daemon–client connection: it reads and writes whole messages, with
// their fds, over a *net.UnixConn.
//
// Reading: one goroutine at a time (ReadMsg serialises callers). Writing: WriteMsg and
// WriteMsgs may be called concurrently with each other and with ReadMsg; each message is
// written whole (one writer lock), with its fds attached to the write that carries its first
// byte. Close may be called at any time, from any goroutine.
//
// The Conn enforces the handshake and the direction of messages: on the daemon side the
// first message read must be a Hello and no Hello may follow, and daemon messages are
// refused; on the client side the first message must be a Welcome (or a Fatal). Writes
// follow the mirror rules. A violation is an *Error with CodeUnexpected.
//
// Any error from ReadMsg other than a timeout is final: the stream is out of sync, later
// calls return the same error, and the fds already received are closed. A protocol error
// (an *Error with a code below 16) should be answered with FatalFor(0, err) and Close.
type Conn struct {
	uc      *net.UnixConn
	side    Side
	version atomic.Uint32 // the negotiated version; 0 before the handshake

	rmu   sync.Mutex
	rbuf  []byte
	r, w  int   // unread bytes are rbuf[r:w]
	fds   []int // fds received and not yet claimed by a frame, in arrival order
	oob   []byte
	rerr  error  // sticky read failure
	rseen bool   // the handshake message has been read
	into  *Event // ReadMsgInto's event, during the call
	last  string // the strings block of the last event read (decodeFrame)

	wmu   sync.Mutex
	wbuf  []byte
	wfds  []int
	werr  error // sticky write failure (a frame was partly written)
	wseen bool  // the handshake message has been written

	// raw, once SetBlockingReads has moved the connection out of the netpoller, is the
	// socket; uc is then closed. Set under rmu, wmu and tmu; read under any of them.
	raw     *rawSock
	atomicN int             // the largest write the kernel makes in one piece (TryWriteMsgs, TryWriteFrames)
	rc      syscall.RawConn // uc's, for TryWriteFrames on a pollable socket; under wmu
	tmu     sync.Mutex      // orders SetBlockingReads and Close
	closing atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// NewConn returns a Conn for side over c. The Conn owns c from then on (Close closes it).
func NewConn(c *net.UnixConn, side Side) *Conn {
	if side != DaemonSide && side != ClientSide {
		panic("proto: NewConn with invalid side")
	}
	return &Conn{uc: c, side: side, oob: make([]byte, oobSize)}
}

// SetBlockingReads takes the connection out of Go's network poller: from then on ReadMsg
// waits in poll(2), then recvmsg(2), on the reading goroutine's own thread (rawSock.recvmsg
// says why not in recvmsg alone; a write that finds the socket
// full waits likewise). It is for the latency-critical path of permission events, where the
// reading goroutine acts on the message itself: the kernel then wakes the very thread that
// handles the message, usually on the CPU of the process that wrote it, where with the poller
// it wakes the poller's thread (and, the socket being registered there, would still wake it
// in addition to a thread blocked in poll), which hands the goroutine on to another. On a
// 2-vCPU VM that is ~25 us per message (bench/daemon.sh). The costs: a thread per blocked
// reader; no deadlines; and a hand-off to another goroutine right after a read is slower than
// with the poller (the runtime reclaims the blocked thread's P only after ~20 us). Call it
// after the handshake, with no deadline set and before the Conn is used concurrently.
func (c *Conn) SetBlockingReads() error {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.raw != nil {
		return nil
	}
	if c.closing.Load() {
		return net.ErrClosed
	}
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return err
	}
	var fd int
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = sys.Dup(int(f)) }); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	// A unix stream sendmsg of at most sk_sndbuf/2-64 bytes, and at most ~32 KiB, goes
	// into one skb: all of it or, if the send buffer is full, nothing (unix_stream_sendmsg).
	c.atomicN = maxAtomicWrite
	if sndbuf, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF); err == nil {
		c.atomicN = min(c.atomicN, sndbuf/2-64)
	}
	// Closing uc deregisters the socket from the poller (EPOLL_CTL_DEL) before closing its
	// descriptor; the duplicate keeps the socket open, unregistered, and from then on alone
	// on its open file description: blocking mode for recvmsg (writes say MSG_DONTWAIT).
	c.uc.Close()
	if err := syscall.SetNonblock(fd, false); err != nil {
		sys.Close(fd)
		return os.NewSyscallError("fcntl", err)
	}
	c.raw = &rawSock{fd: fd}
	return nil
}

// maxAtomicWrite bounds what TryWriteMsgs writes in one sendmsg, well below the ~32 KiB
// (UNIX_SKB_FRAGS_SZ plus a head) that unix_stream_sendmsg puts in one skb.
const maxAtomicWrite = 16 << 10

// TryWriteMsgs writes a prefix of ms without waiting, and reports how many of the messages it
// wrote. It stops before a message when the socket buffer is full, when the messages do not
// go out in one piece each, or when another write is under way (TryWriteMsgs never waits
// for the write lock); the caller writes the rest later, in order, with WriteMsgs. Each
// write is whole or nothing (see SetBlockingReads' atomicN), so a frame is never left half
// written. It needs SetBlockingReads (else it writes nothing). The caller keeps ownership of
// the fds of every message, written or not.
func (c *Conn) TryWriteMsgs(ms ...Msg) (int, error) {
	if !c.wmu.TryLock() {
		return 0, nil
	}
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if c.raw == nil {
		return 0, nil
	}
	buf, fds := c.wbuf[:0], c.wfds[:0]
	defer func() { c.keepWriteBuffers(buf, fds) }()
	written, pending := 0, 0 // messages written; messages in buf not yet written
	flush := func() (bool, error) {
		if pending == 0 {
			return true, nil
		}
		var oob []byte
		if len(fds) > 0 {
			oob = syscall.UnixRights(fds...)
		}
		n, err := c.raw.sendmsgNoWait(buf, oob)
		switch {
		case err == syscall.EAGAIN && n == 0:
			return false, nil
		case err != nil:
			c.werr = err
			return false, err
		case n < len(buf): // the kernel broke its one-piece rule: the stream is out of sync
			c.werr = &Error{Code: CodeTruncated, Msg: "connection broken: a frame was partly written"}
			return false, c.werr
		}
		for _, m := range ms[written : written+pending] {
			c.wrote(m)
		}
		written += pending
		pending, buf, fds = 0, buf[:0], fds[:0]
		return true, nil
	}
	seen := c.wseen
	for _, m := range ms {
		if m == nil {
			return written, errorf(CodeBadField, "nil message")
		}
		if err := c.checkWrite(m, seen); err != nil {
			return written, err
		}
		seen = true
		off, nfds := len(buf), len(fds)
		nb, nf, err := Append(buf, fds, m)
		if err != nil {
			return written, err
		}
		buf, fds = nb, nf
		// A message with fds starts a write (its fds go with its first byte); so does one
		// that would make the write too long to go out in one piece.
		if pending > 0 && (len(fds) > nfds || len(buf) > c.atomicN) {
			tail := append([]byte(nil), buf[off:]...)
			tailFDs := append([]int(nil), fds[nfds:]...)
			buf, fds = buf[:off], fds[:nfds]
			if ok, err := flush(); !ok {
				return written, err
			}
			buf, fds = append(buf, tail...), append(fds, tailFDs...)
		}
		if len(buf) > c.atomicN {
			return written, nil // too long for one piece: WriteMsgs will write it
		}
		pending++
	}
	_, err := flush()
	return written, err
}

// TryWriteFrames writes a prefix of b without waiting and returns its length, always at a
// frame boundary. b must hold whole frames without fds (Append's or AppendEvent's output) of
// messages that may follow the handshake; nothing is checked. It writes in pieces of at most
// the size the kernel sends in one piece (see SetBlockingReads), each cut at a frame
// boundary, so that a full socket leaves no frame half written; it stops at the first piece
// that does not fit, when another write holds the connection (it never waits for the write
// lock), or before a frame too long to go in one piece. The caller writes the rest later, in
// order, with WriteFrames. An error is the connection's (later writes fail too).
func (c *Conn) TryWriteFrames(b []byte) (int, error) {
	if !c.wmu.TryLock() {
		return 0, nil
	}
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	limit, err := c.atomicLimitLocked()
	if err != nil {
		return 0, err
	}
	done := 0
	for done < len(b) {
		end := done
		for end < len(b) {
			if len(b)-end < HeaderSize {
				return done, errorf(CodeTruncated, "TryWriteFrames: a partial frame header")
			}
			next := end + HeaderSize + int(binary.LittleEndian.Uint32(b[end:]))
			if next > len(b) {
				return done, errorf(CodeTruncated, "TryWriteFrames: a partial frame")
			}
			if next-done > limit {
				break
			}
			end = next
		}
		if end == done {
			return done, nil // a frame too long for one piece: WriteFrames writes it
		}
		n, err := c.sendNoWaitLocked(b[done:end])
		switch {
		case err == syscall.EAGAIN && n == 0:
			return done, nil
		case err != nil:
			c.werr = err
			return done, err
		case n < end-done: // the kernel broke its one-piece rule: the stream is out of sync
			c.werr = &Error{Code: CodeTruncated, Msg: "connection broken: a frame was partly written"}
			return done, c.werr
		}
		done = end
	}
	return done, nil
}

// WriteFrames writes b, whole frames without fds (as TryWriteFrames takes them), waiting
// for the socket as WriteMsgs does.
func (c *Conn) WriteFrames(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	return c.writeLocked(b, nil)
}

// atomicLimitLocked returns the largest write the kernel makes in one piece on this socket
// (SetBlockingReads computes it for a raw socket; a pollable one learns it on first use), and
// the RawConn of a pollable one. Needs wmu.
func (c *Conn) atomicLimitLocked() (int, error) {
	if c.atomicN > 0 {
		return c.atomicN, nil
	}
	if c.raw == nil && c.rc == nil {
		rc, err := c.uc.SyscallConn()
		if err != nil {
			return 0, err
		}
		c.rc = rc
	}
	n := maxAtomicWrite
	var sndbuf int
	var serr error
	if c.raw != nil {
		sndbuf, serr = syscall.GetsockoptInt(c.raw.fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	} else if err := c.rc.Control(func(fd uintptr) {
		sndbuf, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil {
		return 0, err
	}
	if serr == nil {
		n = min(n, sndbuf/2-64)
	}
	c.atomicN = max(n, HeaderSize)
	return c.atomicN, nil
}

// sendNoWaitLocked is one sendmsg of b that does not wait: EAGAIN if the send buffer is full.
// Needs wmu (and atomicLimitLocked done).
func (c *Conn) sendNoWaitLocked(b []byte) (int, error) {
	if c.raw != nil {
		return c.raw.sendmsgNoWait(b, nil)
	}
	var n int
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		for {
			n, serr = syscall.SendmsgN(int(fd), b, nil, nil, syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
			if serr != syscall.EINTR {
				return true // never wait in the poller: the caller hands the rest on
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if serr != nil && serr != syscall.EAGAIN {
		return max(n, 0), os.NewSyscallError("sendmsg", serr)
	}
	return max(n, 0), serr
}

// rawSock is a unix socket outside the netpoller (SetBlockingReads). Operations hold mu
// shared for as long as they use fd; close shuts the socket down first, which wakes any of
// them blocked in poll(2), then takes mu exclusively to close fd: a descriptor number is
// never used after it was closed (and maybe reused).
type rawSock struct {
	mu     sync.RWMutex
	fd     int
	closed bool           // under mu, exclusively
	tick   schedtick.Tick // the blocking reader's (one at a time: Conn.rmu)
}

func (s *rawSock) recvmsg(p, oob []byte) (n, oobn, flags int, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, 0, 0, net.ErrClosed
	}
	for {
		// Wait in poll(2), then recvmsg, which then does not wait: two system calls per
		// message (a non-blocking recvmsg first would make it three when nothing is queued:
		// EAGAIN, poll, recvmsg). Not a blocking recvmsg alone, though it is one call fewer:
		// a reader blocked in a unix stream socket's recvmsg sleeps on the socket's one wait
		// queue without a filter (unix_stream_data_wait), so every wake-up of that queue wakes
		// it, and the kernel wakes it each time the peer reads what this socket sent
		// (sock_wfree → unix_write_space: room to write again). A permission client blocked
		// in recvmsg was thus woken by the daemon reading its answer — on the daemon's CPU,
		// in the daemon's recvmsg, as a "sync" wake-up that often preempted the daemon on the
		// event's path — only to find nothing and sleep again: a second wake-up per event
		// (perf stat and /proc/PID/task/*/status: the client's voluntary context switches
		// per event about halved with the poll, the daemon's loop thread was preempted less;
		// docs/design/performance.md, "The daemon round trip, third pass"). poll's wait takes
		// only the events it asked for (POLLIN; a hang-up or an error always): room to write
		// does not wake it. close's shutdown(2) wakes it.
		s.tick.MaybeYield()
		if _, perr := sys.PollRead(s.fd, -1); perr != nil {
			return 0, 0, 0, perr
		}
		n, oobn, flags, _, err = syscall.Recvmsg(s.fd, p, oob, syscall.MSG_CMSG_CLOEXEC)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN: // not expected in blocking mode after poll; wait again
			continue
		case nil:
			return n, oobn, flags, nil
		}
		return 0, 0, 0, os.NewSyscallError("recvmsg", err)
	}
}

// recvmsgNoWait is one recvmsg that does not wait: EAGAIN if nothing is queued.
func (s *rawSock) recvmsgNoWait(p, oob []byte) (n, oobn, flags int, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, 0, 0, net.ErrClosed
	}
	for {
		n, oobn, flags, _, err = syscall.Recvmsg(s.fd, p, oob, syscall.MSG_DONTWAIT|syscall.MSG_CMSG_CLOEXEC)
		switch err {
		case syscall.EINTR:
			continue
		case nil, syscall.EAGAIN:
			return n, oobn, flags, err
		}
		return 0, 0, 0, os.NewSyscallError("recvmsg", err)
	}
}

// sendmsg writes b whole, with oob on its first part.
func (s *rawSock) sendmsg(b, oob []byte) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	done := 0
	for done < len(b) {
		n, err := syscall.SendmsgN(s.fd, b[done:], oob, nil, syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if perr := sys.PollWrite(s.fd); perr != nil {
				return done, perr
			}
			continue
		case nil:
			done += n
			oob = nil // the fds went with the first part
			continue
		}
		return done, os.NewSyscallError("sendmsg", err)
	}
	return done, nil
}

// sendmsgNoWait is one sendmsg that does not wait: EAGAIN if the send buffer is full.
func (s *rawSock) sendmsgNoWait(b, oob []byte) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	for {
		n, err := syscall.SendmsgN(s.fd, b, oob, nil, syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
		switch err {
		case syscall.EINTR:
			continue
		case nil, syscall.EAGAIN:
			return max(n, 0), err
		}
		return max(n, 0), os.NewSyscallError("sendmsg", err)
	}
}

func (s *rawSock) close() error {
	syscall.Shutdown(s.fd, syscall.SHUT_RDWR) // wakes readers and writers in poll
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	s.closed = true
	return syscall.Close(s.fd)
}

// Dial connects to the daemon's socket at path and returns the client side of the
// connection. The caller then writes a Hello and reads the Welcome.
func Dial(path string) (*Conn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	return NewConn(c, ClientSide), nil
}

// Pipe returns the two ends of a connected socket pair (socketpair(2)), for a daemon serving
// a client in the same process — and for tests.
func Pipe() (daemon, client *Conn, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	var ucs [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "proto-pipe")
		c, err := net.FileConn(f) // dups fd
		f.Close()
		if err != nil {
			if i == 0 {
				syscall.Close(fds[1])
			} else {
				ucs[0].Close()
			}
			return nil, nil, err
		}
		ucs[i] = c.(*net.UnixConn)
	}
	return NewConn(ucs[0], DaemonSide), NewConn(ucs[1], ClientSide), nil
}

// Side returns the side the Conn serves.
func (c *Conn) Side() Side { return c.side }

// Version returns the negotiated protocol version: set when the daemon side writes or the
// client side reads a Welcome; 0 before.
func (c *Conn) Version() uint16 { return uint16(c.version.Load()) }

// UnixConn returns the underlying connection (for its addresses or socket options; reading
// or writing it directly breaks the framing).
func (c *Conn) UnixConn() *net.UnixConn { return c.uc }

// PeerCred returns the peer's credentials as the kernel recorded them at connect time
// (SO_PEERCRED): the daemon's basis for authorization.
func (c *Conn) PeerCred() (*syscall.Ucred, error) {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, os.NewSyscallError("getsockopt SO_PEERCRED", cerr)
	}
	return cred, nil
}

// SetDeadline, SetReadDeadline and SetWriteDeadline set the underlying connection's
// deadlines. A read that times out can be retried: the Conn keeps what it read. A write
// that times out after writing part of a frame breaks the connection (later writes fail).
// After SetBlockingReads they fail with os.ErrNoDeadline.
func (c *Conn) SetDeadline(t time.Time) error { return c.deadline(t, (*net.UnixConn).SetDeadline) }
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.deadline(t, (*net.UnixConn).SetReadDeadline)
}
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.deadline(t, (*net.UnixConn).SetWriteDeadline)
}

func (c *Conn) deadline(t time.Time, set func(*net.UnixConn, time.Time) error) error {
	c.tmu.Lock()
	raw := c.raw
	c.tmu.Unlock()
	if raw != nil {
		return os.ErrNoDeadline
	}
	return set(c.uc, t)
}

// Close closes the connection and every received fd not handed out in a message. It is
// safe to call concurrently with ReadMsg and WriteMsg (they fail with net.ErrClosed), and
// more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.tmu.Lock()
		c.closing.Store(true)
		raw := c.raw
		c.tmu.Unlock()
		if raw != nil {
			c.closeErr = raw.close() // wakes a blocked reader, which then releases rmu
		} else {
			c.closeErr = c.uc.Close() // likewise
		}
		c.rmu.Lock()
		c.failReadLocked(net.ErrClosed)
		c.rmu.Unlock()
	})
	return c.closeErr
}

// failReadLocked makes err the sticky read error (unless one is set) and closes the queued
// fds, which no frame will claim now.
func (c *Conn) failReadLocked(err error) error {
	if c.rerr == nil {
		c.rerr = err
	}
	for _, fd := range c.fds {
		syscall.Close(fd)
	}
	c.fds = c.fds[:0]
	c.rbuf, c.r, c.w = nil, 0, 0
	return c.rerr
}

// ReadMsg reads the next message. It returns io.EOF when the peer closed the connection
// between frames, an *Error for a protocol violation (closing the fds of the rejected frame
// and any others received), or the connection's error. The returned message owns its fds.
func (c *Conn) ReadMsg() (Msg, error) { return c.ReadMsgInto(nil) }

// ReadMsgInto is ReadMsg that decodes an Event into ev (overwritten whole) and returns ev as
// the message, where ReadMsg (ev nil) allocates one; other messages are ReadMsg's. For a reader that
// copies each event out before it reads the next (the client's reader): ev is then reused,
// and an event's strings are shared with the previous event's when they are equal (the same
// file and process again, as open, modify and close of one file are), so that reading the
// events of a busy file allocates nothing.
func (c *Conn) ReadMsgInto(ev *Event) (Msg, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return nil, c.rerr
	}
	c.into = ev
	m, err := c.readLocked(c.fill, -1)
	c.into = nil
	return m, err
}

// readLocked returns the next whole message, calling fill for more bytes as needed but at
// most maxFills times (-1: no limit): nil, nil when that was not enough. Needs rmu.
func (c *Conn) readLocked(fill func() error, maxFills int) (Msg, error) {
	for fills := 0; ; fills++ {
		if c.w-c.r >= HeaderSize {
			h, err := DecodeHeader(c.rbuf[c.r:c.w])
			if err != nil {
				return nil, c.failReadLocked(err)
			}
			if err := c.acceptType(h.Type); err != nil {
				return nil, c.failReadLocked(err)
			}
			need := HeaderSize + int(h.Length)
			if c.w-c.r >= need {
				return c.frameLocked(h, need)
			}
			c.makeRoom(need)
		} else {
			c.makeRoom(HeaderSize)
		}
		if fills == maxFills {
			return nil, nil
		}
		if err := fill(); err != nil {
			return nil, err
		}
	}
}

// TryReadMsg is ReadMsg that does not wait: it returns the next message if one has arrived
// whole (reading the socket once, without waiting, if the buffer does not hold one), and nil,
// nil if not — or if another goroutine is reading. Errors are ReadMsg's. Only after
// SetBlockingReads (ErrNotRaw before). It is for a goroutine that learned from poll(2) that
// the socket is readable (RawFd) and must not block on it.
func (c *Conn) TryReadMsg() (Msg, error) { return c.tryReadMsg(false) }

// BufferedMsg is TryReadMsg without reading the socket: the next message if a whole one has
// been received already, else nil, nil. A reader that waits for the socket with poll(2) must
// take every buffered message before it waits: poll knows only what is still in the socket.
func (c *Conn) BufferedMsg() (Msg, error) { return c.tryReadMsg(true) }

func (c *Conn) tryReadMsg(bufferedOnly bool) (Msg, error) {
	if c.raw == nil {
		return nil, ErrNotRaw
	}
	if !c.rmu.TryLock() {
		return nil, nil
	}
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return nil, c.rerr
	}
	fills := 1
	if bufferedOnly {
		fills = 0
	}
	m, err := c.readLocked(c.fillNoWait, fills)
	if err == errWouldBlock {
		return nil, nil
	}
	return m, err
}

// errWouldBlock is fillNoWait's: nothing to read now.
var errWouldBlock = errors.New("would block")

// ErrNotRaw is TryReadMsg's and RawFd's before SetBlockingReads.
var ErrNotRaw = errors.New("proto: the connection is not in blocking-reads mode")

// RawFd is the socket's descriptor after SetBlockingReads, for poll(2) only: the Conn
// reads and writes it, and closes it on Close.
func (c *Conn) RawFd() (int, error) {
	if c.raw == nil {
		return -1, ErrNotRaw
	}
	return c.raw.fd, nil
}

// frameLocked decodes the complete frame at rbuf[r:r+need] and consumes it.
func (c *Conn) frameLocked(h Header, need int) (Msg, error) {
	nfds := int(h.NFDs)
	if nfds > len(c.fds) {
		return nil, c.failReadLocked(errorf(CodeFDCount, "%s frame declares %d fds, %d received", h.Type, nfds, len(c.fds)))
	}
	var m Msg
	var err error
	if c.into != nil {
		m, err = decodeFrame(c.rbuf[c.r:c.r+need], c.fds[:nfds], c.into, &c.last)
	} else {
		m, err = Decode(c.rbuf[c.r:c.r+need], c.fds[:nfds])
	}
	if err != nil {
		return nil, c.failReadLocked(err) // closes the frame's fds with the rest
	}
	if ev, ok := m.(*Event); ok && ev.V2() && c.Version() < 2 {
		m.takeFDs(nil) // failReadLocked closes them, with the rest
		return nil, c.failReadLocked(errorf(CodeBadField, "Event: version-2 fields on a version-%d connection", c.Version()))
	}
	if m.Type() == TypeFlushCache && c.Version() < VersionFlush {
		return nil, c.failReadLocked(errorf(CodeUnexpected, "FlushCache on a version-%d connection: it needs version %d", c.Version(), VersionFlush))
	}
	c.fds = append(c.fds[:0], c.fds[nfds:]...)
	c.r += need
	if c.r == c.w {
		// Every byte received is consumed, so every fd received should have been claimed:
		// fds arrive with the first byte of their frame, never before it.
		if len(c.fds) > 0 {
			CloseFDs(m)
			return nil, c.failReadLocked(errorf(CodeFDCount, "%d fds received beyond what the frames declared", len(c.fds)))
		}
		c.r, c.w = 0, 0
		if cap(c.rbuf) > max(clientReadBuffer, daemonReadBuffer) {
			c.rbuf = nil // drop a buffer grown for a large frame
		}
	}
	if m.Type() == TypeWelcome {
		c.version.Store(uint32(m.(*Welcome).Version))
	}
	c.rseen = true
	return m, nil
}

// acceptType applies the handshake and direction rules to a message about to be read.
func (c *Conn) acceptType(t Type) error {
	if t.FromDaemon() != (c.side == ClientSide) {
		return errorf(CodeUnexpected, "%s message received by the %s", t, c.side)
	}
	switch c.side {
	case DaemonSide:
		if !c.rseen && t != TypeHello {
			return errorf(CodeUnexpected, "%s before Hello: a connection starts with Hello", t)
		}
		if c.rseen && t == TypeHello {
			return errorf(CodeUnexpected, "a second Hello")
		}
	case ClientSide:
		if !c.rseen && t != TypeWelcome && t != TypeFatal {
			return errorf(CodeUnexpected, "%s before Welcome", t)
		}
		if c.rseen && t == TypeWelcome {
			return errorf(CodeUnexpected, "a second Welcome")
		}
	}
	return nil
}

// makeRoom makes rbuf able to hold need unread bytes from r.
func (c *Conn) makeRoom(need int) {
	if c.rbuf == nil {
		size := daemonReadBuffer
		if c.side == ClientSide {
			size = clientReadBuffer
		}
		c.rbuf = make([]byte, max(size, need))
	}
	if len(c.rbuf)-c.r >= need && c.w < len(c.rbuf) {
		return
	}
	if len(c.rbuf) < need {
		nb := make([]byte, min(max(need, 2*len(c.rbuf)), MaxFrame))
		c.w = copy(nb, c.rbuf[c.r:c.w])
		c.r, c.rbuf = 0, nb
		return
	}
	c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
	c.r = 0
}

// fill reads more bytes (and fds) into rbuf[w:].
func (c *Conn) fill() error { return c.fillMode(false) }

// fillNoWait is fill without waiting (raw mode only): errWouldBlock if nothing is queued.
func (c *Conn) fillNoWait() error { return c.fillMode(true) }

func (c *Conn) fillMode(noWait bool) error {
	var n, oobn, flags int
	var err error
	if c.raw != nil {
		if noWait {
			n, oobn, flags, err = c.raw.recvmsgNoWait(c.rbuf[c.w:], c.oob)
			if err == syscall.EAGAIN {
				return errWouldBlock
			}
		} else {
			n, oobn, flags, err = c.raw.recvmsg(c.rbuf[c.w:], c.oob)
		}
		if err == nil && n == 0 && oobn == 0 && c.closing.Load() {
			return c.failReadLocked(net.ErrClosed) // woken by Close's shutdown
		}
	} else {
		n, oobn, flags, _, err = c.uc.ReadMsgUnix(c.rbuf[c.w:], c.oob)
	}
	n, oobn = max(n, 0), max(oobn, 0) // recvmsg's -1 on error comes through
	c.w += n
	if oobn > 0 {
		if perr := c.takeRights(c.oob[:oobn]); perr != nil {
			return c.failReadLocked(perr)
		}
	}
	if flags&syscall.MSG_CTRUNC != 0 {
		return c.failReadLocked(errorf(CodeFDCount, "more fds than a frame may carry (control data truncated)"))
	}
	limit := maxQueuedFDs
	if c.side == ClientSide {
		limit = maxQueuedClientFDs
	}
	if len(c.fds) > limit {
		return c.failReadLocked(errorf(CodeFDCount, "%d fds received ahead of their frames", len(c.fds)))
	}
	if err == nil && n == 0 && oobn == 0 {
		err = io.EOF
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		if c.w == c.r && len(c.fds) == 0 {
			return c.failReadLocked(io.EOF)
		}
		return c.failReadLocked(&Error{Code: CodeTruncated, Err: io.ErrUnexpectedEOF,
			Msg: "connection closed inside a frame (" + strconv.Itoa(c.w-c.r) + " bytes and " + strconv.Itoa(len(c.fds)) + " fds unread)"})
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return err // the buffered state is intact: the caller may retry
	}
	return c.failReadLocked(err)
}

// takeRights appends the fds of the SCM_RIGHTS messages in oob to the queue. Received fds
// are already close-on-exec: the net package reads with MSG_CMSG_CLOEXEC on Linux.
func (c *Conn) takeRights(oob []byte) error {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return errorf(CodeFDCount, "unparsable control data: %v", err)
	}
	for i := range msgs {
		if msgs[i].Header.Level != syscall.SOL_SOCKET || msgs[i].Header.Type != syscall.SCM_RIGHTS {
			continue
		}
		fds, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			return errorf(CodeFDCount, "unparsable SCM_RIGHTS: %v", err)
		}
		c.fds = append(c.fds, fds...)
	}
	return nil
}

// checkWrite applies the handshake, direction and version rules to a message about to be
// written.
func (c *Conn) checkWrite(m Msg, seen bool) error {
	t := m.Type()
	if ev, ok := m.(*Event); ok && ev.V2() && c.Version() < 2 {
		return errorf(CodeBadField, "Event: version-2 fields on a version-%d connection (see Event.ForVersion)", c.Version())
	}
	if t == TypeFlushCache && c.Version() < VersionFlush {
		return errorf(CodeUnexpected, "FlushCache on a version-%d connection: it needs version %d", c.Version(), VersionFlush)
	}
	if t.FromDaemon() != (c.side == DaemonSide) {
		return errorf(CodeUnexpected, "the %s cannot send %s", c.side, t)
	}
	switch c.side {
	case DaemonSide:
		if !seen && t != TypeWelcome && t != TypeFatal {
			return errorf(CodeUnexpected, "%s before Welcome", t)
		}
		if seen && t == TypeWelcome {
			return errorf(CodeUnexpected, "a second Welcome")
		}
	case ClientSide:
		if !seen && t != TypeHello {
			return errorf(CodeUnexpected, "%s before Hello", t)
		}
		if seen && t == TypeHello {
			return errorf(CodeUnexpected, "a second Hello")
		}
	}
	return nil
}

func (c *Conn) wrote(m Msg) {
	c.wseen = true
	if w, ok := m.(*Welcome); ok {
		c.version.Store(uint32(w.Version))
	}
}

// WriteMsg writes m with its fds. It does not close m's fds: the caller may close them once
// WriteMsg returns. An encoding or handshake error writes nothing; an I/O error after part of
// the frame was written breaks the connection for writing (the caller should Close it).
func (c *Conn) WriteMsg(m Msg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if m == nil {
		return errorf(CodeBadField, "nil message")
	}
	if err := c.checkWrite(m, c.wseen); err != nil {
		return err
	}
	buf, fds, err := Append(c.wbuf[:0], c.wfds[:0], m)
	if err != nil {
		return err
	}
	err = c.writeLocked(buf, fds)
	c.keepWriteBuffers(buf, fds)
	if err == nil {
		c.wrote(m)
	}
	return err
}

// WriteMsgs writes ms in order with as few system calls as the fd rule allows: frames
// without fds are coalesced, and each frame with fds starts a new write (so its fds arrive
// with its first byte). It checks and encodes every message before writing any, so an
// encoding or handshake error writes nothing.
func (c *Conn) WriteMsgs(ms ...Msg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	type seg struct{ off, fd int } // a write starts at buf[off] and carries fds from fds[fd]
	var segsArr [8]seg
	segs := append(segsArr[:0], seg{0, 0})
	buf, fds := c.wbuf[:0], c.wfds[:0]
	seen := c.wseen
	for _, m := range ms {
		if m == nil {
			return errorf(CodeBadField, "nil message")
		}
		if err := c.checkWrite(m, seen); err != nil {
			return err
		}
		seen = true
		off, nfds := len(buf), len(fds)
		var err error
		if buf, fds, err = Append(buf, fds, m); err != nil {
			return err
		}
		if len(fds) > nfds {
			segs = append(segs, seg{off, nfds})
		}
	}
	var err error
	for i, s := range segs {
		end, endFD := len(buf), len(fds)
		if i+1 < len(segs) {
			end, endFD = segs[i+1].off, segs[i+1].fd
		}
		if end > s.off {
			if err = c.writeLocked(buf[s.off:end], fds[s.fd:endFD]); err != nil {
				break
			}
		}
	}
	c.keepWriteBuffers(buf, fds)
	if err == nil {
		for _, m := range ms {
			c.wrote(m)
		}
	}
	return err
}

func (c *Conn) keepWriteBuffers(buf []byte, fds []int) {
	if cap(buf) <= maxKeptBuffer {
		c.wbuf = buf[:0]
	} else {
		c.wbuf = nil
	}
	c.wfds = fds[:0]
}

// writeLocked writes b, attaching fds to the first write. A short sendmsg (the socket buffer
// had room for part of b) is completed with plain writes: the fds went with the first part.
func (c *Conn) writeLocked(b []byte, fds []int) error {
	var n int
	var err error
	if c.raw != nil {
		var oob []byte
		if len(fds) > 0 {
			oob = syscall.UnixRights(fds...)
		}
		n, err = c.raw.sendmsg(b, oob)
	} else if len(fds) > 0 {
		n, _, err = c.uc.WriteMsgUnix(b, syscall.UnixRights(fds...), nil)
		if err == nil && n < len(b) {
			var m int
			m, err = c.uc.Write(b[n:])
			n += m
		}
	} else {
		n, err = c.uc.Write(b)
	}
	if err == nil {
		return nil
	}
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return err // nothing written: the stream is intact
	}
	c.werr = err
	if n > 0 {
		c.werr = &Error{Code: CodeTruncated, Err: err, Msg: "connection broken: a frame was partly written"}
	}
	return c.werr
}

package proto

import (
	"encoding/binary"
	"math"
	"strconv"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// The wire values of the enums and bits are package fsevent's (fanotify's for masks), which
// the engine uses as its own; docs/protocol.md lists them and TestWireValues pins them, so a
// change there cannot silently change the protocol.

// noFDs is embedded by the messages that never carry a file descriptor.
type noFDs struct{}

func (noFDs) appendFDs(fds []int) []int { return fds }
func (noFDs) takeFDs([]int)             {}
func (noFDs) numFDs() int               { return 0 }
func (noFDs) closeFDs()                 {}

func checkFDs(t Type, got, want int) *Error {
	if got != want {
		return errorf(CodeFDCount, "%s carries %d fds; it needs %d", t, got, want)
	}
	return nil
}

func checkVerdict(t Type, field string, v fsevent.Verdict) *Error {
	if v > fsevent.Deny {
		return errorf(CodeBadField, "%s: %s %d is neither allow (0) nor deny (1)", t, field, v)
	}
	return nil
}

func checkQueueLimit(t Type, n int) *Error {
	if n < -1 || n > math.MaxInt32 {
		return errorf(CodeBadField, "%s: queue limit %d: want -1 (unlimited), 0 (default) or a positive count below 2^31", t, n)
	}
	return nil
}

func checkDuration(t Type, field string, d time.Duration) *Error {
	if d < 0 {
		return errorf(CodeBadField, "%s: %s %v is negative", t, field, d)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Client → daemon

// Hello flag bits.
const (
	helloWantEventFDs = 1 << iota
	helloWantUID
	helloWantComm
	helloKnownFlags = 1<<iota - 1
)

// Hello option bits of version 4 (the u32 after name).
const (
	helloNoPaths       = 1 << iota
	helloKnownOptions4 = 1<<iota - 1
)

// Hello option bits of version 5 (a second u32, after version 4's options).
const (
	helloWantRing      = 1 << iota
	helloKnownOptions5 = 1<<iota - 1
)

// Hello is the first message of a connection (client → daemon): the protocol versions the
// client speaks and the options of the engine group the daemon creates for it. The daemon
// answers with Welcome, or with Fatal (CodeVersion, CodePermission, CodeLimit,
// CodeUnavailable) and closes the connection.
//
// Its version-1 fields are a prefix that every later version keeps; a Hello whose MaxVersion
// is above this package's MaxVersion may carry further fields after them, which Decode
// skips, so that an old daemon can still refuse or downgrade a new client cleanly.
type Hello struct {
	noFDs
	Req uint64 // nonzero
	// MinVersion and MaxVersion are the range of protocol versions the client speaks
	// (1 ≤ MinVersion ≤ MaxVersion); normally proto.MinVersion and proto.MaxVersion.
	MinVersion, MaxVersion uint16
	// Name labels the client in the daemon's logs and stats (at most MaxName bytes of UTF-8).
	Name string
	// Class is the group's class; content and pre-content need privilege (CodePermission).
	Class fsevent.Class
	// QueueLimit bounds the client's event queue: 0 for the daemon's default, -1 for
	// unlimited; the daemon may cap it (Welcome says what applies).
	QueueLimit int
	// Deadline bounds how long a permission event waits for the client's answer (0: the
	// daemon's maximum, or forever if it has none); the daemon caps it at its configured
	// maximum. At the deadline DeadlineVerdict applies.
	Deadline        time.Duration
	DeadlineVerdict fsevent.Verdict
	// CloseVerdict answers the client's pending permission events when it disconnects.
	CloseVerdict fsevent.Verdict
	// QueueFullVerdict answers a permission event that meets the client's full queue.
	QueueFullVerdict fsevent.Verdict
	// WantEventFDs asks for the file of each permission event (Event.FD); the daemon grants
	// it only to clients its configuration allows (Welcome.EventFDs).
	WantEventFDs bool
	// WantUID and WantComm ask for the accessing process's uid and command name in events;
	// the daemon looks them up only for clients that ask, since it costs a /proc read.
	WantUID, WantComm bool
	// LastInstance is the daemon instance the client was connected to before, or zero; the
	// daemon compares it with its own to set Welcome.Fresh.
	LastInstance InstanceID
	// NoPaths (version 4: needs MaxVersion ≥ 4) says the client needs no paths in its
	// permission events: a daemon that speaks version 4 then reads no path for them (a
	// readlink and a statx per event saved) and sends one only if it read it anyway to place
	// the event (else path empty, PATH_UNKNOWN clear).
	// A daemon of an older version ignores it (Welcome.Version says which) and sends paths.
	NoPaths bool
	// WantRing (version 5: needs MaxVersion ≥ 5) asks for the permission ring: a daemon that
	// speaks version 5 follows its Welcome with a RingGrant, or with a Result (the Hello's
	// request id) whose error says why not (CodeNotSupported: the ring is not enabled, the
	// client asked for event fds or is no permission client, the kernel lacks sealed memfds);
	// the client then stays on the socket, as with a daemon of an older version (Welcome.Version
	// below 5: nothing follows).
	WantRing bool
}

func (*Hello) Type() Type          { return TypeHello }
func (m *Hello) RequestID() uint64 { return m.Req }

func (m *Hello) check() *Error {
	t := m.Type()
	if err := checkReq(t, m.Req, true); err != nil {
		return err
	}
	if m.MinVersion == 0 || m.MinVersion > m.MaxVersion {
		return errorf(CodeBadField, "Hello: version range %d..%d: want 1 ≤ MinVersion ≤ MaxVersion", m.MinVersion, m.MaxVersion)
	}
	if m.Class > fsevent.ClassPreContent {
		return errorf(CodeBadField, "Hello: class %d: want 0 (notification), 1 (content) or 2 (pre-content)", m.Class)
	}
	if err := checkQueueLimit(t, m.QueueLimit); err != nil {
		return err
	}
	if err := checkDuration(t, "deadline", m.Deadline); err != nil {
		return err
	}
	for _, v := range []struct {
		f string
		v fsevent.Verdict
	}{{"deadline verdict", m.DeadlineVerdict}, {"close verdict", m.CloseVerdict}, {"queue-full verdict", m.QueueFullVerdict}} {
		if err := checkVerdict(t, v.f, v.v); err != nil {
			return err
		}
	}
	if m.NoPaths && m.MaxVersion < 4 {
		return errorf(CodeBadField, "Hello: NoPaths needs protocol version 4 (MaxVersion %d)", m.MaxVersion)
	}
	if m.WantRing && m.MaxVersion < 5 {
		return errorf(CodeBadField, "Hello: WantRing needs protocol version 5 (MaxVersion %d)", m.MaxVersion)
	}
	return checkText(t, "name", m.Name, MaxName)
}

func (m *Hello) appendPayload(b []byte) []byte {
	b = appendU32(b, Magic)
	b = appendU16(b, m.MinVersion)
	b = appendU16(b, m.MaxVersion)
	b = append(b, byte(m.Class), byte(m.DeadlineVerdict), byte(m.CloseVerdict), byte(m.QueueFullVerdict))
	var f uint32
	if m.WantEventFDs {
		f |= helloWantEventFDs
	}
	if m.WantUID {
		f |= helloWantUID
	}
	if m.WantComm {
		f |= helloWantComm
	}
	b = appendU32(b, f)
	b = appendU64(b, uint64(m.Deadline))
	b = appendU32(b, uint32(int32(m.QueueLimit)))
	b = append(b, m.LastInstance[:]...)
	b = appendStr(b, m.Name)
	if m.MaxVersion >= 4 {
		var o uint32
		if m.NoPaths {
			o |= helloNoPaths
		}
		b = appendU32(b, o)
	}
	if m.MaxVersion >= 5 {
		var o uint32
		if m.WantRing {
			o |= helloWantRing
		}
		b = appendU32(b, o)
	}
	return b
}

func (m *Hello) decode(d *decoder, req uint64) {
	m.Req = req
	if magic := d.u32("magic"); d.err == nil && magic != Magic {
		d.fail(CodeBadField, "magic %#08x is not \"FSND\": not an fsnotifyd client", magic)
		return
	}
	m.MinVersion = d.u16("min version")
	m.MaxVersion = d.u16("max version")
	if d.err != nil {
		return
	}
	// Refuse a version mismatch before anything else: a newer client's other fields may mean
	// something this side cannot parse, and the version error is the one that helps. (An
	// empty range is left to check, which calls it a bad field.)
	if m.MinVersion != 0 && m.MinVersion <= m.MaxVersion {
		if _, err := Negotiate(m); err != nil {
			d.err = err.(*Error)
			return
		}
	}
	m.Class = fsevent.Class(d.u8("class"))
	m.DeadlineVerdict = fsevent.Verdict(d.u8("deadline verdict"))
	m.CloseVerdict = fsevent.Verdict(d.u8("close verdict"))
	m.QueueFullVerdict = fsevent.Verdict(d.u8("queue-full verdict"))
	f := d.flags(4, helloKnownFlags, "flags")
	m.WantEventFDs, m.WantUID, m.WantComm = f&helloWantEventFDs != 0, f&helloWantUID != 0, f&helloWantComm != 0
	if dl := d.u64("deadline"); dl > math.MaxInt64 {
		d.fail(CodeBadField, "deadline %d ns is negative", int64(dl))
	} else {
		m.Deadline = time.Duration(dl)
	}
	m.QueueLimit = int(int32(d.u32("queue limit")))
	copy(m.LastInstance[:], d.take(16, "last instance"))
	m.Name = d.str("name")
	if m.MaxVersion >= 4 {
		o := d.flags(4, helloKnownOptions4, "version-4 options")
		m.NoPaths = o&helloNoPaths != 0
	}
	if m.MaxVersion >= 5 {
		o := d.flags(4, helloKnownOptions5, "version-5 options")
		m.WantRing = o&helloWantRing != 0
	}
	d.trailingOK = m.MaxVersion > MaxVersion
}

// Negotiate returns the protocol version a daemon speaks with the client of h: the highest
// both speak. A decoded Hello always has one (Decode refuses the others with CodeVersion);
// for any other Hello it returns an *Error with CodeVersion saying who must upgrade.
func Negotiate(h *Hello) (uint16, error) { return NegotiateUpTo(h, MaxVersion) }

// NegotiateUpTo is Negotiate for a daemon that speaks versions MinVersion..top only (top
// between MinVersion and MaxVersion): one that plays an older daemon.
func NegotiateUpTo(h *Hello, top uint16) (uint16, error) {
	top = min(max(top, MinVersion), MaxVersion)
	switch {
	case h.MinVersion > top:
		return 0, errorf(CodeVersion, "client speaks protocol versions %d..%d; this side speaks %d..%d: upgrade fsnotifyd", h.MinVersion, h.MaxVersion, MinVersion, top)
	case h.MaxVersion < MinVersion || h.MinVersion > h.MaxVersion:
		return 0, errorf(CodeVersion, "client speaks protocol versions %d..%d; this side speaks %d..%d: upgrade the client", h.MinVersion, h.MaxVersion, MinVersion, top)
	}
	return min(h.MaxVersion, top), nil
}

// addMarkReplace, in AddMark's options byte, makes the masks replace the mark's instead of
// being ORed into them.
const addMarkReplace = 1

// AddMark adds (or extends) a mark on the object the client's fd refers to (client → daemon).
// The fd, opened by the client itself (O_PATH is enough), rides with the frame: the daemon
// never resolves a client's path with its own privileges. The daemon answers with a Result
// holding the mark id once the mark is in place in the engine and the kernel — so the Result
// is a barrier: every event after it is reported. Adding to the object of an existing mark
// returns that mark's id.
type AddMark struct {
	Req uint64 // nonzero
	// Kind is the object: the fd's inode (a file, or a directory with EventOnChild for its
	// children), the subtree below the fd's directory, or the fd's mount or filesystem.
	Kind fsevent.Kind
	// Mask and Ignore are the engine's mark masks (fanotify bits; EventOnChild and OnDir
	// flags). Bits the daemon does not support are refused with CodeInvalid.
	Mask, Ignore fsevent.Mask
	// Flags are the engine's mark flags (fsevent.IgnoreSurviveModify).
	Flags fsevent.MarkFlags
	// Replace sets the mark's masks and flags to these instead of ORing them in
	// (FAN_MARK_ADD semantics without it); the mark is created either way.
	Replace bool
	// Target is the object's file descriptor (required).
	Target FD
}

func (*AddMark) Type() Type          { return TypeAddMark }
func (m *AddMark) RequestID() uint64 { return m.Req }

func checkKind(t Type, k fsevent.Kind, allowZero bool) *Error {
	if (k == 0 && allowZero) || (k >= fsevent.KindInode && k <= fsevent.KindSubtree) {
		return nil
	}
	return errorf(CodeBadField, "%s: object kind %d: want 1 (inode), 2 (mount), 3 (filesystem) or 4 (subtree)", t, k)
}

func (m *AddMark) check() *Error {
	t := m.Type()
	if err := checkReq(t, m.Req, true); err != nil {
		return err
	}
	if err := checkKind(t, m.Kind, false); err != nil {
		return err
	}
	if m.Flags&^fsevent.IgnoreSurviveModify != 0 {
		return errorf(CodeBadField, "AddMark: unknown mark flags %#x", uint32(m.Flags&^fsevent.IgnoreSurviveModify))
	}
	return checkFDs(t, m.numFDs(), 1)
}

func (m *AddMark) appendPayload(b []byte) []byte {
	var opts byte
	if m.Replace {
		opts |= addMarkReplace
	}
	b = append(b, byte(m.Kind), opts, 0, 0)
	b = appendU32(b, uint32(m.Flags))
	b = appendU64(b, uint64(m.Mask))
	return appendU64(b, uint64(m.Ignore))
}

func (m *AddMark) decode(d *decoder, req uint64) {
	m.Req = req
	m.Kind = fsevent.Kind(d.u8("kind"))
	m.Replace = d.flags(1, addMarkReplace, "options") != 0
	d.reserved(2, "reserved")
	m.Flags = fsevent.MarkFlags(d.u32("mark flags"))
	m.Mask = fsevent.Mask(d.u64("mask"))
	m.Ignore = fsevent.Mask(d.u64("ignore mask"))
}

func (m *AddMark) appendFDs(fds []int) []int {
	if m.Target.Valid() {
		fds = append(fds, m.Target.Int())
	}
	return fds
}
func (m *AddMark) takeFDs(fds []int) { m.Target = fdAt(fds, 0) }
func (m *AddMark) numFDs() int       { return b2i(m.Target.Valid()) }
func (m *AddMark) closeFDs()         { m.Target.Close() }

func fdAt(fds []int, i int) FD {
	if i < len(fds) {
		return NewFD(fds[i])
	}
	return FD{}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// RemoveBy says how RemoveMark names the mark.
type RemoveBy uint8

const (
	// RemoveByID names the mark by the id AddMark returned.
	RemoveByID RemoveBy = 1
	// RemoveByTarget names it by its object: Kind and a Target fd.
	RemoveByTarget RemoveBy = 2
	// RemoveAll removes all the client's marks of Kind, or every mark if Kind is 0
	// (FAN_MARK_FLUSH).
	RemoveAll RemoveBy = 3
)

func (b RemoveBy) String() string {
	switch b {
	case RemoveByID:
		return "id"
	case RemoveByTarget:
		return "target"
	case RemoveAll:
		return "all"
	}
	return "remove-by(" + strconv.Itoa(int(b)) + ")"
}

// RemoveMark removes a mark, or clears bits from it (client → daemon). The daemon answers
// with a Result holding the mark's id (0 for RemoveAll) once the mark is gone: no event that
// starts after the Result reaches the client through it (events already queued still come).
type RemoveMark struct {
	Req uint64 // nonzero
	By  RemoveBy
	// MarkID, with RemoveByID, is the mark's id.
	MarkID uint64
	// Kind, with RemoveByTarget, is the object's kind; with RemoveAll, the kind to remove or
	// 0 for all.
	Kind fsevent.Kind
	// Target, with RemoveByTarget, is a file descriptor of the object.
	Target FD
	// Mask and Ignore, with RemoveByID or RemoveByTarget, are the bits to clear from the
	// mark's masks (FAN_MARK_REMOVE); the mark goes when both its masks are empty. Both zero
	// removes the whole mark.
	Mask, Ignore fsevent.Mask
}

func (*RemoveMark) Type() Type          { return TypeRemoveMark }
func (m *RemoveMark) RequestID() uint64 { return m.Req }

func (m *RemoveMark) check() *Error {
	t := m.Type()
	if err := checkReq(t, m.Req, true); err != nil {
		return err
	}
	wantFDs := 0
	switch m.By {
	case RemoveByID:
		if m.MarkID == 0 {
			return errorf(CodeBadField, "RemoveMark by id: mark id 0")
		}
		if m.Kind != 0 {
			return errorf(CodeBadField, "RemoveMark by id: kind must be 0")
		}
	case RemoveByTarget:
		if m.MarkID != 0 {
			return errorf(CodeBadField, "RemoveMark by target: mark id must be 0")
		}
		if err := checkKind(t, m.Kind, false); err != nil {
			return err
		}
		wantFDs = 1
	case RemoveAll:
		if m.MarkID != 0 || m.Mask != 0 || m.Ignore != 0 {
			return errorf(CodeBadField, "RemoveMark all: mark id and masks must be 0")
		}
		if err := checkKind(t, m.Kind, true); err != nil {
			return err
		}
	default:
		return errorf(CodeBadField, "RemoveMark: mode %d: want 1 (by id), 2 (by target) or 3 (all)", m.By)
	}
	return checkFDs(t, m.numFDs(), wantFDs)
}

func (m *RemoveMark) appendPayload(b []byte) []byte {
	b = append(b, byte(m.By), byte(m.Kind), 0, 0, 0, 0, 0, 0)
	b = appendU64(b, m.MarkID)
	b = appendU64(b, uint64(m.Mask))
	return appendU64(b, uint64(m.Ignore))
}

func (m *RemoveMark) decode(d *decoder, req uint64) {
	m.Req = req
	m.By = RemoveBy(d.u8("mode"))
	m.Kind = fsevent.Kind(d.u8("kind"))
	d.reserved(6, "reserved")
	m.MarkID = d.u64("mark id")
	m.Mask = fsevent.Mask(d.u64("mask"))
	m.Ignore = fsevent.Mask(d.u64("ignore mask"))
}

func (m *RemoveMark) appendFDs(fds []int) []int {
	if m.Target.Valid() {
		fds = append(fds, m.Target.Int())
	}
	return fds
}
func (m *RemoveMark) takeFDs(fds []int) { m.Target = fdAt(fds, 0) }
func (m *RemoveMark) numFDs() int       { return b2i(m.Target.Valid()) }
func (m *RemoveMark) closeFDs()         { m.Target.Close() }

// MaxErrno bounds Respond.Errno (errno values are below 4096 on Linux).
const MaxErrno = 4095

const respondCache = 1

// Respond answers a permission event (client → daemon). With a nonzero Req the daemon
// answers with a Result (ID = the event id); with Req 0 it answers only a failure, with a
// Result whose Req is 0 and whose ID is the event id — the fast path for a client that
// answers many events.
type Respond struct {
	noFDs
	Req     uint64 // 0: no Result on success
	EventID uint64 // Event.ID of the event; nonzero
	Verdict fsevent.Verdict
	// Errno, with Deny, is the error the access fails with instead of EPERM: honoured for
	// pre-content clients and one of fsevent.DenyErrnos, else the deny is a plain one (EPERM).
	// At most MaxErrno.
	Errno syscall.Errno
	// Cache, with Allow, lets the daemon remember the allow for this object and event until
	// the object changes.
	Cache bool
}

func (*Respond) Type() Type          { return TypeRespond }
func (m *Respond) RequestID() uint64 { return m.Req }

// NewRespond returns the Respond that answers event id with verdict v (errno, with a deny;
// cache, with an allow), with request id req: one that encodes, whatever it is given, so that
// a client's answer is never lost to an encoding error (the access would wait for its
// deadline, or forever without one). An answer that is no verdict (an unknown verdict, an
// errno with allow) becomes a deny, as the daemon would make it, and valid is false; an errno
// above MaxErrno, or a cache flag on a deny, is dropped (the daemon could not honour either: a
// plain deny). A frame the daemon cannot decode would instead end the connection and give
// every pending event of the client its close verdict.
func NewRespond(req, id uint64, v fsevent.Verdict, errno syscall.Errno, cache bool) (m *Respond, valid bool) {
	m = &Respond{Req: req, EventID: id, Verdict: v, Errno: errno, Cache: cache}
	valid = v <= fsevent.Deny && (errno == 0 || v == fsevent.Deny)
	if !valid {
		m.Verdict, m.Errno, m.Cache = fsevent.Deny, 0, false
	}
	if m.Errno > MaxErrno {
		m.Errno = 0
	}
	if m.Verdict != fsevent.Allow {
		m.Cache = false
	}
	return m, valid
}

func (m *Respond) check() *Error {
	if m.EventID == 0 {
		return errorf(CodeBadField, "Respond: event id 0")
	}
	if err := checkVerdict(m.Type(), "verdict", m.Verdict); err != nil {
		return err
	}
	if m.Errno != 0 && (m.Verdict != fsevent.Deny || m.Errno > MaxErrno) {
		return errorf(CodeBadField, "Respond: errno %d: only with deny, and below %d", m.Errno, MaxErrno+1)
	}
	if m.Cache && m.Verdict != fsevent.Allow {
		return errorf(CodeBadField, "Respond: cache only with allow")
	}
	return nil
}

func (m *Respond) appendPayload(b []byte) []byte {
	b = appendU64(b, m.EventID)
	b = append(b, byte(m.Verdict), byte(b2i(m.Cache)))
	b = appendU16(b, uint16(m.Errno))
	return appendU32(b, 0)
}

func (m *Respond) decode(d *decoder, req uint64) {
	m.Req = req
	m.EventID = d.u64("event id")
	m.Verdict = fsevent.Verdict(d.u8("verdict"))
	m.Cache = d.flags(1, respondCache, "flags") != 0
	m.Errno = syscall.Errno(d.u16("errno"))
	d.reserved(4, "reserved")
}

const statsAllClients = 1

// StatsRequest asks for the daemon's figures (client → daemon); the daemon answers with
// Stats.
type StatsRequest struct {
	noFDs
	Req uint64 // nonzero
	// AllClients asks for an entry for every client, not just the caller (the daemon may
	// refuse it to unprivileged clients with CodePermission).
	AllClients bool
}

func (*StatsRequest) Type() Type          { return TypeStatsRequest }
func (m *StatsRequest) RequestID() uint64 { return m.Req }
func (m *StatsRequest) check() *Error     { return checkReq(m.Type(), m.Req, true) }
func (m *StatsRequest) appendPayload(b []byte) []byte {
	return appendU32(b, uint32(b2i(m.AllClients)))
}
func (m *StatsRequest) decode(d *decoder, req uint64) {
	m.Req = req
	m.AllClients = d.flags(4, statsAllClients, "flags") != 0
}

// Ping asks for a Pong (client → daemon). The daemon handles a connection's requests in
// order, so the Pong also says every earlier request has been handled and answered.
type Ping struct {
	noFDs
	Req uint64 // nonzero
}

func (*Ping) Type() Type                      { return TypePing }
func (m *Ping) RequestID() uint64             { return m.Req }
func (m *Ping) check() *Error                 { return checkReq(m.Type(), m.Req, true) }
func (m *Ping) appendPayload(b []byte) []byte { return b }
func (m *Ping) decode(_ *decoder, req uint64) { m.Req = req }

// Bye ends a connection cleanly (client → daemon): the daemon closes the client's group
// (answering its pending permission events with its close verdict), answers with a Result
// and closes the connection.
type Bye struct {
	noFDs
	Req uint64 // nonzero
}

func (*Bye) Type() Type                      { return TypeBye }
func (m *Bye) RequestID() uint64             { return m.Req }
func (m *Bye) check() *Error                 { return checkReq(m.Type(), m.Req, true) }
func (m *Bye) appendPayload(b []byte) []byte { return b }
func (m *Bye) decode(_ *decoder, req uint64) { m.Req = req }

// ---------------------------------------------------------------------------------------------
// Daemon → client

const (
	welcomeFresh = 1 << iota
	welcomeEventFDs
	welcomeMountMarks
	welcomeKnownFlags = 1<<iota - 1
)

// Welcome accepts a client (daemon → client, in answer to Hello): the chosen version, the
// client's identity and the options that actually apply after the daemon's caps.
type Welcome struct {
	noFDs
	Req uint64 // the Hello's
	// Version is the protocol version of the rest of the connection (see Negotiate).
	Version uint16
	// ClientID identifies the client in the daemon's logs and stats (nonzero, unique in the
	// daemon instance).
	ClientID uint64
	// Instance identifies this run of the daemon (nonzero).
	Instance InstanceID
	// Fresh says the daemon instance differs from Hello.LastInstance: the client has missed
	// events (or has none to miss, on its first connection) and must resync.
	Fresh bool
	// DaemonVersion is the daemon's version string (at most MaxName bytes of UTF-8).
	DaemonVersion string
	// The group options that apply (the Hello's, after the daemon's caps and defaults).
	Class            fsevent.Class
	QueueLimit       int // -1: unlimited
	MarkLimit        int // 0: none
	Deadline         time.Duration
	DeadlineVerdict  fsevent.Verdict
	CloseVerdict     fsevent.Verdict
	QueueFullVerdict fsevent.Verdict
	// EventFDs says permission events will carry their file (Event.FD).
	EventFDs bool
	// MountMarks says the client may add mount and filesystem marks.
	MountMarks bool
	// UID, GID and PID are the client's credentials as the daemon saw them (SO_PEERCRED);
	// they decide what it may do.
	UID, GID uint32
	PID      int32
}

func (*Welcome) Type() Type          { return TypeWelcome }
func (m *Welcome) RequestID() uint64 { return m.Req }

func (m *Welcome) check() *Error {
	t := m.Type()
	if err := checkReq(t, m.Req, true); err != nil {
		return err
	}
	if m.Version < MinVersion || m.Version > MaxVersion {
		return errorf(CodeVersion, "Welcome: version %d: this side speaks %d..%d", m.Version, MinVersion, MaxVersion)
	}
	if m.ClientID == 0 || m.Instance.IsZero() {
		return errorf(CodeBadField, "Welcome: client id and instance must be nonzero")
	}
	if m.Class > fsevent.ClassPreContent {
		return errorf(CodeBadField, "Welcome: class %d", m.Class)
	}
	if err := checkQueueLimit(t, m.QueueLimit); err != nil {
		return err
	}
	if m.MarkLimit < 0 || m.MarkLimit > math.MaxInt32 {
		return errorf(CodeBadField, "Welcome: mark limit %d", m.MarkLimit)
	}
	if err := checkDuration(t, "deadline", m.Deadline); err != nil {
		return err
	}
	for _, v := range []fsevent.Verdict{m.DeadlineVerdict, m.CloseVerdict, m.QueueFullVerdict} {
		if err := checkVerdict(t, "verdict", v); err != nil {
			return err
		}
	}
	return checkText(t, "daemon version", m.DaemonVersion, MaxName)
}

func (m *Welcome) appendPayload(b []byte) []byte {
	b = appendU16(b, m.Version)
	var f uint16
	if m.Fresh {
		f |= welcomeFresh
	}
	if m.EventFDs {
		f |= welcomeEventFDs
	}
	if m.MountMarks {
		f |= welcomeMountMarks
	}
	b = appendU16(b, f)
	b = append(b, byte(m.Class), byte(m.DeadlineVerdict), byte(m.CloseVerdict), byte(m.QueueFullVerdict))
	b = appendU64(b, m.ClientID)
	b = append(b, m.Instance[:]...)
	b = appendU64(b, uint64(m.Deadline))
	b = appendU32(b, uint32(int32(m.QueueLimit)))
	b = appendU32(b, uint32(m.MarkLimit))
	b = appendU32(b, m.UID)
	b = appendU32(b, m.GID)
	b = appendU32(b, uint32(m.PID))
	return appendStr(b, m.DaemonVersion)
}

func (m *Welcome) decode(d *decoder, req uint64) {
	m.Req = req
	m.Version = d.u16("version")
	f := d.flags(2, welcomeKnownFlags, "flags")
	m.Fresh, m.EventFDs, m.MountMarks = f&welcomeFresh != 0, f&welcomeEventFDs != 0, f&welcomeMountMarks != 0
	m.Class = fsevent.Class(d.u8("class"))
	m.DeadlineVerdict = fsevent.Verdict(d.u8("deadline verdict"))
	m.CloseVerdict = fsevent.Verdict(d.u8("close verdict"))
	m.QueueFullVerdict = fsevent.Verdict(d.u8("queue-full verdict"))
	m.ClientID = d.u64("client id")
	copy(m.Instance[:], d.take(16, "instance"))
	m.Deadline = time.Duration(d.u64("deadline")) // negative values fail check
	m.QueueLimit = int(int32(d.u32("queue limit")))
	m.MarkLimit = int(int32(d.u32("mark limit"))) // values ≥ 2^31 become negative and fail check
	m.UID = d.u32("uid")
	m.GID = d.u32("gid")
	m.PID = int32(d.u32("pid"))
	m.DaemonVersion = d.str("daemon version")
}

// Result answers a request (daemon → client): success, with the id the request produced, or
// an error with a code and a message. Every request with a nonzero Req gets exactly one
// answer: its own reply type (Welcome, Stats, Pong) or a Result; a Respond with Req 0 gets a
// Result (with Req 0) only if it failed.
type Result struct {
	noFDs
	Req uint64 // the request's; 0 only for a failed Respond sent with Req 0
	// ID is what the request produced or named: the mark id for AddMark and RemoveMark (0 for
	// RemoveAll), the event id for Respond, else 0.
	ID uint64
	// Code is CodeOK for success, else a request error (16 and up).
	Code Code
	// Message explains a failure (at most MaxMessage bytes of UTF-8).
	Message string
}

func (*Result) Type() Type          { return TypeResult }
func (m *Result) RequestID() uint64 { return m.Req }

// Err returns nil for success, else the failure as an *Error.
func (m *Result) Err() error {
	if m.Code == CodeOK {
		return nil
	}
	return &Error{Code: m.Code, Msg: m.Message}
}

// ResultFor returns the Result answering request req with id and err (nil for success);
// err becomes a code and message as by AsError. A protocol error code (which belongs in a
// Fatal) becomes CodeInternal, so the Result always encodes.
func ResultFor(req, id uint64, err error) *Result {
	r := &Result{Req: req, ID: id}
	if e := AsError(err); e != nil {
		r.Code, r.Message = e.Code, e.Msg
		if e.Code.Protocol() {
			r.Code, r.Message = CodeInternal, cleanMessage(e.Error())
		}
	}
	return r
}

func (m *Result) check() *Error {
	if m.Req == 0 && m.Code == CodeOK {
		return errorf(CodeBadField, "Result: request id 0 with success")
	}
	if m.Code.Protocol() {
		return errorf(CodeBadField, "Result: code %v is a protocol error, which only a Fatal reports", m.Code)
	}
	return checkText(m.Type(), "message", m.Message, MaxMessage)
}

func (m *Result) appendPayload(b []byte) []byte {
	b = appendU64(b, m.ID)
	b = appendU16(b, uint16(m.Code))
	return appendStr(b, m.Message)
}

func (m *Result) decode(d *decoder, req uint64) {
	m.Req = req
	m.ID = d.u64("id")
	m.Code = Code(d.u16("code"))
	m.Message = d.str("message")
}

// Fatal reports an error that ends the connection (daemon → client); the daemon closes the
// connection after it. Req is the request that caused it, if known, else 0.
type Fatal struct {
	noFDs
	Req     uint64
	Code    Code // nonzero
	Message string
}

func (*Fatal) Type() Type          { return TypeFatal }
func (m *Fatal) RequestID() uint64 { return m.Req }

// Err returns the error as an *Error.
func (m *Fatal) Err() error { return &Error{Code: m.Code, Msg: m.Message} }

// FatalFor returns the Fatal reporting err (as by AsError) for request req (or 0).
func FatalFor(req uint64, err error) *Fatal {
	e := AsError(err)
	if e == nil {
		e = &Error{Code: CodeInternal}
	}
	return &Fatal{Req: req, Code: e.Code, Message: e.Msg}
}

func (m *Fatal) check() *Error {
	if m.Code == CodeOK {
		return errorf(CodeBadField, "Fatal: code 0")
	}
	return checkText(m.Type(), "message", m.Message, MaxMessage)
}

func (m *Fatal) appendPayload(b []byte) []byte {
	b = appendU16(b, uint16(m.Code))
	return appendStr(b, m.Message)
}

func (m *Fatal) decode(d *decoder, req uint64) {
	m.Req = req
	m.Code = Code(d.u16("code"))
	m.Message = d.str("message")
}

// Pong answers a Ping (daemon → client).
type Pong struct {
	noFDs
	Req uint64 // the Ping's
}

func (*Pong) Type() Type                      { return TypePong }
func (m *Pong) RequestID() uint64             { return m.Req }
func (m *Pong) check() *Error                 { return checkReq(m.Type(), m.Req, true) }
func (m *Pong) appendPayload(b []byte) []byte { return b }
func (m *Pong) decode(_ *decoder, req uint64) { m.Req = req }

// Event flag bits.
const (
	eventHasUID      = 1 << iota
	eventPathUnknown // version 2
	eventHasObject   // version 2: dev and ino follow the strings
	eventKnownFlags  = 1<<iota - 1
)

// eventFixed is the size of Event's fixed part; eventObjectSize that of the object's device
// and inode (version 2, after the strings).
const (
	eventFixed      = 64
	eventObjectSize = 16
)

// Event is one event for the client (daemon → client): a notification, or a permission event
// the client must answer with Respond before its deadline. It is the record fsevent.Event (a
// conversion away: fsevent.Event(*m)), every field of which it carries but Exe, which the
// daemon does not send (it is "" in a decoded Event):
//
//   - ID identifies a permission event for Respond; 0 for a notification.
//   - Mask holds the event bits the client's marks selected, plus OnDir for a directory. A
//     permission event holds exactly one permission bit. Never QueueOverflow (see Overflow).
//   - Time is when the daemon saw the event (zero if unknown; sent as nanoseconds since the
//     Unix epoch, 0 for unknown).
//   - Pid and Tid are the process and thread that caused the event, in the daemon's pid
//     namespace (0 if unknown).
//   - UID is the accessing process's effective uid, when HasUID (only for clients that asked
//     with Hello.WantUID, and only if the daemon could find it).
//   - Path is the object's path; OldPath the source path of a rename or move (each at most
//     MaxPath bytes in version 1, MaxLongPath from version 2). Both are "" when unknown (or,
//     for an unprivileged client, not its to know).
//   - PathUnknown (version 2) says the daemon could not read the object's path (deeper than
//     the kernel prints for a file, or printed wrong): Path is "", and a client deciding by
//     path must treat it as unknown, never as a path that matches nothing.
//   - Dev and Ino (version 2, with HasObject) identify the object the event is reported on
//     (for a directory-entry event, the directory): st_dev as makedev(major, minor) and the
//     inode number.
//   - Name is the entry name of a directory-entry event or of a child's event; NewName the
//     new name of a Rename (each at most MaxName bytes, no '/').
//   - Comm is the accessing process's command name (at most MaxName bytes), for clients that
//     asked with Hello.WantComm.
//   - Range is the byte range of a PreAccess event (zero otherwise).
//   - FSErrno and FSErrorCount describe an FSError event (zero otherwise).
//   - FD is the permission event's open file, for clients granted Welcome.EventFDs (only
//     with a nonzero ID). The client owns it and must close it.
type Event fsevent.Event

func (*Event) Type() Type        { return TypeEvent }
func (*Event) RequestID() uint64 { return 0 }

// IsDir reports whether the event's object is a directory (Mask has OnDir).
func (m *Event) IsDir() bool { return m.Mask&fsevent.OnDir != 0 }

func (m *Event) check() *Error {
	if err := m.checkFields(); err != nil {
		return err
	}
	return m.checkStrings()
}

// checkFields is check without the string rules (checkStrings).
func (m *Event) checkFields() *Error {
	if m.Mask == 0 || m.Mask&fsevent.QueueOverflow != 0 {
		return errorf(CodeBadField, "Event: mask %v: want event bits, without Q_OVERFLOW", m.Mask)
	}
	if m.Range != (fsevent.Range{}) && m.Mask&fsevent.PreAccess == 0 {
		return errorf(CodeBadField, "Event: byte range without PRE_ACCESS")
	}
	if (m.FSErrno != 0 || m.FSErrorCount != 0) && m.Mask&fsevent.FSError == 0 {
		return errorf(CodeBadField, "Event: filesystem error fields without FS_ERROR")
	}
	if m.UID != 0 && !m.HasUID {
		return errorf(CodeBadField, "Event: uid %d without HasUID", m.UID)
	}
	if m.FD.Valid() && m.ID == 0 {
		return errorf(CodeBadField, "Event: fd on a notification (event id 0)")
	}
	if m.PathUnknown && m.Path != "" {
		return errorf(CodeBadField, "Event: a path with PATH_UNKNOWN")
	}
	if (m.Dev != 0 || m.Ino != 0) && !m.HasObject {
		return errorf(CodeBadField, "Event: device or inode without HAS_OBJECT")
	}
	return nil
}

// checkStrings applies the string rules to the event's strings. They depend on the strings
// alone: a reader whose event's strings are the very bytes of the last event it decoded
// and checked may skip them (decodeFrame). One call per field, not a loop over a table
// built per event (which cost a client 7% of its CPU under bench/fanout.sh's load).
func (m *Event) checkStrings() *Error {
	t := TypeEvent
	if err := checkString(t, "path", m.Path, MaxLongPath, false); err != nil {
		return err
	}
	if err := checkString(t, "old path", m.OldPath, MaxLongPath, false); err != nil {
		return err
	}
	if err := checkString(t, "name", m.Name, MaxName, true); err != nil {
		return err
	}
	if err := checkString(t, "new name", m.NewName, MaxName, true); err != nil {
		return err
	}
	return checkString(t, "comm", m.Comm, MaxName, false)
}

func (m *Event) appendPayload(b []byte) []byte {
	b = appendU64(b, m.ID)
	b = appendU64(b, uint64(m.Mask))
	var ns int64
	if !m.Time.IsZero() {
		ns = m.Time.UnixNano()
	}
	b = appendU64(b, uint64(ns))
	b = appendU32(b, uint32(m.Pid))
	b = appendU32(b, uint32(m.Tid))
	b = appendU32(b, m.UID)
	b = appendU32(b, m.flags())
	b = appendU64(b, m.Range.Offset)
	b = appendU64(b, m.Range.Count)
	b = appendU32(b, uint32(m.FSErrno))
	b = appendU32(b, m.FSErrorCount)
	b = appendStr(b, m.Path)
	b = appendStr(b, m.OldPath)
	b = appendStr(b, m.Name)
	b = appendStr(b, m.NewName)
	b = appendStr(b, m.Comm)
	if m.HasObject {
		b = appendU64(b, m.Dev)
		b = appendU64(b, m.Ino)
	}
	return b
}

func (m *Event) flags() uint32 {
	var f uint32
	if m.HasUID {
		f |= eventHasUID
	}
	if m.PathUnknown {
		f |= eventPathUnknown
	}
	if m.HasObject {
		f |= eventHasObject
	}
	return f
}

// V2 reports whether m uses what version 2 added: PathUnknown, HasObject, or a path longer
// than MaxPath.
func (m *Event) V2() bool {
	return m.PathUnknown || m.HasObject || len(m.Path) > MaxPath || len(m.OldPath) > MaxPath
}

// ForVersion makes m fit protocol version v: for version 1 it drops what version 2 added,
// and a path longer than MaxPath becomes "" (unknown, in version 1's terms).
func (m *Event) ForVersion(v uint16) {
	if v >= 2 {
		return
	}
	m.PathUnknown, m.HasObject, m.Dev, m.Ino = false, false, 0, 0
	if len(m.Path) > MaxPath {
		m.Path = ""
	}
	if len(m.OldPath) > MaxPath {
		m.OldPath = ""
	}
}

var eventStrings = []string{"path", "old path", "name", "new name", "comm"}

func (m *Event) decode(d *decoder, req uint64) {
	if req != 0 {
		d.fail(CodeBadField, "request id %d: events have none", req)
		return
	}
	p := d.take(eventFixed, "fixed fields")
	if len(p) != eventFixed {
		return
	}
	// The fixed part is all there, so reading it needs no checks (appendPayload's layout):
	// only the flags can fail.
	le := binary.LittleEndian
	m.ID = le.Uint64(p[0:8])
	m.Mask = fsevent.Mask(le.Uint64(p[8:16]))
	if ns := int64(le.Uint64(p[16:24])); ns != 0 {
		m.Time = time.Unix(0, ns)
	}
	m.Pid = int32(le.Uint32(p[24:28]))
	m.Tid = int32(le.Uint32(p[28:32]))
	m.UID = le.Uint32(p[32:36])
	flags := le.Uint32(p[36:40])
	if flags&^eventKnownFlags != 0 {
		d.fail(CodeBadField, "%s: unknown bits %#x", "flags", flags&^eventKnownFlags)
		return
	}
	m.HasUID = flags&eventHasUID != 0
	m.PathUnknown = flags&eventPathUnknown != 0
	m.HasObject = flags&eventHasObject != 0
	m.Range.Offset = le.Uint64(p[40:48])
	m.Range.Count = le.Uint64(p[48:56])
	m.FSErrno = int32(le.Uint32(p[56:60]))
	m.FSErrorCount = le.Uint32(p[60:64])
	d.strings([]*string{&m.Path, &m.OldPath, &m.Name, &m.NewName, &m.Comm}, eventStrings)
	if m.HasObject {
		m.Dev = d.u64("dev")
		m.Ino = d.u64("ino")
	}
}

func (m *Event) appendFDs(fds []int) []int {
	if m.FD.Valid() {
		fds = append(fds, m.FD.Int())
	}
	return fds
}
func (m *Event) takeFDs(fds []int) { m.FD = fdAt(fds, 0) }
func (m *Event) numFDs() int       { return b2i(m.FD.Valid()) }
func (m *Event) closeFDs()         { m.FD.Close() }

// OverflowReason says where events were lost.
type OverflowReason uint8

const (
	// OverflowUnknown: the daemon does not know which queue overflowed.
	OverflowUnknown OverflowReason = 0
	// OverflowQueue: the client's own event queue was full (it reads too slowly).
	OverflowQueue OverflowReason = 1
	// OverflowKernel: the kernel's queue overflowed; every client may have lost events.
	OverflowKernel OverflowReason = 2
	// OverflowConnection: the daemon's send buffer for this connection was full.
	OverflowConnection OverflowReason = 3
)

func (r OverflowReason) String() string {
	switch r {
	case OverflowUnknown:
		return "unknown"
	case OverflowQueue:
		return "queue"
	case OverflowKernel:
		return "kernel"
	case OverflowConnection:
		return "connection"
	}
	return "overflow-reason(" + strconv.Itoa(int(r)) + ")"
}

// Overflow says the client lost events (daemon → client), like fanotify's FAN_Q_OVERFLOW:
// it should rescan what it watches. The daemon sends it once per loss, in order with the
// events (the events before it arrived; some after the previous event did not).
type Overflow struct {
	noFDs
	Reason OverflowReason
	// Lost is how many events were lost, or 0 if unknown.
	Lost uint64
}

func (*Overflow) Type() Type        { return TypeOverflow }
func (*Overflow) RequestID() uint64 { return 0 }

func (m *Overflow) check() *Error {
	if m.Reason > OverflowConnection {
		return errorf(CodeBadField, "Overflow: reason %d", m.Reason)
	}
	return nil
}

func (m *Overflow) appendPayload(b []byte) []byte {
	b = append(b, byte(m.Reason), 0, 0, 0, 0, 0, 0, 0)
	return appendU64(b, m.Lost)
}

func (m *Overflow) decode(d *decoder, req uint64) {
	if req != 0 {
		d.fail(CodeBadField, "request id %d: overflows have none", req)
		return
	}
	m.Reason = OverflowReason(d.u8("reason"))
	d.reserved(7, "reserved")
	m.Lost = d.u64("lost")
}

// RingGrant follows a version-5 Welcome when the client asked for the permission ring
// (Hello.WantRing) and the daemon grants it (daemon → client, Req the Hello's): the ring's
// memory (a sealed memfd of RingSize bytes) and the write end of the pipe that kicks the
// daemon (ring_linux.go, docs/protocol.md "The permission ring"). From then on the client's
// events and overflows come through the ring, in order, and its answers may go through it.
type RingGrant struct {
	Req       uint64
	Mem, Kick FD
}

func (*RingGrant) Type() Type          { return TypeRingGrant }
func (m *RingGrant) RequestID() uint64 { return m.Req }
func (m *RingGrant) check() *Error {
	if err := checkReq(m.Type(), m.Req, true); err != nil {
		return err
	}
	return checkFDs(m.Type(), m.numFDs(), 2)
}
func (m *RingGrant) appendPayload(b []byte) []byte { return appendU32(b, RingSize) }
func (m *RingGrant) decode(d *decoder, req uint64) {
	m.Req = req
	if n := d.u32("ring size"); d.err == nil && n != RingSize {
		d.fail(CodeBadField, "RingGrant: ring of %d bytes; this side knows %d", n, RingSize)
	}
}
func (m *RingGrant) appendFDs(fds []int) []int {
	if m.Mem.Valid() && m.Kick.Valid() {
		fds = append(fds, m.Mem.Int(), m.Kick.Int())
	}
	return fds
}
func (m *RingGrant) takeFDs(fds []int) { m.Mem, m.Kick = fdAt(fds, 0), fdAt(fds, 1) }
func (m *RingGrant) numFDs() int       { return b2i(m.Mem.Valid()) + b2i(m.Kick.Valid()) }
func (m *RingGrant) closeFDs()         { m.Mem.Close(); m.Kick.Close() }

package proto

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// FD is a file descriptor carried by a message: fsevent.FD. Its zero value carries none, so a
// message built as a literal never sends fd 0 (stdin) by accident — a daemon that leaked its
// own stdin to a client would be a confused deputy.
//
// Ownership: Encode, Append and Conn.WriteMsg never close a message's fds (the kernel holds
// its own reference once sendmsg returns, so the sender may close them then). Decode and
// Conn.ReadMsg hand the received fds to the message: the receiver owns them and must close
// them (CloseFDs, FD.Close) or take them (FD.Take).
type FD = fsevent.FD

// NewFD returns an FD holding fd; a negative fd gives the empty FD.
func NewFD(fd int) FD { return fsevent.NewFD(fd) }

// Msg is a protocol message: one of *Hello, *AddMark, *RemoveMark, *Respond, *StatsRequest,
// *Ping, *Bye, *Report, *FlushCache (client → daemon) or *Welcome, *Result, *Event,
// *Overflow, *Stats, *Pong, *Fatal, *RingGrant (daemon → client). The set is closed: only this package's types implement it.
type Msg interface {
	// Type is the message's type.
	Type() Type
	// RequestID is the request id carried in the frame header (0 for Event and Overflow).
	RequestID() uint64

	check() *Error                 // the field rules, shared by Encode and Decode
	appendPayload(b []byte) []byte // after check
	appendFDs(fds []int) []int     // the fds to send, in order
	decode(d *decoder, req uint64) // fills the message from the payload
	takeFDs(fds []int)             // hands received fds to the message (count checked by check)
	numFDs() int                   // fds the message holds
	closeFDs()
}

// CloseFDs closes every file descriptor m holds and empties its FD fields. Receivers call it
// for a message they are done with (or reject); it is a no-op for messages without fds.
func CloseFDs(m Msg) {
	if m != nil {
		m.closeFDs()
	}
}

// Encode returns m's frame and the file descriptors to attach to it.
func Encode(m Msg) (frame []byte, fds []int, err error) {
	return Append(nil, nil, m)
}

// Append appends m's frame to buf and the fds that travel with it to fds, and returns the
// extended slices. On error (an *Error with CodeBadField or CodeTooLarge, saying which
// field) buf and fds are returned unchanged. A message that encodes without error always
// decodes to an equal message.
func Append(buf []byte, fds []int, m Msg) ([]byte, []int, error) {
	if m == nil {
		return buf, fds, errorf(CodeBadField, "nil message")
	}
	if err := m.check(); err != nil {
		return buf, fds, err
	}
	start := len(buf)
	out := appendHeader(buf, Header{Type: m.Type(), Req: m.RequestID()})
	out = m.appendPayload(out)
	n := len(out) - start - HeaderSize
	if n > MaxPayloadOf(m.Type()) {
		return buf[:start], fds, errorf(CodeTooLarge, "%s frame of %d bytes exceeds the %d-byte limit", m.Type(), n+HeaderSize, MaxFrame)
	}
	nfds := len(fds)
	fds = m.appendFDs(fds)
	binary.LittleEndian.PutUint32(out[start:], uint32(n))
	out[start+6] = byte(len(fds) - nfds)
	return out, fds, nil
}

// Decode checks and parses one whole frame (header and payload) whose fds, in order, are
// fds. On success the message owns fds. On error it returns an *Error (CodeTruncated,
// CodeTooLarge, CodeUnknownType, CodeBadField, CodeFDCount or CodeVersion) and leaves fds to
// the caller, who must close them; it never panics, whatever the bytes.
func Decode(frame []byte, fds []int) (Msg, error) {
	return decodeFrame(frame, fds, nil, nil)
}

// decodeFrame is Decode that, for an Event, decodes into into (zeroed first) instead of a
// new Event when into is not nil, and reuses *last for the event's strings when they are the
// same bytes as last time (else sets it): a reader that keeps both saves the two allocations
// an event costs (Conn.ReadMsgInto). *last is only ever the strings of an event that decoded
// and passed every check (an error clears it), so an event whose strings are those same
// bytes — the same strings, length prefixes included — skips the string rules
// (Event.checkStrings), which depend on nothing else.
func decodeFrame(frame []byte, fds []int, into *Event, last *string) (m Msg, err error) {
	if last != nil {
		defer func() {
			if err != nil {
				*last = ""
			}
		}()
	}
	h, err := DecodeHeader(frame)
	if err != nil {
		return nil, err
	}
	if int(h.Length) != len(frame)-HeaderSize {
		if int(h.Length) > len(frame)-HeaderSize {
			return nil, errorf(CodeTruncated, "%s frame: payload of %d bytes declared, %d present", h.Type, h.Length, len(frame)-HeaderSize)
		}
		return nil, errorf(CodeBadField, "%s frame: %d bytes after the declared %d-byte payload", h.Type, len(frame)-HeaderSize-int(h.Length), h.Length)
	}
	if int(h.NFDs) != len(fds) {
		return nil, errorf(CodeFDCount, "%s frame declares %d fds, %d received", h.Type, h.NFDs, len(fds))
	}
	d := decoder{b: frame[HeaderSize:], t: h.Type, last: last}
	if h.Type == TypeEvent && into != nil {
		*into = Event{}
		into.decode(&d, h.Req)
		m = into
	} else {
		m = decodeMsg(h.Type, &d, h.Req)
	}
	if d.err == nil && d.off != len(d.b) && !d.trailingOK {
		d.fail(CodeBadField, "%d trailing bytes", len(d.b)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	m.takeFDs(fds)
	if m.numFDs() != len(fds) {
		m.takeFDs(nil)
		return nil, errorf(CodeFDCount, "%s frame carries %d fds; a %s takes %s", h.Type, len(fds), h.Type, fdRule(h.Type))
	}
	var cerr *Error
	if d.reused && m == Msg(into) {
		cerr = into.checkFields() // its strings are the last event's, checked (see above)
	} else {
		cerr = m.check()
	}
	if cerr != nil {
		m.takeFDs(nil) // the caller keeps ownership on error
		return nil, cerr
	}
	return m, nil
}

// fdRule says how many fds a message type carries, for error messages.
func fdRule(t Type) string {
	switch t {
	case TypeAddMark:
		return "exactly 1"
	case TypeRemoveMark:
		return "1 by target, else none"
	case TypeEvent:
		return "at most 1, on a permission event"
	case TypeRingGrant:
		return "exactly 2"
	}
	return "none"
}

// decodeMsg decodes a payload of type t. Each case calls a concrete method, not one through
// the Msg interface, so that the compiler can keep d on the stack.
func decodeMsg(t Type, d *decoder, req uint64) Msg {
	switch t {
	case TypeHello:
		m := new(Hello)
		m.decode(d, req)
		return m
	case TypeRingGrant:
		m := new(RingGrant)
		m.decode(d, req)
		return m
	case TypeAddMark:
		m := new(AddMark)
		m.decode(d, req)
		return m
	case TypeRemoveMark:
		m := new(RemoveMark)
		m.decode(d, req)
		return m
	case TypeRespond:
		m := new(Respond)
		m.decode(d, req)
		return m
	case TypeStatsRequest:
		m := new(StatsRequest)
		m.decode(d, req)
		return m
	case TypePing:
		m := new(Ping)
		m.decode(d, req)
		return m
	case TypeBye:
		m := new(Bye)
		m.decode(d, req)
		return m
	case TypeReport:
		m := new(Report)
		m.decode(d, req)
		return m
	case TypeFlushCache:
		m := new(FlushCache)
		m.decode(d, req)
		return m
	case TypeWelcome:
		m := new(Welcome)
		m.decode(d, req)
		return m
	case TypeResult:
		m := new(Result)
		m.decode(d, req)
		return m
	case TypeEvent:
		m := new(Event)
		m.decode(d, req)
		return m
	case TypeOverflow:
		m := new(Overflow)
		m.decode(d, req)
		return m
	case TypeStats:
		m := new(Stats)
		m.decode(d, req)
		return m
	case TypePong:
		m := new(Pong)
		m.decode(d, req)
		return m
	case TypeFatal:
		m := new(Fatal)
		m.decode(d, req)
		return m
	}
	panic("proto: decodeMsg of unchecked type " + t.String()) // DecodeHeader checked t
}

// decoder reads little-endian fields from a payload. The first failure sticks in err and
// every later read returns zero, so decode methods read straight through without checks.
type decoder struct {
	b          []byte
	off        int
	t          Type
	err        *Error
	trailingOK bool // set by Hello when the peer speaks a newer version
	// last, if not nil, is the strings block of the reader's previous event: strings reuses
	// it for the same bytes (see decodeFrame), and says so in reused.
	last   *string
	reused bool
}

func (d *decoder) fail(c Code, format string, args ...any) {
	if d.err == nil {
		d.err = errorf(c, d.t.String()+": "+format, args...)
	}
}

func (d *decoder) take(n int, field string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.fail(CodeTruncated, "payload ends inside %s (%d bytes needed at offset %d, %d left)", field, n, d.off, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *decoder) u8(field string) uint8 {
	if p := d.take(1, field); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16(field string) uint16 {
	if p := d.take(2, field); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32(field string) uint32 {
	if p := d.take(4, field); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64(field string) uint64 {
	if p := d.take(8, field); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

// reserved reads n bytes that must be zero.
func (d *decoder) reserved(n int, field string) {
	for _, c := range d.take(n, field) {
		if c != 0 {
			d.fail(CodeBadField, "%s: reserved bytes must be 0", field)
			return
		}
	}
}

// flags reads a flag word of size bytes (1, 2 or 4) and rejects bits outside known.
func (d *decoder) flags(size int, known uint32, field string) uint32 {
	var v uint32
	switch size {
	case 1:
		v = uint32(d.u8(field))
	case 2:
		v = uint32(d.u16(field))
	default:
		v = d.u32(field)
	}
	if v&^known != 0 {
		d.fail(CodeBadField, "%s: unknown bits %#x", field, v&^known)
	}
	return v
}

// strSpan reads a length-prefixed string and returns its bounds in d.b without copying, so
// a message with several strings can convert them with one allocation (see strings).
func (d *decoder) strSpan(field string) (start, end int) {
	if d.err != nil {
		return 0, 0
	}
	if len(d.b)-d.off < 2 {
		d.fail(CodeTruncated, "payload ends inside the length of %s (offset %d)", field, d.off)
		return 0, 0
	}
	n := int(binary.LittleEndian.Uint16(d.b[d.off:]))
	d.off += 2
	start = d.off
	d.take(n, field)
	if d.err != nil {
		return 0, 0
	}
	return start, d.off
}

// str reads one length-prefixed string (its own allocation; the field rules are in check).
func (d *decoder) str(field string) string {
	s, e := d.strSpan(field)
	return string(d.b[s:e])
}

// strings reads len(dst) consecutive length-prefixed strings into dst with a single
// allocation shared by all of them (they are adjacent in the payload).
func (d *decoder) strings(dst []*string, fields []string) {
	var spans [8][2]int
	first := d.off
	for i := range dst {
		spans[i][0], spans[i][1] = d.strSpan(fields[i])
	}
	if d.err != nil {
		return
	}
	var all string
	if b := d.b[first:d.off]; d.last != nil && *d.last == string(b) {
		all = *d.last // the same path, name and process as the last event: no allocation
		d.reused = true
	} else {
		all = string(b)
		if d.last != nil {
			*d.last = all
		}
	}
	for i, p := range dst {
		*p = all[spans[i][0]-first : spans[i][1]-first]
	}
}

func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

func appendStr(b []byte, s string) []byte {
	b = appendU16(b, uint16(len(s)))
	return append(b, s...)
}

// checkString applies the rules for a string field: at most max bytes, no NUL (no Linux path
// or name holds one, and a C client must be able to use them as C strings), and for a file
// name no '/'.
func checkString(t Type, field, s string, max int, isName bool) *Error {
	if len(s) > max {
		return errorf(CodeBadField, "%s: %s is %d bytes; the limit is %d", t, field, len(s), max)
	}
	// strings.IndexByte rather than a loop over the bytes: every string of every event is
	// checked, when the daemon encodes it and when a client decodes it (6% of bench/fanout's
	// clients' CPU as a loop).
	if i := strings.IndexByte(s, 0); i >= 0 {
		return errorf(CodeBadField, "%s: %s holds a NUL byte at %d", t, field, i)
	}
	if isName && strings.IndexByte(s, '/') >= 0 {
		return errorf(CodeBadField, "%s: %s %q holds a '/'", t, field, s)
	}
	return nil
}

// checkText is checkString for human-readable text, which must also be valid UTF-8 (it is
// logged and printed).
func checkText(t Type, field, s string, max int) *Error {
	if err := checkString(t, field, s, max, false); err != nil {
		return err
	}
	if !utf8.ValidString(s) {
		return errorf(CodeBadField, "%s: %s is not valid UTF-8", t, field)
	}
	return nil
}

func checkReq(t Type, req uint64, required bool) *Error {
	if required && req == 0 {
		return errorf(CodeBadField, "%s needs a nonzero request id", t)
	}
	return nil
}

// AppendEvent appends m's frame to buf, as Append does for an Event without fds (a
// notification), without boxing m in a Msg: the daemon's notification path encodes each event
// once into a buffer it reuses, with no allocation per event.
func AppendEvent(buf []byte, m *Event) ([]byte, error) {
	if m.FD.Valid() {
		return buf, errorf(CodeBadField, "Event: AppendEvent is for events without an fd")
	}
	if err := m.check(); err != nil {
		return buf, err
	}
	start := len(buf)
	out := appendHeader(buf, Header{Type: TypeEvent})
	out = m.appendPayload(out)
	n := len(out) - start - HeaderSize
	if n > MaxPayloadOf(TypeEvent) {
		return buf[:start], errorf(CodeTooLarge, "%s frame of %d bytes exceeds the %d-byte limit", TypeEvent, n+HeaderSize, MaxFrame)
	}
	binary.LittleEndian.PutUint32(out[start:], uint32(n))
	return out, nil
}

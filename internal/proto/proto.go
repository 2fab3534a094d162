// Package proto is the wire protocol between the fsnotifyd daemon (`fsnotifyd serve`) and its
// clients: versioned, length-prefixed binary frames on a SOCK_STREAM unix socket, with file
// descriptors passed by SCM_RIGHTS alongside the frames that use them. docs/protocol.md is
// the specification; this package is its reference implementation, used by the daemon and by
// the client library alike, so the two cannot drift apart.
//
// The package has three layers:
//
//   - messages: one struct per message type (Hello, AddMark, ..., Event, Fatal), all
//     implementing Msg;
//   - the codec: Encode/Append turn a Msg into one frame and the fds that travel with it,
//     Decode and DecodeHeader check and parse a frame; every violation is an *Error with a
//     Code, never a panic;
//   - Conn: a *net.UnixConn that reads and writes whole messages, claims the fds of each
//     frame, closes those of a frame it rejects, and enforces the handshake.
//
// Decoding is strict: a frame is accepted only in its one canonical encoding (reserved bits
// and bytes zero, no trailing bytes, enums in range), so that re-encoding an accepted message
// yields the same bytes (the fuzz target checks this). Any decode error is fatal for the
// connection: the stream can no longer be trusted to be in sync. Errors in what a request
// asks for (a mark the client may not add, an unknown event id) are not decode errors; the
// daemon answers them with a Result and the connection lives on.
//
// Only the standard library is used: golang.org/x/sys/unix is reserved to internal/sys.
package proto

import (
	"encoding/binary"
	"fmt"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// Protocol versions. A client sends the range it speaks in Hello; the daemon answers with the
// highest version both speak, or refuses with CodeVersion (see Negotiate).
//
// Version 2 adds to Event what is known of an object whose path the daemon could not read:
// the flag PathUnknown, the object's device and inode (HasObject), and paths longer than
// PATH_MAX (up to MaxLongPath). A daemon speaking version 1 to a client sends none of them
// (Event.ForVersion): such an event then has an empty path, which version 1 defines as
// unknown.
//
// Version 3 adds Report (report.go): a client that decides permission events may tell the
// daemon what it decided and why, for the daemon's fleet export. A client sends it only on a
// connection of version 3 or later.
//
// Version 4 appends options to Hello (after its name, in a Hello whose MaxVersion is 4 or
// more): NoPaths, by which a client that needs no paths in its permission events saves the
// daemon a readlink and a statx per event.
//
// Version 5 appends a second options word to Hello (WantRing) and adds RingGrant, the one
// message that carries two fds: the permission ring (ring_linux.go).
//
// Version 6 adds FlushCache (flush.go): a permission client may have the daemon withdraw the
// allows cached in its kernel groups (Respond's Cache), and so may set Cache although its
// rules change (a policy reload).
const (
	// Version is the protocol version this package implements.
	Version uint16 = 6
	// MinVersion and MaxVersion bound the versions this package can speak.
	MinVersion uint16 = 1
	MaxVersion uint16 = 6
)

// Magic opens every Hello payload: the bytes "FSND". It makes a stray connection from some
// other protocol fail at once with a clear error, and makes hex dumps easy to recognise.
const Magic uint32 = 'F' | 'S'<<8 | 'N'<<16 | 'D'<<24

// Limits. They bound what a peer can make the other side allocate or hold.
const (
	// HeaderSize is the size of the frame header.
	HeaderSize = 16
	// MaxFrame is the largest frame, header included (1 MiB).
	MaxFrame = 1 << 20
	// MaxPayload is the largest payload (MaxFrame - HeaderSize).
	MaxPayload = MaxFrame - HeaderSize
	// MaxFDs is the most file descriptors one frame may carry. In version 1 a message carries
	// at most one (a mark target or a permission event's file).
	MaxFDs = 1
	// maxGrantFDs is what RingGrant carries, the one exception to MaxFDs (version 5).
	maxGrantFDs = 2
	// MaxPath bounds a path in version 1 (PATH_MAX).
	MaxPath = 4096
	// MaxLongPath bounds a path from version 2 on: the longest path the daemon builds for an
	// object deeper than PATH_MAX (32 KiB).
	MaxLongPath = 32 << 10
	// MaxName bounds a file name (NAME_MAX) and the other short strings: client name, daemon
	// version, command name.
	MaxName = 255
	// MaxMessage bounds the human-readable text of an error.
	MaxMessage = 1024
	// MaxHello bounds a Hello's payload, in this and every later version (which may append
	// fields to it): a daemon never buffers more than this for a client it has not accepted.
	MaxHello = 4096
	// MaxStatsClients bounds the client entries of one Stats reply; a daemon with more clients
	// sets Stats.Truncated.
	MaxStatsClients = 2048
	// MaxBuckets bounds the latency histogram of a Stats reply.
	MaxBuckets = 32
)

// Type is a message type, the frame header's second field. The high bit says the direction:
// clear for client → daemon, set for daemon → client.
type Type uint16

// Client → daemon.
const (
	TypeHello        Type = 0x0001
	TypeAddMark      Type = 0x0002
	TypeRemoveMark   Type = 0x0003
	TypeRespond      Type = 0x0004
	TypeStatsRequest Type = 0x0005
	TypePing         Type = 0x0006
	TypeBye          Type = 0x0007
	TypeReport       Type = 0x0008 // version 3
	TypeFlushCache   Type = 0x0009 // version 6
)

// Daemon → client.
const (
	TypeWelcome   Type = 0x8001
	TypeResult    Type = 0x8002
	TypeEvent     Type = 0x8003
	TypeOverflow  Type = 0x8004
	TypeStats     Type = 0x8005
	TypePong      Type = 0x8006
	TypeFatal     Type = 0x8007
	TypeRingGrant Type = 0x8008 // version 5
)

var typeNames = map[Type]string{
	TypeHello: "Hello", TypeAddMark: "AddMark", TypeRemoveMark: "RemoveMark",
	TypeRespond: "Respond", TypeStatsRequest: "StatsRequest", TypePing: "Ping", TypeBye: "Bye",
	TypeReport: "Report", TypeFlushCache: "FlushCache",
	TypeWelcome: "Welcome", TypeResult: "Result", TypeEvent: "Event", TypeOverflow: "Overflow",
	TypeStats: "Stats", TypePong: "Pong", TypeFatal: "Fatal", TypeRingGrant: "RingGrant",
}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%#04x)", uint16(t))
}

// Known reports whether t is a message type of this protocol version.
func (t Type) Known() bool {
	// Not a map lookup: DecodeHeader calls this for every frame.
	return (t >= TypeHello && t <= TypeFlushCache) || (t >= TypeWelcome && t <= TypeRingGrant)
}

// FromDaemon reports whether messages of type t go from the daemon to a client.
func (t Type) FromDaemon() bool { return t&0x8000 != 0 }

// Header is a frame header. On the wire (little-endian):
//
//	offset size field
//	0      4    Length  payload bytes after the header (0..MaxPayload)
//	4      2    Type
//	6      1    NFDs    file descriptors attached (0..MaxFDs)
//	7      1    flags   reserved, 0
//	8      8    Req     request id (0: none)
type Header struct {
	Length uint32
	Type   Type
	NFDs   uint8
	Req    uint64
}

// DecodeHeader checks and parses the header at the start of b, which must hold at least
// HeaderSize bytes (else CodeTruncated). It rejects an oversized length (CodeTooLarge), too
// many fds (CodeFDCount), an unknown type (CodeUnknownType) and reserved bits (CodeBadField)
// before any payload is read, so a stream reader never waits for, or buffers, a frame it
// will refuse.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, errorf(CodeTruncated, "frame header: %d of %d bytes", len(b), HeaderSize)
	}
	h := Header{
		Length: binary.LittleEndian.Uint32(b[0:]),
		Type:   Type(binary.LittleEndian.Uint16(b[4:])),
		NFDs:   b[6],
		Req:    binary.LittleEndian.Uint64(b[8:]),
	}
	if h.Length > MaxPayload {
		return h, errorf(CodeTooLarge, "frame of %d bytes exceeds the %d-byte limit", uint64(h.Length)+HeaderSize, MaxFrame)
	}
	if !h.Type.Known() {
		return h, errorf(CodeUnknownType, "unknown message type %#04x", uint16(h.Type))
	}
	if max := MaxPayloadOf(h.Type); int(h.Length) > max {
		return h, errorf(CodeTooLarge, "%s payload of %d bytes; a %s has at most %d", h.Type, h.Length, h.Type, max)
	}
	if max := maxFDsOf(h.Type); int(h.NFDs) > max {
		return h, errorf(CodeFDCount, "%s frame declares %d fds; at most %d allowed", h.Type, h.NFDs, max)
	}
	if b[7] != 0 {
		return h, errorf(CodeBadField, "%s frame: reserved header flags %#02x", h.Type, b[7])
	}
	return h, nil
}

// MaxPayloadOf returns the largest payload a message of type t can have in this version
// (MaxPayload for Stats). DecodeHeader refuses longer ones at once, so that a peer cannot
// make the other side buffer more than the message needs: every client message fits in
// MaxHello bytes.
func MaxPayloadOf(t Type) int {
	switch t {
	case TypeHello:
		return MaxHello
	case TypeAddMark:
		return 24
	case TypeRemoveMark:
		return 32
	case TypeRespond, TypeOverflow:
		return 16
	case TypeStatsRequest:
		return 4
	case TypeReport:
		return 2 + MaxReport
	case TypePing, TypeBye, TypePong, TypeFlushCache:
		return 0
	case TypeRingGrant:
		return 4
	case TypeWelcome:
		return 60 + 2 + MaxName
	case TypeResult:
		return 10 + 2 + MaxMessage
	case TypeFatal:
		return 2 + 2 + MaxMessage
	case TypeEvent:
		return eventFixed + 5*2 + 2*MaxLongPath + 3*MaxName + eventObjectSize
	}
	return MaxPayload
}

func appendHeader(b []byte, h Header) []byte {
	b = binary.LittleEndian.AppendUint32(b, h.Length)
	b = binary.LittleEndian.AppendUint16(b, uint16(h.Type))
	b = append(b, h.NFDs, 0)
	return binary.LittleEndian.AppendUint64(b, h.Req)
}

// InstanceID identifies one run of the daemon: fsevent.InstanceID.
type InstanceID = fsevent.InstanceID

// maxFDsOf is the most fds a frame of type t may declare.
func maxFDsOf(t Type) int {
	if t == TypeRingGrant {
		return maxGrantFDs
	}
	return MaxFDs
}

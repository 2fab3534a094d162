package fsevent

import (
	"fmt"
	"syscall"
)

// Code is an error code of the daemon's protocol (docs/protocol.md): what went wrong, in a
// form a program can act on. Codes 1–15 are protocol errors (a decode error or a broken
// handshake): the connection is closed after them. Codes 16 and up are request errors: the
// daemon reports them in a Result and the connection goes on (or, for Hello, in a Fatal).
type Code uint16

const (
	// CodeOK is success (Result only).
	CodeOK Code = 0

	// CodeTooLarge: a frame's length exceeds the frame limit.
	CodeTooLarge Code = 1
	// CodeTruncated: a frame or a field ends early (or the stream ends inside a frame).
	CodeTruncated Code = 2
	// CodeUnknownType: the frame's message type is not one of this version.
	CodeUnknownType Code = 3
	// CodeBadField: a field's value is invalid (out of range, reserved bits set, a string
	// too long or holding NUL, trailing bytes...).
	CodeBadField Code = 4
	// CodeFDCount: the fds received do not match what the frame declares or its type needs.
	CodeFDCount Code = 5
	// CodeUnexpected: a valid message at the wrong time or in the wrong direction (a request
	// before Hello, a second Hello, a daemon message sent by a client).
	CodeUnexpected Code = 6
	// CodeVersion: the peers share no protocol version.
	CodeVersion Code = 7

	// CodePermission: the client may not do this (a mount mark without privilege, a target it
	// cannot read, a permission class it is not allowed).
	CodePermission Code = 16
	// CodeInvalid: the request is well formed but makes no sense (a mask bit the kernel or
	// daemon does not support, a deny errno outside the allowed list, an O_PATH fd of the
	// wrong type).
	CodeInvalid Code = 17
	// CodeNotFound: no such mark or pending permission event.
	CodeNotFound Code = 18
	// CodeLimit: a limit was reached (marks, clients, pending requests).
	CodeLimit Code = 19
	// CodeNotSupported: the kernel or filesystem lacks a feature the request needs.
	CodeNotSupported Code = 20
	// CodeUnavailable: the daemon cannot serve now (shutting down); retry later.
	CodeUnavailable Code = 21
	// CodeInternal: the daemon failed; the message says how.
	CodeInternal Code = 22
)

var codeNames = map[Code]string{
	CodeOK: "ok", CodeTooLarge: "too-large", CodeTruncated: "truncated",
	CodeUnknownType: "unknown-type", CodeBadField: "bad-field", CodeFDCount: "fd-count",
	CodeUnexpected: "unexpected", CodeVersion: "version", CodePermission: "permission",
	CodeInvalid: "invalid", CodeNotFound: "not-found", CodeLimit: "limit",
	CodeNotSupported: "not-supported", CodeUnavailable: "unavailable", CodeInternal: "internal",
}

// String returns the code's name as in docs/protocol.md ("permission", "bad-field", ...), or
// "code(N)" for a code this version does not know.
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// Known reports whether c is a code of this protocol version. A peer may send codes added
// later; treat an unknown one like CodeInternal.
func (c Code) Known() bool { _, ok := codeNames[c]; return ok }

// Protocol reports whether c is a protocol error (1–15), after which the connection closes.
func (c Code) Protocol() bool { return c >= 1 && c <= 15 }

// Errno is the errno that best matches c, so that errors.Is(err, syscall.EPERM) and
// errors.Is(err, fs.ErrPermission) can work on errors that carry a Code. CodeOK maps to 0.
func (c Code) Errno() syscall.Errno {
	switch c {
	case CodeOK:
		return 0
	case CodeTooLarge:
		return syscall.EMSGSIZE
	case CodeVersion:
		return syscall.EPROTONOSUPPORT
	case CodePermission:
		return syscall.EPERM
	case CodeInvalid:
		return syscall.EINVAL
	case CodeNotFound:
		return syscall.ENOENT
	case CodeLimit:
		return syscall.ENOSPC
	case CodeNotSupported:
		return syscall.EOPNOTSUPP
	case CodeUnavailable:
		return syscall.EAGAIN
	case CodeInternal:
		return syscall.EIO
	}
	if c.Protocol() {
		return syscall.EPROTO
	}
	return syscall.EIO
}

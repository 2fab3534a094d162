package proto

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Code is an error code: what went wrong, in a form a program can act on. Codes 1–15 are
// protocol errors (a decode error or a broken handshake): the connection is closed after
// them. Codes 16 and up are request errors: the daemon reports them in a Result and the
// connection goes on (or, for Hello, in a Fatal).
type Code uint16

const (
	// CodeOK is success (Result only).
	CodeOK Code = 0

	// CodeTooLarge: a frame's length exceeds MaxFrame.
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
// errors.Is(err, fs.ErrPermission) work on an *Error. CodeOK maps to 0.
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

// Error is a protocol or request error: a code and a human message. Decode, DecodeHeader,
// Encode and Conn return *Error for every protocol violation; Result.Err and Fatal.Err turn
// the daemon's answers back into *Error on the client side.
//
// errors.Is(err, target) holds when target is an *Error with the same Code (so the sentinels
// ErrPermission, ErrBadField, ... match any message), or an error that c.Errno() matches
// (syscall.EPERM, fs.ErrPermission, ...).
type Error struct {
	Code Code
	// Msg says what and, where it helps, what to do, e.g. "mount marks need uid 0 or an
	// allowed uid in /etc/fsnotifyd/config".
	Msg string
	// Err is an underlying cause on this side (an I/O error), if any; it is not sent.
	Err error
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches *Error values by code, and errnos through Code.Errno.
func (e *Error) Is(target error) bool {
	if t, ok := target.(*Error); ok {
		return t.Code == e.Code
	}
	if errno := e.Code.Errno(); errno != 0 {
		return errno == target || errors.Is(errno, target)
	}
	return false
}

// Sentinels, one per code, for errors.Is.
var (
	ErrTooLarge     = &Error{Code: CodeTooLarge}
	ErrTruncated    = &Error{Code: CodeTruncated}
	ErrUnknownType  = &Error{Code: CodeUnknownType}
	ErrBadField     = &Error{Code: CodeBadField}
	ErrFDCount      = &Error{Code: CodeFDCount}
	ErrUnexpected   = &Error{Code: CodeUnexpected}
	ErrVersion      = &Error{Code: CodeVersion}
	ErrPermission   = &Error{Code: CodePermission}
	ErrInvalid      = &Error{Code: CodeInvalid}
	ErrNotFound     = &Error{Code: CodeNotFound}
	ErrLimit        = &Error{Code: CodeLimit}
	ErrNotSupported = &Error{Code: CodeNotSupported}
	ErrUnavailable  = &Error{Code: CodeUnavailable}
	ErrInternal     = &Error{Code: CodeInternal}
)

// Errorf returns an *Error with code c and a formatted message.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, args...)}
}

func errorf(c Code, format string, args ...any) *Error { return Errorf(c, format, args...) }

// AsError returns err as an *Error for sending to a peer: err itself if it is (or wraps) one,
// else an *Error with CodeInternal and err's text. nil gives nil. The message is cut to
// MaxMessage bytes (at a UTF-8 boundary) and NUL bytes are replaced, so it always encodes.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: CodeInternal, Msg: err.Error()}
	}
	if e.Code == CodeOK {
		e = &Error{Code: CodeInternal, Msg: e.Msg}
	}
	if msg := cleanMessage(e.Msg); msg != e.Msg {
		e = &Error{Code: e.Code, Msg: msg, Err: e.Err}
	}
	return e
}

// cleanMessage makes s a valid error message: valid UTF-8 without NUL, at most MaxMessage
// bytes, not cut inside a UTF-8 sequence.
func cleanMessage(s string) string {
	if checkText(TypeResult, "message", s, MaxMessage) == nil {
		return s
	}
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "?"), "\uFFFD")
	if len(s) > MaxMessage {
		n := MaxMessage
		// Back up over continuation bytes so the cut falls on a rune boundary.
		for n > 0 && s[n]&0xC0 == 0x80 {
			n--
		}
		s = s[:n]
	}
	return s
}

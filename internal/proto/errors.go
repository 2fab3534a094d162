package proto

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// Code is an error code: fsevent.Code (its names, Errno and Protocol are there). Codes 1–15
// are protocol errors (a decode error or a broken handshake): the connection is closed after
// them. Codes 16 and up are request errors: the daemon reports them in a Result and the
// connection goes on (or, for Hello, in a Fatal).
type Code = fsevent.Code

// The codes (see fsevent).
const (
	CodeOK           = fsevent.CodeOK
	CodeTooLarge     = fsevent.CodeTooLarge
	CodeTruncated    = fsevent.CodeTruncated
	CodeUnknownType  = fsevent.CodeUnknownType
	CodeBadField     = fsevent.CodeBadField
	CodeFDCount      = fsevent.CodeFDCount
	CodeUnexpected   = fsevent.CodeUnexpected
	CodeVersion      = fsevent.CodeVersion
	CodePermission   = fsevent.CodePermission
	CodeInvalid      = fsevent.CodeInvalid
	CodeNotFound     = fsevent.CodeNotFound
	CodeLimit        = fsevent.CodeLimit
	CodeNotSupported = fsevent.CodeNotSupported
	CodeUnavailable  = fsevent.CodeUnavailable
	CodeInternal     = fsevent.CodeInternal
)

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

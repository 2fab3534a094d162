package sys

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrNotSupported is the sentinel for a kernel or filesystem that lacks a feature. Errors from
// Require and RequirePreAccess are *FeatureError values that match it with errors.Is when (and
// only when) the probe proved the feature missing.
var ErrNotSupported = errors.New("not supported")

// FeatureError says which feature a caller needed and why it cannot have it.
type FeatureError struct {
	// Feature names what is missing in kernel terms, e.g. "FAN_REPORT_PIDFD" or
	// "FAN_PRE_ACCESS on /mnt/x".
	Feature string
	// Err is the reason. For a feature proven missing it wraps ErrNotSupported and the
	// kernel's answer (e.g. EINVAL); when support could not be determined (EPERM as an
	// unprivileged user, ENOMEM, EMFILE) it is that error alone.
	Err error
}

func (e *FeatureError) Error() string { return e.Feature + ": " + e.Err.Error() }

// Unwrap returns Err, so errors.Is finds ErrNotSupported and the errno.
func (e *FeatureError) Unwrap() error { return e.Err }

// ErrMalformed is the sentinel of every *ParseError.
var ErrMalformed = errors.New("malformed event buffer")

// ParseError reports a buffer the parser refused. The kernel never writes one, so it means an
// ABI mismatch or memory corruption: the caller should treat the group as broken (close it,
// which allows every pending permission event) rather than skip ahead.
type ParseError struct {
	// Kind is "fanotify" or "inotify".
	Kind string
	// Offset is the byte offset in the parsed slice of the event that failed.
	Offset int
	// Reason says what is wrong, e.g. "event_len 20 < metadata_len 24".
	Reason string
}

func (e *ParseError) Error() string {
	return e.Kind + " event at offset " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Is makes errors.Is(err, ErrMalformed) true.
func (e *ParseError) Is(target error) bool { return target == ErrMalformed }

func parseErrorf(kind string, off int, format string, args ...any) error {
	return &ParseError{Kind: kind, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

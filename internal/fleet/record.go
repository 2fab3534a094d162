package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is what a fleet record reports.
type Kind uint8

const (
	// Event is a file event: the object of `watch --json` / `trace --json`.
	Event Kind = iota + 1
	// Decision is a guard decision: the object of the guard's audit log.
	Decision
	// Gap says records were lost (or may have been): see GapRecord.
	Gap
)

func (k Kind) String() string {
	switch k {
	case Event:
		return "event"
	case Decision:
		return "decision"
	case Gap:
		return "gap"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// subjectWord is the middle token of the kind's subject.
func (k Kind) subjectWord() string {
	switch k {
	case Event:
		return "events"
	case Decision:
		return "decisions"
	}
	return "gaps"
}

// SubjectRoot is the first token of every fleet subject.
const SubjectRoot = "fsnotifyd"

// Subject is the subject a host publishes records of kind k on: fsnotifyd.events.<token>,
// fsnotifyd.decisions.<token> or fsnotifyd.gaps.<token>, where token is HostToken(host).
// Gaps have their own subject so that a reader of either events or decisions can read them
// too.
func Subject(k Kind, token string) string {
	return SubjectRoot + "." + k.subjectWord() + "." + token
}

// HostToken maps a host name to one subject token (and key-value key component): ASCII
// letters, digits and '-' stay; '.' becomes '_'; any other byte becomes '=' and two upper-case
// hex digits ("a_b" -> "a=5Fb"). The map is one-to-one (a token decodes to exactly one name),
// the result is valid in a NATS subject, a key-value key and a permission, and a dotted host
// name stays readable: "web-1.example.com" -> "web-1_example_com".
func HostToken(host string) (string, error) {
	if host == "" {
		return "", errors.New("empty host name")
	}
	var b strings.Builder
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case tokenKeeps(c):
			b.WriteByte(c)
		case c == '.':
			b.WriteByte('_')
		default:
			const hex = "0123456789ABCDEF"
			b.WriteByte('=')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String(), nil
}

// tokenKeeps reports whether HostToken keeps byte c as it is: an ASCII letter, a digit, '-'.
func tokenKeeps(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// HostFromToken is the inverse of HostToken: it accepts only tokens HostToken makes, so that
// each host has one token, one set of subjects.
func HostFromToken(token string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '_':
			b.WriteByte('.')
		case c == '=':
			if i+2 >= len(token) {
				return "", fmt.Errorf("host token %q: '=' must be followed by two hex digits", token)
			}
			v, err := strconv.ParseUint(token[i+1:i+3], 16, 8)
			if err != nil || token[i+1:i+3] != strings.ToUpper(token[i+1:i+3]) {
				return "", fmt.Errorf("host token %q: bad escape %q", token, token[i:i+3])
			}
			if tokenKeeps(byte(v)) || v == '.' {
				// Not HostToken's: "w=65b1" would be a second token of web1, a subject that
				// web1's permissions do not name but whose records would read as web1's.
				return "", fmt.Errorf("host token %q: escape %q of a character a token keeps as it is", token, token[i:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		case tokenKeeps(c):
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("host token %q: character %q is never in a token", token, c)
		}
	}
	if b.Len() == 0 {
		return "", errors.New("empty host token")
	}
	return b.String(), nil
}

// DefaultHost is the machine's host name, the default --host.
// hostAndToken returns host (this machine's host name when empty) and its subject token; an
// error names --host, the flag that gives it.
func hostAndToken(host string) (string, string, error) {
	if host == "" {
		h, err := DefaultHost()
		if err != nil {
			return "", "", err
		}
		host = h
	}
	token, err := HostToken(host)
	if err != nil {
		return "", "", fmt.Errorf("--host: %w", err)
	}
	return host, token, nil
}

func DefaultHost() (string, error) {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "", fmt.Errorf("cannot tell this machine's host name (%v): give --host NAME", err)
	}
	return h, nil
}

// KernelBootID is the kernel's boot id (/proc/sys/kernel/random/boot_id), as journald's
// _BOOT_ID: a different one means the machine rebooted. "" if unreadable.
func KernelBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Header is the part of a fleet record every reader needs. A record is one JSON object: the
// payload's fields (those of `watch --json`, or of the guard's audit log) plus these.
type Header struct {
	Host   string `json:"host"`
	BootID string `json:"boot_id"`
	Seq    uint64 `json:"seq"`
	Kind   string `json:"kind"`
	// Gap records only (see GapRecord).
	Reason string `json:"reason,omitempty"`
	First  uint64 `json:"first,omitempty"`
	Last   uint64 `json:"last,omitempty"`
	Count  uint64 `json:"count,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// ParseHeader reads a record's header fields. A record that has one of them twice — also
// as a key that differs only in case ("HOST", or "ſeq" with a long s), which Go's decoder
// (and others) match too, the last one winning — is refused: which of the two a reader
// would take depends on the reader, and the exporter never writes such a record.
func ParseHeader(data []byte) (Header, error) {
	var h Header
	if err := json.Unmarshal(data, &h); err != nil {
		return h, fmt.Errorf("not a fleet record: %w", err)
	}
	if h.Host == "" || h.Seq == 0 || h.Kind == "" {
		return h, errors.New("not a fleet record: host, seq or kind missing")
	}
	if k := repeatedHeaderKey(data); k != "" {
		return h, fmt.Errorf("not a fleet record: it sets %q twice (also counting keys that differ in case)", k)
	}
	return h, nil
}

// headerKeys are the JSON names of Header's fields.
var headerKeys = [...]string{"host", "boot_id", "seq", "kind", "reason", "first", "last", "count", "detail"}

// repeatedHeaderKey returns a header key that the object data sets more than once (keys
// compared as Go's decoder matches them to fields: Unicode case folding), or "".
func repeatedHeaderKey(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	var seen [len(headerKeys)]bool
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		key, _ := t.(string)
		for i, hk := range headerKeys {
			if strings.EqualFold(key, hk) {
				if seen[i] {
					return hk
				}
				seen[i] = true
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// SubjectHost is the host whose subject a record was published on (fsnotifyd.KIND.TOKEN):
// the server's permissions let each host publish on its own subjects only (docs/fleet.md,
// "Security"), so this, not the record's own "host", says who sent it.
func SubjectHost(subject string) (string, error) {
	w := strings.Split(subject, ".")
	if len(w) != 3 || w[0] != SubjectRoot {
		return "", fmt.Errorf("subject %q is not %s.KIND.HOST", subject, SubjectRoot)
	}
	return HostFromToken(w[2])
}

// CheckHeader reads a record's header (ParseHeader) and checks that its host is the one
// whose subject it came on: a host may publish only on its own subjects, but it writes what
// it likes in them, another host's name and seqs included.
func CheckHeader(subject string, data []byte) (Header, error) {
	h, err := ParseHeader(data)
	if err != nil {
		return h, err
	}
	host, err := SubjectHost(subject)
	if err != nil {
		return h, err
	}
	if h.Host != host {
		return h, fmt.Errorf("the record says host %q but was published on %s's subject (%s): not shown as %q's", h.Host, host, subject, h.Host)
	}
	return h, nil
}

// Gap reasons.
const (
	// ReasonBufferFull: the exporter's memory buffer was full (the disk writer fell behind).
	ReasonBufferFull = "buffer_full"
	// ReasonSpoolFull: the spool reached its size limit (NATS unreachable or slow too long).
	ReasonSpoolFull = "spool_full"
	// ReasonSpoolError: the spool could not be written (a disk error; the log says which).
	ReasonSpoolError = "spool_error"
	// ReasonSpoolDamaged: spooled records could not be read back (damaged segment).
	ReasonSpoolDamaged = "spool_damaged"
	// ReasonTooLarge: a record was larger than the exporter's record limit.
	ReasonTooLarge = "too_large"
	// ReasonOverflow: the kernel's (or the daemon's) event queue overflowed: an unknown number
	// of events never reached the exporter. No seq range.
	ReasonOverflow = "overflow"
	// ReasonRejected: the stream refused the record for good (larger than its max_msg_size, or
	// the server's max_payload): it can never be stored. The detail says why.
	ReasonRejected = "rejected"
	// ReasonCrash: the previous exporter run did not stop cleanly; records it held in memory
	// (not yet in the spool) were lost, their number unknown. After a reboot the range also
	// names the seqs that may have been in an unsynced spool tail (see docs/fleet.md).
	ReasonCrash = "crash"
)

// gapFields is a gap's JSON after the header: the time, the reason and, when known, the range.
func appendGap(dst []byte, now time.Time, reason string, first, last uint64, detail string) []byte {
	dst = append(dst, `,"time":"`...)
	dst = now.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","reason":`...)
	dst = appendJSONString(dst, reason)
	if first > 0 && last >= first {
		dst = append(dst, `,"first":`...)
		dst = strconv.AppendUint(dst, first, 10)
		dst = append(dst, `,"last":`...)
		dst = strconv.AppendUint(dst, last, 10)
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendUint(dst, last-first+1, 10)
	}
	if detail != "" {
		dst = append(dst, `,"detail":`...)
		dst = appendJSONString(dst, detail)
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string (invalid UTF-8 replaced: host names and our own
// messages only).
func appendJSONString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

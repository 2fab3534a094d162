package fsevent

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Decision is one guard decision as `fsnotifyd guard --audit` writes it (one JSON object per
// line, with encoding/json: docs/trace-format.md, "guard --audit lines"), and the payload of a
// fleet decision record (docs/fleet.md). Empty fields marked omitempty are left out.
type Decision struct {
	// Time is when the record was written, RFC 3339 with nanoseconds.
	Time string `json:"time"`
	// Path is the file ("" when its path could not be read: see PathUnknown).
	Path string `json:"path"`
	// PathRaw, CommRaw and ExeRaw hold Path, Comm and Exe when they are not valid UTF-8
	// (KeepBytes); the string field is then "".
	PathRaw Bytes `json:"path_raw,omitempty"`
	// Pid is the accessing process, Comm its name (read while it waited).
	Pid     int    `json:"pid,omitempty"`
	Comm    string `json:"comm,omitempty"`
	CommRaw Bytes  `json:"comm_raw,omitempty"`
	// Exe is the executable, where the decision read it (an exe= condition, or a deny);
	// ExeUnverified says its path does not lead to the file the process runs.
	Exe           string `json:"exe,omitempty"`
	ExeRaw        Bytes  `json:"exe_raw,omitempty"`
	ExeUnverified bool   `json:"exe_unverified,omitempty"`
	// UID is the process's effective uid, read while it waited (guard --export-decisions,
	// for the fleet record; nil when not read).
	UID *int `json:"uid,omitempty"`
	// Event is the access: open, access, exec or pre_access (AccessName).
	Event string `json:"event"`
	// Verdict is what the access got ("allow", "allow(cached)", "deny", "deny(ERRNO)", or
	// "deny(permissive)" for what the rules said under --permissive, which allowed it).
	Verdict string `json:"verdict"`
	// Rule is what decided: a rules-file line, a flag, "default", "--exec", "deadline",
	// "closed", or "error in FILE:LINE".
	Rule string `json:"rule"`
	// Error is the guard's own failure that decided (--on-error).
	Error string `json:"error,omitempty"`
	// Latency is from the kernel event being read to the answer, as text and in nanoseconds.
	Latency string `json:"latency"`
	LatNS   int64  `json:"latency_ns"`
	// PathUnknown says the path could not be read ("path" is ""): Dev (MAJOR:MINOR,
	// DevString) and Ino identify the file instead.
	PathUnknown bool   `json:"path_unknown,omitempty"`
	Dev         string `json:"dev,omitempty"`
	Ino         uint64 `json:"ino,omitempty"`
}

// KeepBytes moves each of Path, Comm and Exe that is not valid UTF-8 to its KEY_raw field
// (PathRaw, CommRaw, ExeRaw), so that encoding/json writes its bytes, not U+FFFD: two names
// that differ only in such bytes stay two names. Call it once the record is filled in.
func (d *Decision) KeepBytes() {
	for _, f := range d.raw() {
		if !utf8.ValidString(*f.s) {
			*f.raw, *f.s = Bytes(*f.s), ""
		}
	}
}

// RestoreBytes is KeepBytes's inverse, for a reader of the record: each KEY_raw field present
// goes back to its string field.
func (d *Decision) RestoreBytes() {
	for _, f := range d.raw() {
		if *f.raw != nil {
			*f.s, *f.raw = string(*f.raw), nil
		}
	}
}

// rawField is a string field of a Decision and its KEY_raw twin.
type rawField struct {
	s   *string
	raw *Bytes
}

func (d *Decision) raw() [3]rawField {
	return [...]rawField{{&d.Path, &d.PathRaw}, {&d.Comm, &d.CommRaw}, {&d.Exe, &d.ExeRaw}}
}

// Bytes is a string of bytes that JSON writes as an array of numbers ([47,97,255]), as
// Event.AppendJSON writes a KEY_raw field (encoding/json would write a []byte in base64).
type Bytes []byte

// MarshalJSON writes b as an array of its bytes.
func (b Bytes) MarshalJSON() ([]byte, error) {
	return appendByteArray(make([]byte, 0, 2+4*len(b)), string(b)), nil
}

// UnmarshalJSON reads an array of bytes (numbers 0-255).
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var v []int
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*b = make(Bytes, len(v))
	for i, c := range v {
		if c < 0 || c > 255 {
			return fmt.Errorf("byte %d out of range", c)
		}
		(*b)[i] = byte(c)
	}
	return nil
}

package fsevent

// Decision is one guard decision as `fsnotifyd guard --audit` writes it (one JSON object per
// line, with encoding/json: docs/trace-format.md, "guard --audit lines"), and the payload of a
// fleet decision record (docs/fleet.md). Empty fields marked omitempty are left out.
type Decision struct {
	// Time is when the record was written, RFC 3339 with nanoseconds.
	Time string `json:"time"`
	// Path is the file ("" when its path could not be read: see PathUnknown).
	Path string `json:"path"`
	// Pid is the accessing process, Comm its name (read while it waited).
	Pid  int    `json:"pid,omitempty"`
	Comm string `json:"comm,omitempty"`
	// Exe is the executable, where the decision read it (an exe= condition, or a deny);
	// ExeUnverified says its path does not lead to the file the process runs.
	Exe           string `json:"exe,omitempty"`
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

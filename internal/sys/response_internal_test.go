package sys

import "testing"

// TestMayWriteRaw: a response goes through RawSyscall only when fanotify's write handler
// cannot sleep on it: never with FAN_AUDIT (audit_log_start waits while the audit backlog is
// full) nor FAN_INFO.
func TestMayWriteRaw(t *testing.T) {
	for _, tc := range []struct {
		name     string
		response uint32
		raw      bool
	}{
		{"allow", FAN_ALLOW, true},
		{"deny", FAN_DENY, true},
		{"deny with errno", FAN_DENY_ERRNO(5), true},
		{"allow|audit", FAN_ALLOW | FAN_AUDIT, false},
		{"deny|audit", FAN_DENY | FAN_AUDIT, false},
		{"deny|info", FAN_DENY | FAN_INFO, false},
	} {
		if got := mayWriteRaw(tc.response); got != tc.raw {
			t.Errorf("%s (%#x): raw %v, want %v", tc.name, tc.response, got, tc.raw)
		}
	}
}

package fsevent

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecisionJSONRoundTrip: a decision record whose path, comm and exe are any bytes (Linux
// names) is one line of JSON that reads back to the same bytes (KeepBytes, RestoreBytes).
// encoding/json alone writes U+FFFD for a byte that is not UTF-8: "a\xff" and "a\xfe" were
// one path in the audit log.
func FuzzDecisionJSONRoundTrip(f *testing.F) {
	f.Add("/srv/a\xff", "c\xfe\x1b[2J", "/bin/\u2028x")
	f.Add("/srv/nl\n{\"path\":\"forged\"}", "\r\t\\\"", "\x1b]52;c;ZXZpbA==\x07")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, path, comm, exe string) {
		d := Decision{Path: path, Comm: comm, Exe: exe, Event: "open", Verdict: "deny"}
		d.KeepBytes()
		b, err := json.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.ContainsAny(b, "\n\r") {
			t.Fatalf("record %q is not one line", b)
		}
		var got Decision
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		got.RestoreBytes()
		if got.Path != path || got.Comm != comm || got.Exe != exe {
			t.Fatalf("%s read back as path %q comm %q exe %q, want %q %q %q", b, got.Path, got.Comm, got.Exe, path, comm, exe)
		}
	})
}

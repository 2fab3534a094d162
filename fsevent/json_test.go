package fsevent

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAppendJSONEscapesControls: a name's control characters never reach a reader of
// `watch --json` raw — C0 controls, DEL, the C1 controls (U+0080-U+009F, which terminals
// that take 8-bit controls read as CSI, OSC, NEL...) and the line separators U+2028/U+2029
// are written as \u escapes — and the object still decodes to the name.
func TestAppendJSONEscapesControls(t *testing.T) {
	for _, name := range []string{
		"/srv/a\x1b]52;c;aGk=\x07",
		"/srv/del\x7f",
		"/srv/csi\u009b2J",
		"/srv/osc\u009d0;title\u009c",
		"/srv/nel\u0085x",
		"/srv/ls\u2028ps\u2029",
		"/srv/edge\u00a0\u00c2\u0080", // NBSP and Â are not controls; U+0080 is
	} {
		line := string((&Event{Path: name, Mask: Open}).AppendJSON(nil))
		for _, r := range line {
			if r < 0x20 || r >= 0x7f && r <= 0x9f || r == 0x2028 || r == 0x2029 {
				t.Errorf("%q: raw control %U in %q", name, r, line)
			}
		}
		var got struct{ Path string }
		if err := json.Unmarshal([]byte(line), &got); err != nil || got.Path != name {
			t.Errorf("%q: decodes to %q, %v", name, got.Path, err)
		}
		if strings.Contains(name, "\u00a0") && !strings.Contains(line, "\u00a0\u00c2") {
			t.Errorf("%q: printable characters escaped too: %q", name, line)
		}
	}
}

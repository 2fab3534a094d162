package proto

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// docExamples are the frames of the worked example in docs/protocol.md.
func docExamples() map[string]Msg {
	inst := InstanceID{0x9c, 0x1f, 0x3a, 0x77, 0x40, 0x12, 0x4e, 0x8b, 0xa1, 0x05, 0x6d, 0xe2, 0x33, 0xc8, 0x90, 0x5b}
	return map[string]Msg{
		"hello": &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: "guard", Class: fsevent.ClassContent,
			Deadline: 5 * time.Second, DeadlineVerdict: fsevent.Allow, CloseVerdict: fsevent.Allow,
			QueueFullVerdict: fsevent.Allow, WantEventFDs: true},
		"welcome": &Welcome{Req: 1, Version: 1, ClientID: 7, Instance: inst, Fresh: true,
			DaemonVersion: "fsnotifyd 0.1.0", Class: fsevent.ClassContent, QueueLimit: 16384,
			Deadline: 2 * time.Second, EventFDs: true, UID: 1000, GID: 1000, PID: 4242},
		"addmark": &AddMark{Req: 2, Kind: fsevent.KindSubtree, Mask: fsevent.OpenPerm | fsevent.OnDir, Target: NewFD(5)},
		"result":  &Result{Req: 2, ID: 1},
		"event": &Event{ID: 1, Mask: fsevent.OpenPerm, Pid: 4300, Tid: 4300, Path: "/srv/app/config.yaml",
			Name: "config.yaml", FD: NewFD(9)},
		"respond":    &Respond{EventID: 1, Verdict: fsevent.Deny},
		"flushcache": &FlushCache{Req: 4},
		"mountmark":  &AddMark{Req: 3, Kind: fsevent.KindMount, Mask: fsevent.Open, Target: NewFD(5)},
		"denied": &Result{Req: 3, Code: CodePermission,
			Message: "mount marks need uid 0 or an allowed uid in /etc/fsnotifyd/config"},
	}
}

// TestDocExamples checks the hex dumps in docs/protocol.md against the encoder. A dump is a
// fenced block after a line "<!-- frame NAME -->"; on each line, text after '#' is a comment
// and the rest is hex bytes.
func TestDocExamples(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	if err != nil {
		t.Skipf("docs/protocol.md: %v", err)
	}
	dumps := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var name string
	var in bool
	var buf []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "<!-- frame "):
			name = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- frame "), " -->")
		case name != "" && !in && strings.HasPrefix(line, "```"):
			in, buf = true, nil
		case in && strings.HasPrefix(line, "```"):
			dumps[name], in, name = buf, false, ""
		case in:
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			b, err := hex.DecodeString(strings.Join(strings.Fields(line), ""))
			if err != nil {
				t.Fatalf("frame %s: line %q: %v", name, line, err)
			}
			buf = append(buf, b...)
		}
	}
	examples := docExamples()
	for name, m := range examples {
		want, _ := mustEncode(t, m)
		got, ok := dumps[name]
		if !ok {
			t.Errorf("docs/protocol.md has no dump of frame %q; it is:\n%s", name, dumpFrame(want))
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("docs/protocol.md: frame %q differs from the encoder's:\n%s", name, dumpFrame(want))
		}
	}
	for name := range dumps {
		if examples[name] == nil {
			t.Errorf("docs/protocol.md: frame %q is not checked", name)
		}
	}
}

func dumpFrame(b []byte) string {
	var sb strings.Builder
	sb.WriteString(hex.EncodeToString(b[:4]) + " " + hex.EncodeToString(b[4:6]) + " " + hex.EncodeToString(b[6:7]) + " " +
		hex.EncodeToString(b[7:8]) + " " + hex.EncodeToString(b[8:16]) + "  # header\n")
	for i := 16; i < len(b); i += 16 {
		sb.WriteString(hex.EncodeToString(b[i:min(i+16, len(b))]) + "\n")
	}
	return sb.String()
}

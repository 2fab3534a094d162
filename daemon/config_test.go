//go:build linux

package daemon_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
)

// TestParseConfig: every key sets its field, the connection limits included; each error
// names the file and line, and a reserve that leaves unprivileged users nothing is refused.
func TestParseConfig(t *testing.T) {
	c, err := daemon.ParseConfig("cfg", strings.NewReader(`
# limits
max_clients 100       # all connections
reserved_clients 10
max_clients_per_uid 7
handshake_timeout 1500ms
idle_timeout 2m
max_deadline 0
queue_limit_per_uid 3000
queue_limit_unprivileged 9000
max_marks_per_uid 500
max_marks_unprivileged 700
allow_uid 0 1000
max_marks 600
queue_limit 800
max_held_fds 33
fd_uid root
allow_gid 10
fd_gid root 20
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxClients != 100 || c.ReservedClients != 10 || c.MaxClientsPerUID != 7 ||
		c.HandshakeTimeout != 1500*time.Millisecond || c.IdleTimeout != 2*time.Minute || c.MaxDeadline != 0 || !c.AllowUIDs[1000] || c.QueueLimitPerUID != 3000 || c.QueueLimitUnprivileged != 9000 || c.MaxMarksPerUID != 500 || c.MaxMarksUnprivileged != 700 ||
		c.MaxMarks != 600 || c.QueueLimit != 800 || c.MaxHeldFDs != 33 || !c.FdUIDs[0] || c.FdUIDs[1000] || !c.AllowGIDs[10] || c.AllowGIDs[0] || !c.FdGIDs[0] || !c.FdGIDs[20] {
		t.Errorf("parsed %+v", c)
	}
	d := daemon.DefaultConfig()
	if d.MaxClients != 4096 || d.ReservedClients != 128 || d.MaxClientsPerUID != 256 || d.HandshakeTimeout != 3*time.Second || d.IdleTimeout != time.Minute {
		t.Errorf("defaults %+v: the documented ones are 4096, 128, 256, 3s, 60s", d)
	}
	for _, tc := range []struct{ text, want string }{
		{"max_clients 10\nreserved_clients 10\n", "cfg: reserved_clients 10 leaves no room below max_clients 10"},
		{"\nmax_clients_per_uid 0\n", "cfg:2: max_clients_per_uid: \"0\" is not a positive number"},
		{"handshake_timeout 0\n", "cfg:1: handshake_timeout: 0 would let a silent connection keep its place forever"},
		{"idle_timeout soon\n", "cfg:1: idle_timeout: \"soon\" is not a duration"},
		{"max_conns 5\n", "cfg:1: unknown key \"max_conns\""},
		{"queue_limit_per_uid 100\nqueue_limit_unprivileged 99\n", "cfg: queue_limit_unprivileged 99 is below queue_limit_per_uid 100"},
		{"queue_limit 100\nqueue_limit_unprivileged 399\n", "cfg: queue_limit_unprivileged 399 is below queue_limit_per_uid 400"},
		{"max_marks_per_uid 100\nmax_marks_unprivileged 99\n", "cfg: max_marks_unprivileged 99 is below max_marks_per_uid 100"},
		{"allow_uid no-such-user-fsn\n", "cfg:1: allow_uid: unknown user \"no-such-user-fsn\""},
		{"fd_gid no-such-group-fsn\n", "cfg:1: fd_gid: unknown group \"no-such-group-fsn\""},
		{"queue_limit_per_uid -1\n", "cfg:1: queue_limit_per_uid: \"-1\" is not a positive number"},
		// A value past the one a key takes is refused, not dropped: "idle_timeout 60s 3600s"
		// must not silently mean 60s.
		{"idle_timeout 60s 3600s\n", "cfg:1: idle_timeout takes one value, not 2 (\"60s\" \"3600s\")"},
		{"max_clients 10 20\n", "cfg:1: max_clients takes one value, not 2"},
		{"max_deadline 30 s\n", "cfg:1: max_deadline takes one value, not 2"},
		// A line too long to read is named, with its file and line.
		{"max_marks 5\nallow_uid " + strings.Repeat("1 ", 40<<10) + "\n", "cfg:2: line longer than"},
	} {
		if _, err := daemon.ParseConfig("cfg", strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}

// FuzzParseConfig: no config panics the parser; one it accepts has the limits the daemon
// relies on (positive counts, a reserve below max_clients, positive timeouts, exports of
// notification events on absolute globs), and each error names the file.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"allow_uid 0 1000 root\nfd_gid 0\nmax_deadline 0\n",
		"max_clients 100\nreserved_clients 10\n",
		"idle_timeout 60s 3600s\n", "max_clients 10 20\n", "max_deadline -1s\n", "max_deadline 1e400s\n",
		"handshake_timeout 0\n", "max_marks 9223372036854775808\n", "allow_uid 4294967296\n",
		"allow_uid -1\n", "allow_uid +5\n", "allow_uid 0x10\n", "export open /etc/**\n",
		"export open_perm /etc/**\n", "export open etc/**\n", "export open,,close /e\n",
		"export open /etc/#x\n", "export\n", "#export open /x\n", "max_clients\t5\r\n", "\x00 5\n",
		"queue_limit_per_uid 1\nqueue_limit 2\n", "max_held_fds 1\n", "queue_limit_unprivileged 1\nqueue_limit_per_uid 2\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := daemon.ParseConfig("cfg", strings.NewReader(text))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cfg") {
				t.Fatalf("%q: error %q does not name the file", text, err)
			}
			return
		}
		if c.MaxClients <= 0 || c.ReservedClients < 0 || c.ReservedClients >= c.MaxClients || c.MaxClientsPerUID <= 0 ||
			c.MaxMarks <= 0 || c.QueueLimit <= 0 || c.QueueLimitPerUID < 0 || c.QueueLimitUnprivileged < 0 || c.MaxMarksPerUID < 0 || c.MaxMarksUnprivileged < 0 || c.MaxHeldFDs < 0 ||
			c.MaxDeadline < 0 || c.HandshakeTimeout <= 0 || c.IdleTimeout <= 0 {
			t.Fatalf("%q: accepted %+v", text, c)
		}
		for _, r := range c.Exports {
			if r.Mask == 0 || r.Mask&engine.PermissionEvents != 0 || len(r.Globs) == 0 {
				t.Fatalf("%q: export rule %+v", text, r)
			}
			for _, g := range r.Globs {
				if !strings.HasPrefix(g.String(), "/") {
					t.Fatalf("%q: export glob %q is not absolute", text, g)
				}
			}
		}
		// The same rules from an export config.
		var exports []string
		for _, line := range strings.Split(text, "\n") {
			if fl := strings.Fields(strings.SplitN(line, "#", 2)[0]); len(fl) > 0 && fl[0] == "export" {
				exports = append(exports, line)
			}
		}
		rules, err := daemon.ParseExportConfig("exp", strings.Join(exports, "\n"))
		if err != nil || len(rules) != len(c.Exports) {
			t.Fatalf("%q: the export lines alone give %d rules, %v; the config %d", text, len(rules), err, len(c.Exports))
		}
	})
}

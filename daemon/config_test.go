//go:build linux

package daemon_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/daemon"
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
allow_uid 0 1000
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxClients != 100 || c.ReservedClients != 10 || c.MaxClientsPerUID != 7 ||
		c.HandshakeTimeout != 1500*time.Millisecond || c.IdleTimeout != 2*time.Minute || c.MaxDeadline != 0 || !c.AllowUIDs[1000] || c.QueueLimitPerUID != 3000 {
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
		{"queue_limit_per_uid -1\n", "cfg:1: queue_limit_per_uid: \"-1\" is not a positive number"},
	} {
		if _, err := daemon.ParseConfig("cfg", strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}

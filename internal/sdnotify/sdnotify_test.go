//go:build linux

package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// Send writes the state as one datagram to NOTIFY_SOCKET, a path or an abstract name, and
// does nothing without it.
func TestSend(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Send("READY=1"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, want nil", err)
	}
	for _, tc := range []struct{ name, env, listen string }{
		{"path", filepath.Join(t.TempDir(), "notify"), ""},
		{"abstract", "@fsnotifyd-sdnotify-test", "\x00fsnotifyd-sdnotify-test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen := tc.listen
			if listen == "" {
				listen = tc.env
			}
			c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: listen, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			t.Setenv("NOTIFY_SOCKET", tc.env)
			if err := Send("READY=1\nSTATUS=x"); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "READY=1\nSTATUS=x" {
				t.Fatalf("read %q, %v; want the state", buf[:n], err)
			}
		})
	}
}

//go:build linux

package sdnotify

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// A NOTIFY_SOCKET whose reader never reads (its queue full: not systemd's socket, or a wedged
// manager) holds Send for writeTimeout at most. Before, Send waited for the reader for ever:
// the daemon, which sends READY=1 before serving and STOPPING=1 before letting its clients
// go, would never serve, or never stop.
func TestSendToAFullQueueIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	// Fill its queue (net.unix.max_dgram_qlen datagrams) from a socket whose writes wait a
	// millisecond at most.
	w, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; ; i++ {
		w.SetWriteDeadline(time.Now().Add(time.Millisecond))
		if _, err := w.Write([]byte("x")); errors.Is(err, os.ErrDeadlineExceeded) {
			break
		} else if err != nil || i > 1<<16 {
			t.Fatalf("filling the queue: %v after %d", err, i)
		}
	}
	done := make(chan error, 1)
	go func() { done <- Send("READY=1") }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("Send to a full queue: nil error, want a timeout")
		}
	case <-time.After(writeTimeout + 5*time.Second):
		t.Fatalf("Send to a socket nobody reads still waits after %v", writeTimeout+5*time.Second)
	}
}

// A NOTIFY_SOCKET that is neither an absolute path nor an abstract name is refused, named;
// Reloading carries MONOTONIC_USEC, a time that grows.
func TestSendRefusesRelativeAndReloadingHasTime(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "notify")
	if err := Send("READY=1"); err == nil || !strings.Contains(err.Error(), `NOTIFY_SOCKET="notify"`) {
		t.Errorf("relative NOTIFY_SOCKET: %v, want an error naming it", err)
	}
	usec := func() int64 {
		s := Reloading()
		v, ok := strings.CutPrefix(s, "RELOADING=1\nMONOTONIC_USEC=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n <= 0 {
			t.Fatalf("Reloading() = %q", s)
		}
		return n
	}
	a := usec()
	time.Sleep(2 * time.Millisecond)
	if b := usec(); b <= a {
		t.Errorf("MONOTONIC_USEC did not grow: %d then %d", a, b)
	}
}

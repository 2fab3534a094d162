//go:build linux

// Package sdnotify tells systemd a service's state (sd_notify(3)): READY=1, STOPPING=1,
// RELOADING=1, STATUS=... for a Type=notify unit. It is named for the protocol so that it is
// never taken for the fsnotify sense of "notify" (package notify, engine.Notify).
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// writeTimeout bounds a state's write: a receiver that does not read (a full queue: a
// NOTIFY_SOCKET that is not systemd's, or a wedged manager) must not hold the caller, which
// sends READY=1 before it serves and STOPPING=1 before it lets its clients go.
const writeTimeout = time.Second

// Send writes state to the socket NOTIFY_SOCKET names (an absolute path, or an abstract one
// if it starts with '@'), waiting at most writeTimeout; it does nothing when NOTIFY_SOCKET is
// unset (not started by systemd as Type=notify). Any other NOTIFY_SOCKET (a relative path, a
// vsock address) is an error, naming it.
func Send(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	switch {
	case addr == "":
		return nil
	case addr[0] == '@':
		addr = "\x00" + addr[1:] // abstract namespace
	case addr[0] != '/':
		return fmt.Errorf("NOTIFY_SOCKET=%q: not an absolute path nor an abstract socket (@NAME)", addr)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.Write([]byte(state))
	return err
}

// Reloading is the state a service sends when it starts a reload: RELOADING=1 and
// MONOTONIC_USEC, the time on CLOCK_MONOTONIC, which Type=notify-reload (systemd 253+)
// requires to tell this reload from an earlier one. READY=1 ends it.
func Reloading() string {
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(sys.MonotonicNanos()/1000, 10)
}

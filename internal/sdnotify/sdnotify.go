//go:build linux

// Package sdnotify tells systemd a service's state (sd_notify(3)): READY=1, STOPPING=1,
// STATUS=... for a Type=notify unit. It is named for the protocol so that it is never taken
// for the fsnotify sense of "notify" (package notify, engine.Notify).
package sdnotify

import (
	"net"
	"os"
)

// Send writes state to the socket NOTIFY_SOCKET names (an abstract one if it starts with
// '@'); it does nothing when NOTIFY_SOCKET is unset (not started by systemd as Type=notify).
func Send(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

//go:build linux

package daemon

import (
	"net"
	"os"
)

// sdNotify tells systemd the daemon's state (sd_notify(3)) when NOTIFY_SOCKET is set
// (Type=notify units); it does nothing otherwise.
// Notify is sdNotify for callers outside the package.
func Notify(state string) error { return sdNotify(state) }

func sdNotify(state string) error {
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

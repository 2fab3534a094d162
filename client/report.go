package client

import (
	"errors"

	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// ErrReportUnsupported: the daemon speaks a protocol version without Report (before 3).
var ErrReportUnsupported = errors.New("fsnotifyd daemon: too old to take decision reports (protocol version 3)")

// Report sends the daemon the record of one decision this client made on a permission event
// (a JSON object: verdict, rule, event, path, pid, exe, uid, latency), for the daemon's fleet
// export (serve --export). Sending it is the client's consent to the export; the daemon
// answers nothing, and ignores it when it exports nothing. It never waits for the daemon
// beyond the socket write. A text over proto.MaxReport bytes, not UTF-8 or not
// an object is refused here, before anything is written.
func (c *Client) Report(jsonObject []byte) error {
	conn, err := c.liveConn()
	if err != nil {
		return err
	}
	if conn.Version() < 3 {
		return ErrReportUnsupported
	}
	// WriteMsg checks the message (size, UTF-8, an object) before it writes anything.
	return conn.WriteMsg(&proto.Report{Text: string(jsonObject)})
}

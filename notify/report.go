//go:build linux

package notify

import (
	"errors"

	"github.com/fsnotifyd/fsnotifyd/internal/source"
)

// ErrNotThroughDaemon: Report needs a Guard that runs through the daemon.
var ErrNotThroughDaemon = errors.New("guard: decision reports go to the daemon; this guard runs embedded")

// Report sends the daemon the record of one of this Guard's decisions (a JSON object), for
// the daemon's fleet export; see client.Client.Report. It never waits beyond the socket write.
func (gd *Guard) Report(jsonObject []byte) error {
	r, ok := gd.src.(source.Reporter)
	if !ok {
		return ErrNotThroughDaemon
	}
	return r.Report(jsonObject)
}

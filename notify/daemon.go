//go:build linux

package notify

import "github.com/fsnotifyd/fsnotifyd/client"

// WithDaemon makes the Watcher run through a running fsnotifyd daemon (fsnotifyd serve) on
// socket ("" for client.DefaultSocket) instead of in this process: it needs no privilege of
// its own for recursive watches without the mkdir race (the daemon's fanotify), and it
// survives daemon restarts: ErrDaemonLost on Errors says when the connection is lost, and
// an Overflow event when it is back that events may have been missed.
// Events carry paths below what the Watcher added, as the daemon reports them. While the
// connection is lost, Add waits for it to come back, up to 30 s (then fails with
// context.DeadlineExceeded); Remove, WatchList and Close do not wait.
func WithDaemon(socket string) Option {
	return func(c *watcherConfig) {
		if socket == "" {
			socket = client.DefaultSocket
		}
		c.daemon = socket
	}
}

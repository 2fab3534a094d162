//go:build linux

package backend

// ReaderHook lets another component share the thread of the FD group's reader: the thread
// that reads the kernel's permission events and, when their answers come back on it, writes
// them to the kernel. The daemon uses it so that its permission clients' answers are read by
// the very thread that sent them their events: the client's write wakes the thread that then
// answers the kernel, with no hand-off to another thread (bench/relayfloor: about 0.75 of the
// per-open time of a second reading thread on a 2-vCPU VM).
//
// Both methods run on the reader's thread, between kernel reads, and must not block: a
// Readable that waits stalls every permission event of the machine's marks.
type ReaderHook interface {
	// AppendPollFds appends the descriptors to wait for, along with the kernel's, and
	// returns dst. It is called before each wait.
	AppendPollFds(dst []int) []int
	// Readable says that the i-th descriptor of the last AppendPollFds is readable, hung up,
	// in error or closed meanwhile.
	Readable(i int)
}

// ShareReader installs h (nil removes it) and starts the FD group, and so its reader, if it
// does not run yet: the hook's descriptors are then waited for even before the first mark.
// It fails if there can be no FD group (inotify mode, no privilege): then the hook is not
// installed. A hook replaced or removed may still be called while the reader finishes the
// wait it was in.
func (b *Backend) ShareReader(h ReaderHook) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h == nil {
		b.readerHook.Store(nil)
	} else {
		if b.fdGroup == nil {
			if _, err := b.startGroupLocked(kFD); err != nil {
				return err
			}
		}
		b.readerHook.Store(&h)
	}
	if g := b.fdGroup; g != nil {
		g.nudge.Wake()
	}
	return nil
}

// NudgeReader makes the FD group's reader call the hook's AppendPollFds again: call it when
// the set of descriptors changes. Safe from any goroutine.
func (b *Backend) NudgeReader() {
	if w := b.fdNudge.Load(); w != nil {
		w.Wake()
	}
}

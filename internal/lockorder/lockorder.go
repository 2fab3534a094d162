// Package lockorder is a mutex with a rank, so that a test can enforce a package's lock tree.
//
// A package lists its locks in its doc, outer locks first; each gets a Rank, outer locks the
// lower ones. The rule: a goroutine may take a lock only while every lock it holds has a lower
// rank. TryLock is exempt from the rule (it cannot deadlock: it never waits), but a lock taken
// by TryLock counts as held.
//
// In a normal build Mutex is a sync.Mutex and the rank a constant nobody reads: it costs
// nothing. Built with the tag lockorder (go test -tags lockorder, as .ci/run does), every Lock
// checks the rule against the locks its goroutine holds and panics, naming both locks, on the
// first violation — whether or not the run would have deadlocked. The checks are slow (a
// goroutine id per call), for tests only.
//
// Locking: with the tag, one global mutex (registry.mu) guards the held sets; it is a leaf and
// nothing is called under it. No goroutine is started.
package lockorder

import (
	"fmt"
	"strings"
)

// Rank orders locks: a lock may be taken only while holding locks of lower ranks.
type Rank uint16

// Class names a lock and gives its rank, for the messages. Declare one per lock, as a package
// variable, and pass it to each Mutex (Mutex.Init or the Class field).
type Class struct {
	Name string
	Rank Rank
}

// Violation runs f, which takes a lock against the order, and returns an error unless it
// panicked with a lock order message containing want: for tests that check a tree is
// enforced (meaningful in a lockorder build only; see Enabled).
func Violation(want string, f func()) error {
	msg := func() (msg string) {
		defer func() {
			if r := recover(); r != nil {
				msg = fmt.Sprint(r)
			}
		}()
		f()
		return ""
	}()
	if !strings.Contains(msg, "lockorder: ") || !strings.Contains(msg, want) {
		return fmt.Errorf("panicked with %q; want a lock order violation naming %q", msg, want)
	}
	return nil
}

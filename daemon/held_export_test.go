//go:build linux

package daemon

// HeldBudget returns the marks on objects the daemon must keep open that unprivileged
// clients may hold in all and per uid (heldBudget), for the external tests.
func (s *Server) HeldBudget() (total, perUID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held.limit, s.held.perUIDLimit
}

// PendingEvents returns the events the writer of the client named name (its Hello's name)
// took from its group and holds encoded, not written yet (drainLocked), -1 if there is no
// such client; for the external tests. It waits for the session's sendMu: call it while the
// client is stopped only once the writer waits in its write (or is idle).
func (s *Server) PendingEvents(name string) int {
	s.mu.Lock()
	var c *session
	for _, x := range s.clients {
		if x.name == name {
			c = x
		}
	}
	s.mu.Unlock()
	if c == nil {
		return -1
	}
	return int(c.pendingEvents.Load())
}

// UnprivilegedQueued returns what all unprivileged uids' clients hold against
// queue_limit_unprivileged (their queues and their writers' pending events), for the tests.
func (s *Server) UnprivilegedQueued() int { return s.unprivBudget.Used() }

// GoneUIDs returns how many unprivileged uids the daemon keeps state for (a queue budget, the
// totals of gone clients), for the tests.
func (s *Server) GoneUIDs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.budgets)
}

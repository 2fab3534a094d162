//go:build linux

package daemon

// HeldBudget returns the marks on objects the daemon must keep open that unprivileged
// clients may hold in all and per uid (heldBudget), for the external tests.
func (s *Server) HeldBudget() (total, perUID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held.limit, s.held.perUIDLimit
}

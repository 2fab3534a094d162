//go:build linux

package daemon

// RingPublishes is the number of publications that published something, summed over the
// sessions' permission rings (publishLocked's count), for the tests.
func (s *Server) RingPublishes() uint64 {
	s.mu.Lock()
	cs := make([]*session, 0, len(s.clients))
	for _, c := range s.clients {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	var n uint64
	for _, c := range cs {
		c.sendMu.Lock()
		n += c.publishes
		c.sendMu.Unlock()
	}
	return n
}

// PostToLoop runs fn on the backend's event loop (a test holds the loop with it).
func (s *Server) PostToLoop(fn func()) { s.b.Loop().Post(fn) }

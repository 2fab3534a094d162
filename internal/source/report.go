//go:build linux

package source

// Reporter is implemented by a source through the daemon: it sends the daemon the record of
// one decision (a JSON object) for the daemon's fleet export (client.Client.Report).
type Reporter interface {
	Report(jsonObject []byte) error
}

// Report sends the daemon one decision's record; see client.Client.Report.
func (s *remote) Report(jsonObject []byte) error { return s.cl.Report(jsonObject) }

package proto

// VersionFlush is the first protocol version with FlushCache.
const VersionFlush uint16 = 6

// FlushCache asks the daemon to withdraw every allow cached in its kernel groups (client →
// daemon, version 6 on, permission clients only): the daemon answers with a Result once
// the ignore marks that held them are gone, so that no access after the Result is skipped on
// an allow decided before the request, and no answer to a permission event the daemon had
// read before it is cached any more (it is still applied). Every cached allow goes, not only
// the caller's: a cached allow stands for the answers of every group that took the event, so
// it is no one client's (docs/protocol.md, "FlushCache"). The payload is empty.
type FlushCache struct {
	noFDs
	Req uint64 // nonzero
}

func (*FlushCache) Type() Type                      { return TypeFlushCache }
func (m *FlushCache) RequestID() uint64             { return m.Req }
func (m *FlushCache) check() *Error                 { return checkReq(m.Type(), m.Req, true) }
func (m *FlushCache) appendPayload(b []byte) []byte { return b }
func (m *FlushCache) decode(_ *decoder, req uint64) { m.Req = req }

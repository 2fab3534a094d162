package proto

// MaxReport bounds a Report's text: with its length, a Report fits in MaxHello bytes like
// every other client message, so the daemon never buffers more for a client.
const MaxReport = MaxHello - 2

// Report tells the daemon what the client decided on one of its permission events (client →
// daemon, version 3 on): Text is one JSON object, the client's audit record of the decision
// (verdict, rule, event, path, pid, exe, uid, latency; see the guard's --audit). The daemon
// answers nothing: it exports the record (serve --export) with the reporting client's
// identity added, or ignores it when it exports nothing. Sending it is the client's consent
// to the export; a client that sends none has its decisions kept to itself.
type Report struct {
	noFDs
	Text string // a JSON object, at most MaxReport bytes of UTF-8
}

func (*Report) Type() Type          { return TypeReport }
func (m *Report) RequestID() uint64 { return 0 }

func (m *Report) check() *Error {
	t := m.Type()
	if err := checkText(t, "text", m.Text, MaxReport); err != nil {
		return err
	}
	if n := len(m.Text); n < 2 || m.Text[0] != '{' || m.Text[n-1] != '}' {
		return errorf(CodeBadField, "Report: text is not a JSON object")
	}
	return nil
}

func (m *Report) appendPayload(b []byte) []byte { return appendStr(b, m.Text) }

func (m *Report) decode(d *decoder, req uint64) {
	if req != 0 {
		d.fail(CodeBadField, "Report: request id %d: a Report has none (it has no reply)", req)
		return
	}
	m.Text = d.str("text")
}

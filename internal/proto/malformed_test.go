package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

func mustEncode(t testing.TB, m Msg) ([]byte, []int) {
	t.Helper()
	frame, fds, err := Encode(m)
	if err != nil {
		t.Fatalf("Encode(%T): %v", m, err)
	}
	return frame, fds
}

// frameOf builds a frame by hand: header fields and payload as given.
func frameOf(tp Type, nfds uint8, req uint64, payload []byte) []byte {
	b := appendHeader(nil, Header{Length: uint32(len(payload)), Type: tp, NFDs: nfds, Req: req})
	return append(b, payload...)
}

// patch returns a copy of frame with b written at payload offset off.
func patch(frame []byte, off int, b ...byte) []byte {
	out := bytes.Clone(frame)
	copy(out[HeaderSize+off:], b)
	return out
}

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want an *Error with code %v", err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("error %q has code %v, want %v", err, pe.Code, code)
	}
	if pe.Msg == "" {
		t.Fatal("error without a message")
	}
}

func TestDecodeRejects(t *testing.T) {
	hello, _ := mustEncode(t, &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: "n"})
	hello4, _ := mustEncode(t, &Hello{Req: 1, MinVersion: 1, MaxVersion: 4, Name: "n"}) // options at 47
	addMark, _ := mustEncode(t, &AddMark{Req: 1, Kind: fsevent.KindInode, Mask: fsevent.Open, Target: NewFD(3)})
	removeMark, _ := mustEncode(t, &RemoveMark{Req: 1, By: RemoveByID, MarkID: 5})
	respond, _ := mustEncode(t, &Respond{EventID: 1, Verdict: fsevent.Deny, Errno: 5})
	statsReq, _ := mustEncode(t, &StatsRequest{Req: 1})
	welcome, _ := mustEncode(t, &Welcome{Req: 1, Version: 1, ClientID: 1, Instance: testInstance, DaemonVersion: "v"})
	result, _ := mustEncode(t, &Result{Req: 1, Code: CodeInvalid, Message: "m"})
	event, _ := mustEncode(t, &Event{ID: 1, Mask: fsevent.OpenPerm, Path: "/p", Name: "n"})
	overflow, _ := mustEncode(t, &Overflow{Reason: OverflowQueue})
	stats, _ := mustEncode(t, &Stats{Req: 1, Daemon: DaemonStats{Buckets: []Bucket{{Le: 1, Count: 1}}}, Clients: []ClientStats{{ID: 1, Name: "c"}}})
	fatal, _ := mustEncode(t, &Fatal{Code: CodeInternal, Message: "m"})
	one := []int{3}

	withReq := func(frame []byte, req uint64) []byte {
		out := bytes.Clone(frame)
		binary.LittleEndian.PutUint64(out[8:], req)
		return out
	}
	withNFDs := func(frame []byte, n byte) []byte {
		out := bytes.Clone(frame)
		out[6] = n
		return out
	}
	// replacePayload keeps the header of frame with a new payload.
	replacePayload := func(frame []byte, payload []byte) []byte {
		h, _ := DecodeHeader(frame)
		return frameOf(h.Type, h.NFDs, h.Req, payload)
	}
	helloPayload := func(name []byte) []byte {
		p := bytes.Clone(hello[HeaderSize : HeaderSize+44])
		p = append(p, le16(uint16(len(name)))...)
		return append(p, name...)
	}
	eventPayload := func(strs ...string) []byte {
		p := bytes.Clone(event[HeaderSize : HeaderSize+eventFixed])
		for _, s := range strs {
			p = append(p, le16(uint16(len(s)))...)
			p = append(p, s...)
		}
		return p
	}

	for _, c := range []struct {
		name  string
		frame []byte
		fds   []int
		code  Code
	}{
		// The header.
		{"empty", nil, nil, CodeTruncated},
		{"short-header", hello[:HeaderSize-1], nil, CodeTruncated},
		{"too-large", frameOf(TypePing, 0, 1, nil)[:0:0], nil, CodeTruncated},
		{"length-over-limit", append(le32(MaxPayload+1), hello[4:]...), nil, CodeTooLarge},
		{"length-max-uint32", append(le32(0xffffffff), hello[4:]...), nil, CodeTooLarge},
		{"unknown-type-0", frameOf(0, 0, 1, nil), nil, CodeUnknownType},
		{"unknown-type-10", frameOf(0x000a, 0, 1, nil), nil, CodeUnknownType},
		{"report-req", frameOf(TypeReport, 0, 1, []byte{2, 0, '{', '}'}), nil, CodeBadField},
		{"report-not-object", frameOf(TypeReport, 0, 0, []byte{2, 0, '[', ']'}), nil, CodeBadField},
		{"unknown-type-8009", frameOf(0x8009, 0, 1, nil), nil, CodeUnknownType},
		{"unknown-type-ffff", frameOf(0xffff, 0, 1, nil), nil, CodeUnknownType},
		{"header-nfds-over-max", withNFDs(addMark, 2), []int{3, 4}, CodeFDCount},
		{"header-flags", func() []byte { f := bytes.Clone(hello); f[7] = 1; return f }(), nil, CodeBadField},
		{"payload-short", hello[:len(hello)-1], nil, CodeTruncated},
		{"payload-long", append(bytes.Clone(hello), 0), nil, CodeBadField},
		{"payload-over-type-max-addmark", replacePayload(addMark, make([]byte, 25)), one, CodeTooLarge},
		{"payload-over-type-max-ping", frameOf(TypePing, 0, 1, []byte{0}), nil, CodeTooLarge},
		{"payload-over-type-max-hello", replacePayload(hello, make([]byte, MaxHello+1)), nil, CodeTooLarge},
		{"payload-over-type-max-event", frameOf(TypeEvent, 0, 0, make([]byte, MaxPayloadOf(TypeEvent)+1)), nil, CodeTooLarge},
		// Declared and received fds.
		{"fds-declared-not-received", addMark, nil, CodeFDCount},
		{"fds-received-not-declared", withNFDs(addMark, 0), one, CodeFDCount},
		{"fds-extra", hello, one, CodeFDCount},
		{"fds-addmark-none", withNFDs(addMark, 0), nil, CodeFDCount},
		{"fds-ping", withNFDs(frameOf(TypePing, 0, 1, nil), 1), one, CodeFDCount},
		{"fds-removemark-id", withNFDs(removeMark, 1), one, CodeFDCount},
		{"fds-removemark-target-none", patch(removeMark, 0, byte(RemoveByTarget), 1), nil, CodeBadField}, // mark id set
		{"fds-event-notification", withNFDs(patch(event, 0, 0), 1), one, CodeBadField},
		// Request ids.
		{"req0-hello", withReq(hello, 0), nil, CodeBadField},
		{"req0-addmark", withReq(addMark, 0), one, CodeBadField},
		{"req0-statsrequest", withReq(statsReq, 0), nil, CodeBadField},
		{"req0-ping", frameOf(TypePing, 0, 0, nil), nil, CodeBadField},
		{"req0-bye", frameOf(TypeBye, 0, 0, nil), nil, CodeBadField},
		{"req0-pong", frameOf(TypePong, 0, 0, nil), nil, CodeBadField},
		{"req0-welcome", withReq(welcome, 0), nil, CodeBadField},
		{"req0-stats", withReq(stats, 0), nil, CodeBadField},
		{"req0-result-ok", withReq(patch(result, 8, 0, 0), 0), nil, CodeBadField},
		{"req-event", withReq(event, 1), nil, CodeBadField},
		{"req-overflow", withReq(overflow, 1), nil, CodeBadField},
		// Hello.
		{"hello-magic", patch(hello, 0, 'f'), nil, CodeBadField},
		{"hello-version0", patch(hello, 4, 0, 0, 0, 0), nil, CodeBadField},
		{"hello-version-range", patch(hello, 4, 3, 0, 2, 0), nil, CodeBadField},
		{"hello-version-newer", patch(hello, 4, 7, 0, 8, 0), nil, CodeVersion},
		{"hello-class", patch(hello, 8, 3), nil, CodeBadField},
		{"hello-deadline-verdict", patch(hello, 9, 2), nil, CodeBadField},
		{"hello-close-verdict", patch(hello, 10, 2), nil, CodeBadField},
		{"hello-queuefull-verdict", patch(hello, 11, 9), nil, CodeBadField},
		{"hello-flags", patch(hello, 12, 8), nil, CodeBadField},
		{"hello-flags-high", patch(hello, 15, 0x80), nil, CodeBadField},
		{"hello-deadline-negative", patch(hello, 16, le64(1<<63)...), nil, CodeBadField},
		{"hello-queue-limit", patch(hello, 24, le32(0xfffffffe)...), nil, CodeBadField},
		{"hello-name-long", replacePayload(hello, helloPayload(bytes.Repeat([]byte("n"), MaxName+1))), nil, CodeBadField},
		{"hello-name-nul", replacePayload(hello, helloPayload([]byte("a\x00"))), nil, CodeBadField},
		{"hello-name-utf8", replacePayload(hello, helloPayload([]byte("\xc3"))), nil, CodeBadField},
		{"hello-name-truncated", replacePayload(hello, append(helloPayload(nil)[:44], 5, 0, 'a')), nil, CodeTruncated},
		{"bytes-after-frame", append(bytes.Clone(hello), 1), nil, CodeBadField}, // length not updated
		{"hello4-options", patch(hello4, 47, 2), nil, CodeBadField},
		{"hello4-options-high", patch(hello4, 50, 0x80), nil, CodeBadField},
		{"hello4-no-options", replacePayload(hello4, bytes.Clone(hello4[HeaderSize:len(hello4)-4])), nil, CodeTruncated},
		{"hello4-trailing", replacePayload(hello4, append(bytes.Clone(hello4[HeaderSize:]), 0)), nil, CodeBadField},
		{"hello-trailing-v1-len", replacePayload(hello, append(helloPayload([]byte("n")), 0)), nil, CodeBadField},
		// AddMark.
		{"addmark-kind0", patch(addMark, 0, 0), one, CodeBadField},
		{"addmark-kind5", patch(addMark, 0, 5), one, CodeBadField},
		{"addmark-options", patch(addMark, 1, 2), one, CodeBadField},
		{"addmark-reserved", patch(addMark, 2, 0, 1), one, CodeBadField},
		{"addmark-flags", patch(addMark, 4, 2), one, CodeBadField},
		// RemoveMark.
		{"removemark-mode0", patch(removeMark, 0, 0), nil, CodeBadField},
		{"removemark-mode4", patch(removeMark, 0, 4), nil, CodeBadField},
		{"removemark-reserved", patch(removeMark, 7, 1), nil, CodeBadField},
		{"removemark-id0", patch(removeMark, 8, 0), nil, CodeBadField},
		{"removemark-id-kind", patch(removeMark, 1, 1), nil, CodeBadField},
		{"removemark-all-id", patch(removeMark, 0, 3), nil, CodeBadField},
		// Respond.
		{"respond-id0", patch(respond, 0, 0, 0, 0, 0, 0, 0, 0, 0), nil, CodeBadField},
		{"respond-verdict", patch(respond, 8, 2), nil, CodeBadField},
		{"respond-flags", patch(respond, 9, 2), nil, CodeBadField},
		{"respond-errno-allow", patch(respond, 8, 0), nil, CodeBadField},
		{"respond-errno-big", patch(respond, 10, le16(4096)...), nil, CodeBadField},
		{"respond-cache-deny", patch(respond, 9, 1), nil, CodeBadField},
		{"respond-reserved", patch(respond, 15, 1), nil, CodeBadField},
		// StatsRequest.
		{"statsrequest-flags", patch(statsReq, 0, 2), nil, CodeBadField},
		{"statsrequest-short", replacePayload(statsReq, []byte{0}), nil, CodeTruncated},
		// Welcome.
		{"welcome-version0", patch(welcome, 0, 0), nil, CodeVersion},
		{"welcome-version7", patch(welcome, 0, 7), nil, CodeVersion},
		{"welcome-flags", patch(welcome, 2, 8), nil, CodeBadField},
		{"welcome-class", patch(welcome, 4, 3), nil, CodeBadField},
		{"welcome-verdict", patch(welcome, 7, 2), nil, CodeBadField},
		{"welcome-client0", patch(welcome, 8, 0), nil, CodeBadField},
		{"welcome-instance0", patch(welcome, 16, make([]byte, 16)...), nil, CodeBadField},
		{"welcome-deadline", patch(welcome, 32, le64(1<<63)...), nil, CodeBadField},
		{"welcome-queue", patch(welcome, 40, le32(0x80000000)...), nil, CodeBadField},
		{"welcome-marks", patch(welcome, 44, le32(0x80000000)...), nil, CodeBadField},
		{"welcome-version-utf8", patch(welcome, 62, 0xff), nil, CodeBadField},
		// Result and Fatal.
		{"result-message-nul", patch(result, 12, 0), nil, CodeBadField},
		{"result-message-long", replacePayload(result, append(append(bytes.Clone(result[HeaderSize:HeaderSize+10]), le16(MaxMessage+1)...), bytes.Repeat([]byte("m"), MaxMessage+1)...)), nil, CodeTooLarge},
		{"result-message-long-utf8", replacePayload(result, append(append(bytes.Clone(result[HeaderSize:HeaderSize+10]), le16(MaxMessage)...), bytes.Repeat([]byte("\xff"), MaxMessage)...)), nil, CodeBadField},
		{"result-protocol-code", patch(result, 8, 4), nil, CodeBadField},
		{"fatal-code0", patch(fatal, 0, 0, 0), nil, CodeBadField},
		{"fatal-short", replacePayload(fatal, []byte{1}), nil, CodeTruncated},
		// Event.
		{"event-mask0", patch(event, 8, 0, 0, 0, 0), nil, CodeBadField},
		{"event-mask-overflow", patch(event, 8, 0, 0x40), nil, CodeBadField},
		{"event-flags", patch(event, 36, 8), nil, CodeBadField},
		{"event-path-with-path-unknown", patch(event, 36, 2), nil, CodeBadField},
		{"event-object-missing", patch(event, 36, 4), nil, CodeTruncated},
		{"event-object-extra", replacePayload(event, append(bytes.Clone(event[HeaderSize:]), make([]byte, 16)...)), nil, CodeBadField},
		{"event-uid-without-flag", patch(event, 32, 1), nil, CodeBadField},
		{"event-range", patch(event, 48, 1), nil, CodeBadField},
		{"event-fserrno", patch(event, 56, 1), nil, CodeBadField},
		{"event-fscount", patch(event, 60, 1), nil, CodeBadField},
		{"event-fixed-short", replacePayload(event, event[HeaderSize:HeaderSize+eventFixed-1]), nil, CodeTruncated},
		{"event-strings-missing", replacePayload(event, eventPayload("/p", "", "n", "")), nil, CodeTruncated},
		{"event-strings-extra", replacePayload(event, eventPayload("/p", "", "n", "", "", "")), nil, CodeBadField},
		{"event-path-long", replacePayload(event, eventPayload("/"+strings.Repeat("p", MaxLongPath), "", "", "", "")), nil, CodeBadField},
		{"event-oldpath-long", replacePayload(event, eventPayload("", strings.Repeat("p", MaxLongPath+1), "", "", "")), nil, CodeBadField},
		{"event-name-long", replacePayload(event, eventPayload("", "", strings.Repeat("n", MaxName+1), "", "")), nil, CodeBadField},
		{"event-newname-slash", replacePayload(event, eventPayload("", "", "", "a/b", "")), nil, CodeBadField},
		{"event-comm-long", replacePayload(event, eventPayload("", "", "", "", strings.Repeat("c", MaxName+1))), nil, CodeBadField},
		{"event-path-nul", replacePayload(event, eventPayload("/\x00", "", "", "", "")), nil, CodeBadField},
		{"event-string-overruns", replacePayload(event, append(eventPayload("", "", "", ""), 0xff, 0xff, 'c')), nil, CodeTruncated},
		// Overflow.
		{"overflow-reason", patch(overflow, 0, 4), nil, CodeBadField},
		{"overflow-reserved", patch(overflow, 1, 1), nil, CodeBadField},
		// Stats.
		{"stats-uptime-negative", patch(stats, 0, le64(1<<63)...), nil, CodeBadField},
		{"stats-flags", patch(stats, 12, 2), nil, CodeBadField},
		{"stats-latency-negative", patch(stats, 104, le64(1<<63)...), nil, CodeBadField},
		{"stats-reserved", patch(stats, 124, 1), nil, CodeBadField},
		{"stats-buckets-over-limit", patch(stats, 120, le16(MaxBuckets+1)...), nil, CodeBadField},
		{"stats-clients-over-limit", patch(stats, 122, le16(MaxStatsClients+1)...), nil, CodeBadField},
		{"stats-counts-beyond-payload", patch(stats, 122, le16(100)...), nil, CodeTruncated},
		{"stats-bucket-zero", patch(stats, 128, 0), nil, CodeBadField},
		{"stats-client-class", patch(stats, 144+16, 3), nil, CodeBadField},
		{"stats-client-reserved", patch(stats, 144+17, 1), nil, CodeBadField},
		{"stats-client-latency", patch(stats, 144+104, le64(1<<63)...), nil, CodeBadField},
		{"stats-client-name-utf8", patch(stats, 144+122, 0xff), nil, CodeBadField},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode(c.frame, c.fds)
			if m != nil {
				t.Errorf("Decode returned a message with its error: %#v", m)
			}
			wantCode(t, err, c.code)
		})
	}
}

// TestDecodeTruncations cuts every valid frame at every length: each cut must fail (as
// truncated, or for the cut header: a bad length), never decode or panic.
func TestDecodeTruncations(t *testing.T) {
	for _, s := range samples(3) {
		frame, fds := mustEncode(t, s.msg)
		for n := 0; n < len(frame); n++ {
			if _, err := Decode(frame[:n], fds); err == nil {
				t.Fatalf("%s: frame cut to %d of %d bytes decoded", s.name, n, len(frame))
			}
			// Also with the header's length fixed up to the cut, so the payload decoder
			// itself meets the end.
			if n >= HeaderSize {
				cut := bytes.Clone(frame[:n])
				binary.LittleEndian.PutUint32(cut, uint32(n-HeaderSize))
				m, err := Decode(cut, fds)
				if err == nil {
					// A Hello may end early only if... never: every field is required.
					t.Fatalf("%s: payload cut to %d bytes decoded as %#v", s.name, n-HeaderSize, m)
				}
			}
		}
	}
}

// TestDecodeBitFlips flips every bit of every sample frame: the result must be refused with
// an *Error, or accepted in canonical form (re-encoding gives the same bytes).
func TestDecodeBitFlips(t *testing.T) {
	for _, s := range samples(3) {
		frame, fds := mustEncode(t, s.msg)
		for i := range len(frame) * 8 {
			f := bytes.Clone(frame)
			f[i/8] ^= 1 << (i % 8)
			checkDecode(t, f, fakeFDs(f))
			_ = fds
		}
	}
}

func TestHelloFromNewerClient(t *testing.T) {
	// A client speaking 1..7 may append fields that version 7 adds; this side skips them.
	frame, _ := mustEncode(t, &Hello{Req: 1, MinVersion: 1, MaxVersion: 7, Name: "future", NoPaths: true, WantRing: true})
	frame = append(frame, "v7 fields"...)
	binary.LittleEndian.PutUint32(frame, uint32(len(frame)-HeaderSize))
	m, err := Decode(frame, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := m.(*Hello)
	if v, err := Negotiate(h); v != 6 || err != nil || h.Name != "future" || !h.NoPaths || !h.WantRing {
		t.Fatalf("Negotiate = %d, %v; name %q", v, err, h.Name)
	}
	// A client that speaks only newer versions gets a version error naming both ranges.
	frame, _ = mustEncode(t, &Hello{Req: 1, MinVersion: 7, MaxVersion: 8})
	_, err = Decode(frame, nil)
	wantCode(t, err, CodeVersion)
	if !strings.Contains(err.Error(), "7..8") || !strings.Contains(err.Error(), "1..6") {
		t.Fatalf("version error %q does not name the ranges", err)
	}
}

func TestDecodeLeavesFDsOnError(t *testing.T) {
	frame, _ := mustEncode(t, &AddMark{Req: 1, Kind: fsevent.KindInode, Target: NewFD(3)})
	frame[HeaderSize] = 9 // bad kind
	fds := []int{3}
	if _, err := Decode(frame, fds); err == nil || fds[0] != 3 {
		t.Fatalf("Decode: %v, fds %v", err, fds)
	}
}

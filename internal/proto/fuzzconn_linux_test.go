package proto

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// FuzzConn feeds a byte stream, written in chunks of fuzzer-chosen sizes, to a Conn over a
// real socket pair. The Conn must never panic or hang; it must return exactly the frames of
// the stream, in order, each canonical, and end with io.EOF after the last whole frame or
// with an *Error. This covers what FuzzDecode cannot: header checks before the payload
// arrives, buffer growth and compaction, frames split across reads and reads across frames,
// and, on the client side, the client's reader (ReadMsgInto into a reused Event, mixed with
// ReadMsg).
func FuzzConn(f *testing.F) {
	enc := func(ms ...Msg) []byte {
		var b []byte
		for _, m := range ms {
			var err error
			if b, _, err = Append(b, nil, m); err != nil {
				f.Fatal(err)
			}
		}
		return b
	}
	hello := &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: "fuzz"}
	welcome := &Welcome{Req: 1, Version: 1, ClientID: 1, Instance: testInstance}
	f.Add(false, enc(hello, &Ping{Req: 2}, &Respond{EventID: 3}, &StatsRequest{Req: 4}, &Bye{Req: 5}), []byte{1, 7, 200})
	f.Add(false, enc(hello, &RemoveMark{Req: 2, By: RemoveByID, MarkID: 1}), []byte{16})
	f.Add(true, enc(welcome, &Event{Mask: fsevent.Create, Path: "/a/b", Name: "b"}, &Overflow{}, &Pong{Req: 2}), []byte{3, 3, 3})
	f.Add(true, enc(welcome, &Stats{Req: 1, Clients: make([]ClientStats, 300)}), []byte{255, 255, 255})
	f.Add(true, enc(&Fatal{Code: CodeVersion, Message: "no"}), []byte{})
	f.Add(false, append(enc(hello), 0xff, 0xff, 0xff, 0xff), []byte{0})
	// FlushCache (version 6) on a connection whose version is not known to be 6: refused.
	f.Add(false, enc(hello, &FlushCache{Req: 2}, &Ping{Req: 3}), []byte{20, 5})
	f.Fuzz(func(t *testing.T, client bool, stream, cuts []byte) {
		if len(stream) > 4*MaxFrame {
			return
		}
		d, c, err := Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		defer c.Close()
		reader, writer := d, c
		if client {
			reader, writer = c, d
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			w := writer.UnixConn()
			rest := stream
			for i := 0; len(rest) > 0; i++ {
				n := len(rest)
				if i < len(cuts) {
					n = min(n, int(cuts[i])+1)
				}
				if _, err := w.Write(rest[:n]); err != nil {
					return // the reader gave up on the stream
				}
				rest = rest[n:]
			}
			w.CloseWrite()
		}()
		off := 0
		var scratch Event // the client's reader decodes events into one it reuses
		for i := 0; ; i++ {
			var m Msg
			var err error
			if client && (i+len(cuts))%3 != 0 {
				// The client's reader (ReadMsgInto, sharing strings with the last event),
				// mixed with ReadMsg as a reconnection's handshake and marks read before it.
				m, err = reader.ReadMsgInto(&scratch)
			} else {
				m, err = reader.ReadMsg()
			}
			if err != nil {
				var pe *Error
				if errors.Is(err, io.EOF) {
					if off != len(stream) {
						t.Fatalf("io.EOF at offset %d of %d", off, len(stream))
					}
				} else if !errors.As(err, &pe) || !pe.Code.Known() || !pe.Code.Protocol() {
					t.Fatalf("ReadMsg error %v (%T)", err, err)
				}
				break
			}
			frame, _, err := Encode(m)
			if err != nil {
				t.Fatalf("ReadMsg returned %#v, which does not encode: %v", m, err)
			}
			if h, ok := m.(*Hello); ok && h.MaxVersion > MaxVersion {
				// A newer client's Hello: skip what this version does not know.
				hdr, _ := DecodeHeader(stream[off:])
				off += HeaderSize + int(hdr.Length)
				continue
			}
			if !bytes.HasPrefix(stream[off:], frame) {
				t.Fatalf("message at offset %d is not the stream's frame", off)
			}
			off += len(frame)
		}
		reader.Close()
		<-done
	})
}

package proto

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

func benchEvent() *Event {
	return &Event{ID: 12345, Mask: fsevent.OpenPerm, Time: time.Unix(0, 1700000000123456789), Pid: 4242, Tid: 4243,
		UID: 1000, HasUID: true, Path: "/home/user/projects/fsnotifyd/internal/proto/conn_linux.go",
		Name: "conn_linux.go", Comm: "gopls"}
}

func BenchmarkEncodeEvent(b *testing.B) {
	ev := benchEvent()
	var buf []byte
	var fds []int
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, fds, err = Append(buf[:0], fds[:0], ev)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeEvent(b *testing.B) {
	frame, _, err := Encode(benchEvent())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := Decode(frame, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEventInto is BenchmarkDecodeEvent the way Conn.ReadMsgInto decodes: into
// the reader's Event, the strings shared with the previous event's (the same here).
func BenchmarkDecodeEventInto(b *testing.B) {
	frame, _, err := Encode(benchEvent())
	if err != nil {
		b.Fatal(err)
	}
	var ev Event
	var last string
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := decodeFrame(frame, nil, &ev, &last); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnEvent is one event through a socket pair: write, read, decode.
func BenchmarkConnEvent(b *testing.B) {
	d, c := pipe(b)
	handshake(b, d, c)
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if err := d.WriteMsg(ev); err != nil {
			b.Fatal(err)
		}
		if _, err := c.ReadMsg(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnEventFD is the same with the event's fd passed (SCM_RIGHTS) and closed.
func BenchmarkConnEventFD(b *testing.B) {
	d, c := pipe(b)
	handshake(b, d, c)
	p := filepath.Join(b.TempDir(), "f")
	os.WriteFile(p, nil, 0o644)
	fd := openPath(b, p)
	defer syscall.Close(fd)
	ev := benchEvent()
	ev.FD = NewFD(fd)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.WriteMsg(ev); err != nil {
			b.Fatal(err)
		}
		m, err := c.ReadMsg()
		if err != nil {
			b.Fatal(err)
		}
		CloseFDs(m)
	}
}

// BenchmarkConnRoundTrip is a permission round trip as a client sees it: the daemon writes
// an Event, the client reads it and writes a Respond, the daemon reads that.
func BenchmarkConnRoundTrip(b *testing.B) {
	d, c := pipe(b)
	handshake(b, d, c)
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if err := d.WriteMsg(ev); err != nil {
			b.Fatal(err)
		}
		m, err := c.ReadMsg()
		if err != nil {
			b.Fatal(err)
		}
		if err := c.WriteMsg(&Respond{EventID: m.(*Event).ID}); err != nil {
			b.Fatal(err)
		}
		if _, err := d.ReadMsg(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnBatch16 is sixteen notification events per WriteMsgs (one write), read one
// by one; the figure is per event.
func BenchmarkConnBatch16(b *testing.B) {
	d, c := pipe(b)
	handshake(b, d, c)
	ev := benchEvent()
	ev.ID = 0
	ev.Mask = fsevent.Open
	batch := make([]Msg, 16)
	for i := range batch {
		batch[i] = ev
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%16 == 0 {
			if err := d.WriteMsgs(batch...); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := c.ReadMsg(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	for ; n%16 != 0; n++ {
		c.ReadMsg()
	}
}

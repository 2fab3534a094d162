//go:build linux

package client_test

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// BenchmarkEvents: the client library's cost per notification read through Events, what
// bench/fanout's clients pay per event: a fake daemon writes b.N events (an open of the
// same file, as under fanref's load) in flush-sized bursts of frames, and one goroutine
// ranges over Events (or, for comparison, Options.Handler counts them on the reader's
// goroutine: the library's cost without the hand-off). cpu-ns/event is the process's CPU (the
// fake daemon's writes included) per event.
func BenchmarkEvents(b *testing.B) {
	for _, bc := range []struct {
		name    string
		buffer  int
		handler bool
	}{{"buffer1024", 1024, false}, {"unbuffered", 0, false}, {"handler", 0, true}} {
		b.Run(bc.name, func(b *testing.B) { benchEvents(b, bc.buffer, bc.handler) })
	}
}

func benchEvents(b *testing.B, buffer int, handler bool) {
	sock := filepath.Join(b.TempDir(), "f.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	const burst = 256
	ev := proto.Event{Mask: engine.Open, Pid: 1234, Tid: 1234, Path: "/tmp/bench/mnt/d/f", Name: "f",
		Dev: 7<<8 | 1, Ino: 12, HasObject: true, Time: time.Unix(1, 0)}
	var frames []byte
	for range burst {
		if frames, err = proto.AppendEvent(frames, &ev); err != nil {
			b.Fatal(err)
		}
	}
	frameLen := len(frames) / burst
	var read atomic.Int64 // events read, updated every burst: the writer stays within 8 bursts of it
	served := make(chan *proto.Conn, 1)
	go func() {
		uc, err := ln.AcceptUnix()
		if err != nil {
			served <- nil
			return
		}
		conn := proto.NewConn(uc, proto.DaemonSide)
		m, err := conn.ReadMsg()
		if err == nil {
			err = conn.WriteMsg(&proto.Welcome{Req: m.RequestID(), Version: proto.Version, ClientID: 1, Instance: proto.InstanceID{1, 1},
				Fresh: true, Class: fsevent.ClassNotification, DaemonVersion: "bench"})
		}
		if err != nil {
			conn.Close()
			conn = nil
		}
		served <- conn
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := client.Options{Socket: sock, Buffer: buffer}
	var handled atomic.Int64
	handledAll := make(chan struct{})
	if handler {
		opts.Handler = func(ev client.Event) {
			if n := handled.Add(1); n == int64(b.N) {
				close(handledAll)
			} else if n%burst == 0 {
				read.Store(n)
			}
		}
	}
	c, err := client.Dial(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	conn := <-served
	if conn == nil {
		b.Fatal("fake daemon: handshake failed")
	}
	defer conn.Close()
	b.ReportAllocs()
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ResetTimer()
	werr := make(chan error, 1)
	go func() {
		for left := b.N; left > 0; left -= burst {
			for int64(b.N-left)-read.Load() > 8*burst {
				time.Sleep(20 * time.Microsecond)
			}
			if err := conn.WriteFrames(frames[:min(left, burst)*frameLen]); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	got, overflows := 0, 0
	if handler {
		<-handledAll
		got = b.N
	}
	for got+overflows < b.N {
		ev := <-c.Events()
		if ev.Overflow {
			overflows++
		} else {
			got++
		}
		if n := got + overflows; n%burst == 0 {
			read.Store(int64(n))
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	if overflows > 0 {
		b.Fatalf("%d overflows: the writer is paced to stay well within the queue", overflows)
	}
}

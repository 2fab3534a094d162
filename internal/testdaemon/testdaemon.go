//go:build linux

// Package testdaemon serves a daemon inside a test's process, on a socket of its own, the way
// a program embedding package daemon does: through its public API only (New, Run on the
// program's own listener, Close). The daemon, client, notify, source and CLI tests share it.
//
// Goroutines: Start's one runs Server.Run until Stop (or the end of the test) cancels it; Stop
// waits for it. ServeImpostor's accept one and one per connection end with the test.
package testdaemon

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// Daemon is a daemon served in this process.
type Daemon struct {
	*daemon.Server
	// Sock is the socket it serves.
	Sock string

	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start serves a new daemon (and its backend, unless opts gives one) on sock until Stop or
// the end of the test. The socket is open to every user (tests connect as nobody); a socket
// file left at sock by an earlier daemon of the test is replaced.
func Start(t testing.TB, opts daemon.Options, sock string) *Daemon {
	t.Helper()
	srv, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666)
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{Server: srv, Sock: sock, t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- srv.Run(ctx, ln) }()
	t.Cleanup(d.Stop)
	return d
}

// Stop ends Run and closes the server; it fails the test if Run returns an error, or if
// either takes more than 10 s. Calls after the first do nothing.
func (d *Daemon) Stop() {
	d.once.Do(func() {
		d.cancel()
		select {
		case err := <-d.done:
			if err != nil {
				d.t.Errorf("daemon Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			d.t.Errorf("daemon Run did not return within 10 s of its context's end")
		}
		closed := make(chan struct{})
		go func() { d.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			d.t.Errorf("daemon Close did not return within 10 s")
		}
	})
}

// Cancel ends Run's context, without waiting for it (Stop waits, and closes the server).
func (d *Daemon) Cancel() { d.cancel() }

// WaitRun waits up to timeout for Run to return, and reports whether it did and its error.
// (One goroutine at a time may ask; Stop still sees Run's end.)
func (d *Daemon) WaitRun(timeout time.Duration) (returned bool, err error) {
	select {
	case err := <-d.done:
		d.done <- err // for Stop
		return true, err
	case <-time.After(timeout):
		return false, nil
	}
}

// Ended reports whether Run has returned, without waiting, and its error: a daemon that must
// survive what the test does has not.
func (d *Daemon) Ended() (bool, error) { return d.WaitRun(0) }

// ServeImpostor answers every connection on ln, until the end of the test, as a daemon that
// grants each Hello what it asks for, says the client's pid is pid (0: the client's own, as
// the kernel gives it), answers every request with success and never sends an event: what a
// client must not take for the daemon, or not believe. The end of the test closes ln and
// every connection and waits for the goroutines that serve them.
func ServeImpostor(t testing.TB, ln *net.UnixListener, pid int32) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[*proto.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := uint64(1); ; n++ {
			uc, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			conn := proto.NewConn(uc, proto.DaemonSide)
			mu.Lock()
			conns[conn] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				for {
					m, err := conn.ReadMsg()
					if err != nil {
						return
					}
					proto.CloseFDs(m)
					var reply proto.Msg
					switch m := m.(type) {
					case *proto.Hello:
						w := &proto.Welcome{Req: m.Req, Version: 4, ClientID: n, Instance: proto.InstanceID{1}, Fresh: true,
							Class: m.Class, DaemonVersion: "impostor", PID: pid}
						if cred, err := conn.PeerCred(); err == nil && pid == 0 {
							w.UID, w.GID, w.PID = cred.Uid, cred.Gid, cred.Pid
						}
						reply = w
					case *proto.Ping:
						reply = &proto.Pong{Req: m.Req}
					default:
						if m.RequestID() == 0 {
							continue
						}
						reply = &proto.Result{Req: m.RequestID(), ID: n}
					}
					if conn.WriteMsg(reply) != nil {
						return
					}
				}
			}()
		}
	}()
}

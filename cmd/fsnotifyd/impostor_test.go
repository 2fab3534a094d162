//go:build linux

package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// serveImpostor answers every connection on ln as a daemon that grants what is asked and
// accepts every mark, and never sends an event: a guard through it decides nothing.
func serveImpostor(t *testing.T, ln *net.UnixListener) {
	go func() {
		for {
			uc, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go func() {
				conn := proto.NewConn(uc, proto.DaemonSide)
				defer conn.Close()
				for n := uint64(1); ; n++ {
					m, err := conn.ReadMsg()
					if err != nil {
						return
					}
					proto.CloseFDs(m)
					var reply proto.Msg
					switch m := m.(type) {
					case *proto.Hello:
						reply = &proto.Welcome{Req: m.Req, Version: 4, ClientID: n, Instance: proto.InstanceID{1},
							Fresh: true, Class: m.Class, DaemonVersion: "impostor", UID: 0, PID: int32(os.Getpid())}
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

// TestDaemonClientsRefuseAnotherUsersSocket: root's guard, watch and stats with --daemon
// at a socket that uid 65534 listens on (a --socket path in a sticky shared directory,
// such as /tmp) refuse it and exit 1, naming the socket and the uid; before, the guard took
// the impostor's Welcome and ran, deciding nothing.
func TestDaemonClientsRefuseAnotherUsersSocket(t *testing.T) {
	testenv.RequireRoot(t)
	shared := testenv.PublicDir(t)
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shared, "d.sock")
	serveImpostor(t, testenv.ListenAs(t, testenv.Nobody, sock))
	dir := testenv.Tmpfs(t)
	for _, args := range [][]string{
		{"guard", "--daemon=" + sock, "--deny", "**/*.key", dir},
		{"watch", "--daemon=" + sock, dir},
		{"stats", "--socket", sock},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		if exitStatus(err) != 1 || !strings.Contains(string(out), sock+" is served by uid 65534") {
			t.Errorf("fsnotifyd %v through uid 65534's socket: %v\n%s\nwant exit 1 and %q", args, err, out, sock+" is served by uid 65534")
		}
	}
}

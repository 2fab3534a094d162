//go:build linux

package daemon_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestConnectionLimits: with max_clients 8, reserved_clients 4 and max_clients_per_uid 3, an
// unprivileged uid gets 3 connections and is refused the 4th, naming max_clients_per_uid; a
// second unprivileged uid gets the 4th and last unprivileged one and is refused the next,
// naming reserved_clients; root still gets the 4 reserved, and is refused the 9th, naming
// max_clients. Each refusal is a Fatal with code limit, sent at once.
func TestConnectionLimits(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig()
	cfg.MaxClients, cfg.ReservedClients, cfg.MaxClientsPerUID = 8, 4, 3
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, cfg, sock)
	hold := func(uid uint32, n int, wantWelcome int, wantMsg string) *proc {
		t.Helper()
		p := spawn(t, "flood", spawnOpts{cred: &syscall.Credential{Uid: uid, Gid: 65534},
			env: []string{"FSND_SOCKET=" + sock, "FSND_HELLO=" + strconv.Itoa(n), "FSND_CONC=1"}})
		l := p.mustLine("filled ", hang)
		if !strings.Contains(l, " welcome="+strconv.Itoa(wantWelcome)+" ") || !strings.Contains(l, " refused="+strconv.Itoa(n-wantWelcome)+" ") {
			t.Errorf("uid %d, %d clients: %q, want %d welcomed", uid, n, l, wantWelcome)
		}
		if f, ok := p.waitLine("first-refusal ", 0); !ok || !strings.HasPrefix(f, "first-refusal limit ") || !strings.Contains(f, wantMsg) {
			t.Errorf("uid %d: refusal %q, want code limit naming %s", uid, f, wantMsg)
		} else {
			t.Logf("uid %d: %s", uid, rest(f, 2))
		}
		return p
	}
	hold(65534, 4, 3, "max_clients_per_uid")
	hold(65533, 2, 1, "reserved_clients")
	if cs := d.srv.ConnStats(); cs.Unprivileged != 4 || cs.RefusedUID != 1 || cs.RefusedShare != 1 {
		t.Errorf("connection figures %+v, want 4 unprivileged, 1 refused per uid, 1 for the reserve", cs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	for i := range 5 {
		c, err := client.Dial(ctx, client.Options{Socket: sock, Name: "root"})
		if i < 4 {
			if err != nil {
				t.Fatalf("root's connection %d of the 4 reserved: %v", i+1, err)
			}
			defer c.Close()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "max_clients") {
			t.Errorf("root's 5th connection beyond max_clients: %v, want a refusal naming max_clients", err)
			if c != nil {
				c.Close()
			}
		}
	}
}

// TestIdleAndSilentConnectionsReaped: a connection that says no Hello within
// handshake_timeout gets a Fatal (limit) saying so and is closed, whoever it is; an
// unprivileged client with no marks that sends nothing for idle_timeout is closed too, while
// one holding a mark, and root's client without one, stay.
func TestIdleAndSilentConnectionsReaped(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	cfg := testConfig()
	cfg.HandshakeTimeout, cfg.IdleTimeout = 300*time.Millisecond, 500*time.Millisecond
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, cfg, sock)

	t.Run("silent", func(t *testing.T) {
		conn, err := proto.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(hang))
		start := time.Now()
		m, err := conn.ReadMsg()
		fatal, ok := m.(*proto.Fatal)
		if err != nil || !ok || fatal.Code != proto.CodeLimit || !strings.Contains(fatal.Message, "handshake_timeout") {
			t.Fatalf("a silent connection got %#v, %v; want a Fatal naming handshake_timeout", m, err)
		}
		if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
			t.Errorf("closed after %v, want about 300ms", took)
		}
		if _, err := conn.ReadMsg(); err == nil {
			t.Error("the connection stayed open after the Fatal")
		}
	})

	t.Run("idle", func(t *testing.T) {
		idle := dialClient(t, sock, "name=idle", nobody)
		busy := dialClient(t, sock, "name=busy", nobody)
		mustAdd(t, busy, kindInode, maskOpenChild, f.pub)
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		root, err := client.Dial(ctx, client.Options{Socket: sock, Name: "root-idle"})
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		start := time.Now()
		if _, ok := idle.waitLine("events-closed", hang); !ok {
			t.Fatalf("the idle unprivileged client was not closed%s", idle.tail())
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("closed after %v, want within idle_timeout 500ms and a tick", took)
		}
		time.Sleep(time.Second)
		busy.send("ping")
		if l := busy.mustLine("p", hang); l != "pong" {
			t.Errorf("the unprivileged client with a mark: %q, want pong", l)
		}
		if err := root.Ping(ctx); err != nil {
			t.Errorf("root's client with no marks: %v", err)
		}
		if cs := d.srv.ConnStats(); cs.ReapedIdle != 1 {
			t.Errorf("%d idle clients reaped, want 1", cs.ReapedIdle)
		}
	})
}

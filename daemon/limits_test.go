//go:build linux

package daemon_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
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

// handlelessFiles returns up to n regular files under /proc/sys and /sys that uid 65534 may
// read: files of filesystems without file handles, which the backend keeps open while marked.
func handlelessFiles(t *testing.T, n int) []string {
	t.Helper()
	var files []string
	for _, root := range []string{"/proc/sys", "/sys"} {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if len(files) >= n {
				return fs.SkipAll
			}
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if info, err := d.Info(); err == nil && info.Mode().Perm()&0o004 != 0 {
				files = append(files, path)
			}
			return nil
		})
	}
	return files
}

// TestUnprivilegedHeldDescriptorsBounded: the backend keeps a descriptor of every marked
// object whose filesystem has no file handles (procfs, sysfs), for as long as it is marked.
// Unprivileged clients may hold at most max_held_fds such marks together, a quarter of it per
// uid; a mark beyond is refused (limit), and what a client held is given back when it
// leaves. Without the bound, uid 65534 made the daemon hold one descriptor per file it marked
// under /proc/sys and /sys — up to max_marks (65536) per connection, from 256 connections:
// the descriptors the daemon needs for its connections and kernel events (a permission event
// whose descriptor the kernel cannot create is denied). Root is not bounded.
func TestUnprivilegedHeldDescriptorsBounded(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig()
	cfg.MaxHeldFDs = 200
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, cfg, sock)
	total, perUID := d.srv.HeldBudget()
	if total != 200 || perUID != 50 {
		t.Fatalf("budget %d, %d per uid; want 200 and 50", total, perUID)
	}
	files := handlelessFiles(t, total+perUID+20)
	if len(files) < total+perUID+20 {
		t.Skipf("only %d readable files under /proc/sys and /sys", len(files))
	}
	// addAll marks files with client p and returns how many it got and the first refusal.
	addAll := func(p *proc, files []string) (ok int, refusal string) {
		t.Helper()
		for _, f := range files {
			p.send("add %s %s %s", kindInode, maskOpen, f)
			l := p.mustLine("add-", hang)
			switch {
			case strings.HasPrefix(l, "add-ok "):
				ok++
			case refusal == "":
				refusal = l
			}
		}
		return ok, refusal
	}
	// Root is trusted with its descriptors; its first mark also sets the backend up for
	// procfs (its filesystem's own descriptors).
	root := dialClient(t, sock, "name=root,quiet=1", spawnOpts{})
	if ok, refusal := addAll(root, files[:1]); ok != 1 {
		t.Fatalf("root's mark: %q", refusal)
	}
	// Two connections of uid 65534 share its quarter.
	a := dialClient(t, sock, "name=a,quiet=1", nobody)
	b := dialClient(t, sock, "name=b,quiet=1", nobody)
	fd0 := testenv.OpenFDs(t)
	okA, _ := addAll(a, files[:perUID-10])
	okB, refusal := addAll(b, files[perUID-10:perUID+10])
	if okA+okB != perUID || !strings.HasPrefix(refusal, "add-err limit ") || !strings.Contains(refusal, "uid 65534 holds 50 marks on files the daemon must keep open") {
		t.Errorf("uid 65534 placed %d+%d marks on files without handles (refused: %q), want %d, then a limit refusal", okA, okB, refusal, perUID)
	}
	if grew := testenv.OpenFDs(t) - fd0; grew > perUID+2 {
		t.Errorf("the daemon holds %d more descriptors after uid 65534's %d marks, want at most %d", grew, okA+okB, perUID+2)
	}
	// Three other uids take the rest of the total; a fourth gets none.
	placed := perUID
	for uid := uint32(65533); uid >= 65530; uid-- {
		p := dialClient(t, sock, "name=other,quiet=1", spawnOpts{cred: &syscall.Credential{Uid: uid, Gid: 65534}})
		ok, refusal := addAll(p, files[placed:placed+perUID])
		placed += ok
		switch {
		case uid > 65530 && (ok != perUID || refusal != ""):
			t.Errorf("uid %d: %d marks (refused: %q), want %d", uid, ok, refusal, perUID)
		case uid == 65530 && (ok != 0 || !strings.Contains(refusal, "unprivileged clients hold 200 marks on files the daemon must keep open")):
			t.Errorf("uid %d past the total: %d marks, refusal %q, want none, refused naming the total", uid, ok, refusal)
		}
	}
	if ok, refusal := addAll(root, files[1:total+perUID+20]); ok != total+perUID+19 {
		t.Errorf("root placed %d of %d marks (refused: %q)", ok, total+perUID+19, refusal)
	}
	// What a client held is given back when it leaves, or removes its marks.
	a.send("close")
	a.mustLine("closed", hang)
	c := dialClient(t, sock, "name=c,quiet=1", nobody)
	if !eventually(hang, func() bool {
		ok, _ := addAll(c, files[perUID+20:perUID+21])
		return ok == 1
	}) {
		t.Errorf("uid 65534's marks were not given back when its client left")
	}
}

// TestFilesystemsOfOtherMountNamespacesRefused: a user who can make filesystems of its own (a
// tmpfs mounted in a user and mount namespace of its own: unshare -Urm, open to any user where
// unprivileged user namespaces are) could make the daemon take each up — the backend keeps
// descriptors and state of every filesystem it marks on, for as long as it runs — and so
// exhaust its descriptors with clients that come and go. An unprivileged client may mark
// only on filesystems mounted in the daemon's mount namespace, and a removal by target (which
// the client library never sends) looks the object up without taking its filesystem up: twenty
// rounds of a new tmpfs and a client that marks a file on it and leaves, and of another and a
// client that asks to remove a mark on a file there, leave the daemon's descriptors as they
// were. Before, each round of either left one.
func TestFilesystemsOfOtherMountNamespacesRefused(t *testing.T) {
	testenv.RequireRoot(t)
	if out, err := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		"unshare", "-Urm", "sh", "-c", "mount -t tmpfs x /mnt").CombinedOutput(); err != nil {
		t.Skipf("uid 65534 cannot mount a tmpfs in a user namespace of its own: %v %s", err, out)
	}
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	helper := helperBinary(t)
	// round runs role (rawadd: an add, rawrm: a removal by target) in a new namespace with a
	// new tmpfs, and returns the daemon's answer. The protocol is spoken without the client
	// library: in a user namespace of its own the daemon's uid shows as the overflow uid, and
	// the library refuses such a daemon (a hostile client would not use it anyway).
	round := func(role string) string {
		t.Helper()
		cmd := exec.Command("unshare", "-Urm", "sh", "-c", `mount -t tmpfs x /mnt && : >/mnt/f && exec "$0"`, helper)
		cmd.Dir = "/"
		cmd.Env = append(os.Environ(), helperEnv+"="+role, "GORACE=atexit_sleep_ms=0",
			"FSND_SOCKET="+sock, "FSND_PATH=/mnt/f")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody.cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("a client in a mount namespace of its own: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "add-") || strings.HasPrefix(l, "rm-") {
				return l
			}
		}
		t.Fatalf("a client in a mount namespace of its own: no answer to its add\n%s", out)
		return ""
	}
	round("rawadd") // the daemon's own first-use descriptors (kernel groups) are not the test's
	fd0 := testenv.OpenFDs(t)
	for range 20 {
		if l := round("rawadd"); !strings.HasPrefix(l, "add-err permission ") || !strings.Contains(l, "not mounted in the daemon's mount namespace") {
			t.Fatalf("uid 65534's mark on its own tmpfs: %q, want a permission error", l)
		}
		// A removal by target looks the object up without taking its filesystem up.
		if l := round("rawrm"); !strings.HasPrefix(l, "rm-err not-found ") {
			t.Fatalf("uid 65534's removal by target of a file on its own tmpfs: %q, want not-found", l)
		}
	}
	if fd1 := testenv.OpenFDs(t); fd1 > fd0 {
		t.Errorf("the daemon holds %d descriptors after twenty filesystems of uid 65534 came and went, %d before", fd1, fd0)
	}
}

// TestUnprivilegedQueuesBoundedPerUID: the clients of one unprivileged uid share
// queue_limit_per_uid. Three clients of uid 65534, each watching a directory of its own,
// stopped (SIGSTOP) while root opens thousands of files there: the events the daemon holds
// for them are at most queue_limit_per_uid (600) and an overflow each, not 3 x queue_limit
// (400); each is told of its loss (an overflow) once it reads again, and root's own client,
// which shares no budget, holds its whole queue. Fails without the budget: the three hold
// 1,200.
func TestUnprivilegedQueuesBoundedPerUID(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig()
	cfg.QueueLimit, cfg.QueueLimitPerUID = 400, 600
	const clients = 3
	// Each client a directory of its own; the last client is root's (no budget).
	sos := []spawnOpts{nobody, nobody, nobody, {}}
	d, ps, held := fillStoppedQueues(t, cfg, sos, false)
	root := held["c"+strconv.Itoa(clients)]
	var cs []fsevent.ClientStats
	n := 0
	for i := range clients {
		c := held["c"+strconv.Itoa(i)]
		cs = append(cs, c)
		// What the client's writer took from its queue and holds, waiting for the socket,
		// is the daemon's memory too.
		n += int(c.Queued) + d.srv.PendingEvents(c.Name)
	}
	t.Logf("uid 65534's %d stopped clients hold %d events, queued or taken by their writers (queue_limit %d, queue_limit_per_uid %d); root's holds %d", clients, n, cfg.QueueLimit, cfg.QueueLimitPerUID, root.Queued)
	// The slack: an overflow each, and one entry each that two kernel readers queueing at once
	// may both pass the budget's check for (engine.QueueBudget's stated overshoot), as in
	// TestUnprivilegedQueuesBoundedInTotal.
	if slack := 2; n > cfg.QueueLimitPerUID+slack*clients {
		t.Errorf("uid 65534's stopped clients hold %d events between them, over queue_limit_per_uid %d and %d each", n, cfg.QueueLimitPerUID, slack)
	}
	if n < cfg.QueueLimitPerUID {
		t.Errorf("uid 65534's stopped clients hold %d events, under the budget %d they had filled: the test did not fill it", n, cfg.QueueLimitPerUID)
	}
	if int(root.Queued) < cfg.QueueLimit {
		t.Errorf("root's stopped client holds %d events, want its whole queue (%d): the budget is unprivileged users'", root.Queued, cfg.QueueLimit)
	}
	for _, c := range cs {
		if c.Overflows == 0 {
			t.Errorf("client %s lost %d events with no overflow queued", c.Name, c.Dropped)
		}
	}
	// Read again, each is told of its loss.
	for i, p := range ps[:clients] {
		p.cmd.Process.Signal(syscall.SIGCONT)
		var l string
		for end := time.Now().Add(hang); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			p.send("count")
			l = p.mustLine("count ", hang)
			if !strings.HasSuffix(l, " overflows=0") {
				break
			}
		}
		if strings.HasSuffix(l, " overflows=0") {
			t.Errorf("client %d read no overflow after its loss: %q", i, l)
		}
	}
}

// TestUnprivilegedQueuesBoundedInTotal: queue_limit_unprivileged bounds the events all
// unprivileged uids' clients hold together. A user with subordinate uids (/etc/subuid,
// newuidmap) runs clients under up to 65536 uids, each with a queue_limit_per_uid of its own:
// eight uids' stopped clients, one each, watching one directory while root opens thousands
// of files there, hold at most queue_limit_unprivileged (600) and a little each (an
// overflow, an entry queued concurrently), not 8 x queue_limit_per_uid (200) — in their
// queues or taken by their writers, which wait for the socket holding a batch; each uid
// still holds no more than its own budget, and root's stopped client, outside every budget,
// holds its whole queue; killed, they give everything back. Fails without the total bound:
// the eight hold 1,600; and without the writers' batches counted, 1,162.
func TestUnprivilegedQueuesBoundedInTotal(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig()
	cfg.QueueLimit, cfg.QueueLimitPerUID, cfg.QueueLimitUnprivileged = 200, 200, 600
	const uids = 8
	var sos []spawnOpts
	for i := range uids {
		sos = append(sos, spawnOpts{cred: &syscall.Credential{Uid: 60000 + uint32(i), Gid: 65534}})
	}
	sos = append(sos, spawnOpts{}) // root's
	d, ps, held := fillStoppedQueues(t, cfg, sos, true)
	// The slack: an overflow each, and one entry each that two kernel readers queueing at once
	// may both pass the budget's check for (engine.QueueBudget's stated overshoot).
	slack := 2
	n := 0
	for i := range uids {
		c := held["c"+strconv.Itoa(i)]
		q := int(c.Queued) + d.srv.PendingEvents(c.Name) // queued, or taken by its writer
		n += q
		if q > cfg.QueueLimitPerUID+slack {
			t.Errorf("uid %d's stopped client holds %d events, over its queue_limit_per_uid %d and %d", c.UID, q, cfg.QueueLimitPerUID, slack)
		}
		if c.Dropped > 0 && c.Overflows == 0 {
			t.Errorf("client %s lost %d events with no overflow queued", c.Name, c.Dropped)
		}
	}
	root := held["c"+strconv.Itoa(uids)]
	used := d.srv.UnprivilegedQueued()
	t.Logf("%d uids' stopped clients hold %d events, queued or taken by their writers (the budget counts %d; queue_limit_per_uid %d, queue_limit_unprivileged %d); root's holds %d", uids, n, used, cfg.QueueLimitPerUID, cfg.QueueLimitUnprivileged, root.Queued)
	if n > cfg.QueueLimitUnprivileged+slack*uids || used > cfg.QueueLimitUnprivileged+slack*uids {
		t.Errorf("%d uids' stopped clients hold %d events between them (the budget counts %d), over queue_limit_unprivileged %d and %d each (%d x queue_limit_per_uid %d)", uids, n, used, cfg.QueueLimitUnprivileged, slack, uids, cfg.QueueLimitPerUID)
	}
	if n < cfg.QueueLimitUnprivileged {
		t.Errorf("%d uids' stopped clients hold %d events, under queue_limit_unprivileged %d: the test did not fill it", uids, n, cfg.QueueLimitUnprivileged)
	}
	if int(root.Queued) < cfg.QueueLimit {
		t.Errorf("root's stopped client holds %d events, want its whole queue (%d): the bound is unprivileged users'", root.Queued, cfg.QueueLimit)
	}
	// Killed, the clients give everything back, their writers' pending events included.
	for _, p := range ps {
		p.kill()
	}
	if !eventually(hang, func() bool { return d.srv.UnprivilegedQueued() == 0 }) {
		t.Errorf("after every unprivileged client was killed, %d events still count against queue_limit_unprivileged", d.srv.UnprivilegedQueued())
	}
}

// fillStoppedQueues starts a daemon with cfg and one quiet client per spawnOpts (named c0,
// c1, ...), each watching the opens in a directory of its own (one directory for all with
// shared) of a tmpfs, stops them (SIGSTOP, resumed at cleanup), opens each of thousands of
// files there once, and waits until every client has lost events (its queue or a budget
// full) and what they hold stands still. It returns the daemon, the clients and their figures
// by name.
func fillStoppedQueues(t *testing.T, cfg daemon.Config, sos []spawnOpts, shared bool) (*testDaemon, []*proc, map[string]fsevent.ClientStats) {
	t.Helper()
	s := testenv.Tmpfs(t)
	openUp(t, s)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, cfg, sock)
	// Distinct files, each opened once: the kernel merges an unread event into an earlier
	// one of the same file, and a daemon slow to read (a busy machine) would see a few
	// events only. Long names make each event's frame long, so that the client's socket
	// takes a few hundred and the rest must wait in its queue.
	const files = 3000
	long := strings.Repeat("n", 200)
	var dirs []string
	var ps []*proc
	for i, so := range sos {
		if !shared || i == 0 {
			dir := filepath.Join(s, "d"+strconv.Itoa(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for n := range files {
				if err := os.WriteFile(filepath.Join(dir, long+strconv.Itoa(n)), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			dirs = append(dirs, dir)
		}
		p := dialClient(t, sock, "quiet=1,name=c"+strconv.Itoa(i), so)
		mustAdd(t, p, kindInode, maskOpenChild, dirs[len(dirs)-1])
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	openAll := func() {
		for n := range files {
			for _, dir := range dirs {
				f, err := os.Open(filepath.Join(dir, long+strconv.Itoa(n)))
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
		}
	}
	byName := func() map[string]fsevent.ClientStats {
		m := map[string]fsevent.ClientStats{}
		for _, c := range d.srv.Stats(true, 0).Clients {
			m[c.Name] = c
		}
		return m
	}
	settle := func() map[string]fsevent.ClientStats {
		deadline := time.Now().Add(hang)
		var held map[string]fsevent.ClientStats
		last := -1
		for stable := 0; stable < 5; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the daemon's figures did not settle: %+v", d.srv.Stats(true, 0).Clients)
			}
			held = byName()
			queued, lost := 0, 0
			for _, c := range held {
				queued += int(c.Queued)
				if c.Dropped > 0 {
					lost++
				}
			}
			if len(held) != len(sos) || lost < len(sos) || queued != last {
				last, stable = queued, 0
				continue
			}
			stable++
		}
		return held
	}
	// A queue holds events only once its client's socket is full. A daemon slow to write
	// (a busy machine, a -tags lockorder build) drops most of a pass's events at the budget
	// while the writers still have room in the sockets, and writes the rest once the pass
	// is over: the queues are then empty, not full. So open the files again until no client's
	// socket takes another event in a pass (its Delivered stays), at most ten passes.
	openAll()
	held := settle()
	for range 10 {
		openAll()
		next := settle()
		grew := false
		for name, c := range next {
			if c.Delivered != held[name].Delivered {
				grew = true
			}
		}
		held = next
		if !grew {
			break
		}
	}
	return d, ps, held
}

// TestUnprivilegedMarksBoundedPerUIDAndInTotal: max_marks bounds one client's marks only;
// max_marks_per_uid bounds all the clients of one unprivileged uid together, and
// max_marks_unprivileged all unprivileged uids' (a user with subordinate uids has up to
// 65536), the uid's bound checked first. Each mark holds the daemon's memory and, in the
// kernel, its object's inode. With max_marks 10, max_marks_per_uid 20 and
// max_marks_unprivileged 50, four uids with three clients each, every client marking ten
// files: each uid's third client is refused naming max_marks_per_uid, the third uid's
// second client and the fourth uid's first naming max_marks_unprivileged; a mark removed gives
// its room back, a client that leaves all of its marks; root's client marks past every bound.
// Before, each client got its 10: 120 marks.
func TestUnprivilegedMarksBoundedPerUIDAndInTotal(t *testing.T) {
	testenv.RequireRoot(t)
	s := testenv.Tmpfs(t)
	openUp(t, s)
	cfg := testConfig()
	cfg.MaxMarks, cfg.MaxMarksPerUID, cfg.MaxMarksUnprivileged = 10, 20, 50
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, cfg, sock)
	var files []string
	for i := range 10 {
		f := filepath.Join(s, "f"+strconv.Itoa(i))
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	// marks places the ten marks and returns how many were placed and the first refusal.
	marks := func(p *proc) (placed int, refusal string) {
		for _, f := range files {
			p.send("add %s %s %s", kindInode, maskOpen, f)
			l := p.mustLine("add-", hang)
			if strings.HasPrefix(l, "add-ok") {
				placed++
			} else if refusal == "" {
				refusal = l
			}
		}
		return placed, refusal
	}
	want := [][]struct {
		placed  int
		refusal string
	}{
		{{10, ""}, {10, ""}, {0, "max_marks_per_uid"}},
		{{10, ""}, {10, ""}, {0, "max_marks_per_uid"}},
		{{10, ""}, {0, "max_marks_unprivileged"}, {0, "max_marks_unprivileged"}},
		{{0, "max_marks_unprivileged"}, {0, "max_marks_unprivileged"}, {0, "max_marks_unprivileged"}},
	}
	var first *proc
	for u, clients := range want {
		so := spawnOpts{cred: &syscall.Credential{Uid: 60000 + uint32(u), Gid: 65534}}
		for i, w := range clients {
			p := dialClient(t, sock, "quiet=1,name=u"+strconv.Itoa(u)+"c"+strconv.Itoa(i), so)
			if first == nil {
				first = p
			}
			placed, refusal := marks(p)
			ok := placed == w.placed && (w.refusal == "" && refusal == "" ||
				w.refusal != "" && strings.HasPrefix(refusal, "add-err limit ") && strings.Contains(refusal, w.refusal))
			if !ok {
				t.Errorf("uid %d's client %d: %d marks placed, refusal %q; want %d, a limit error naming %q", 60000+u, i, placed, refusal, w.placed, w.refusal)
			}
		}
	}
	if n := d.srv.Stats(false, 0).Daemon.Marks; n > 50 {
		t.Errorf("the daemon holds %d marks of unprivileged clients, over max_marks_unprivileged 50", n)
	}
	// A mark removed gives its room back; a client gone, all of its.
	first.send("rm 1")
	if l := first.mustLine("rm-", hang); l != "rm-ok" {
		t.Fatalf("removing the first client's first mark: %q", l)
	}
	late := dialClient(t, sock, "quiet=1,name=late", spawnOpts{cred: &syscall.Credential{Uid: 60003, Gid: 65534}})
	if placed, refusal := marks(late); placed != 1 {
		t.Errorf("after one mark was removed, a client placed %d marks (refusal %q), want 1", placed, refusal)
	}
	first.send("close")
	first.mustLine("closed", hang)
	late2 := dialClient(t, sock, "quiet=1,name=late2", spawnOpts{cred: &syscall.Credential{Uid: 60003, Gid: 65534}})
	if placed, refusal := marks(late2); placed != 9 {
		t.Errorf("after a client with 9 marks left, a client of uid 60003 (holding 1 of its 20) placed %d marks (refusal %q), want 9", placed, refusal)
	}
	root := dialClient(t, sock, "quiet=1,name=root", spawnOpts{})
	if placed, refusal := marks(root); placed != 10 {
		t.Errorf("root's client placed %d marks (refusal %q), want its 10: the bounds are unprivileged users'", placed, refusal)
	}
}

// TestGoneUnprivilegedUIDsForgotten: the daemon keeps the totals of a uid's gone clients (for
// its stats) while the uid has a client, not for ever: a user with subordinate uids (up to
// 65536 each, and every user may have a range) connecting once under each would otherwise
// grow the daemon by an entry per uid, without bound over time. 300 uids each connect, say
// Hello and leave: the daemon then keeps totals for none of them.
func TestGoneUnprivilegedUIDsForgotten(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, testConfig(), sock)
	const uids = 300
	for i := range uids {
		errc := make(chan error, 1)
		go func() {
			// This thread only (the raw system call, not syscall.Setresuid, which changes
			// every thread), and never unlocked: the thread ends with the goroutine.
			runtime.LockOSThread()
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(70000+i), ^uintptr(0)); e != 0 {
				errc <- e
				return
			}
			conn, err := proto.Dial(sock)
			if err != nil {
				errc <- err
				return
			}
			defer conn.Close()
			if err := conn.WriteMsg(&proto.Hello{Req: 1, MinVersion: 1, MaxVersion: proto.MaxVersion, Name: "u"}); err != nil {
				errc <- err
				return
			}
			m, err := conn.ReadMsg()
			if _, ok := m.(*proto.Welcome); err != nil || !ok {
				errc <- fmt.Errorf("welcome: %v %v", m, err)
				return
			}
			errc <- nil
		}()
		if err := <-errc; err != nil {
			t.Fatalf("uid %d: %v", 70000+i, err)
		}
	}
	if !eventually(hang, func() bool { return d.srv.Stats(false, 0).Daemon.Clients == 0 }) {
		t.Fatalf("%d clients still connected", d.srv.Stats(false, 0).Daemon.Clients)
	}
	if n := d.srv.GoneUIDs(); n > 0 {
		t.Errorf("after %d uids' clients came and went, the daemon keeps totals for %d uids, want none", uids, n)
	}
}

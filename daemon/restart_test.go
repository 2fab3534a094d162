//go:build linux

package daemon_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// events asks a client helper how many events it has received.
func events(t *testing.T, p *proc) (events, resyncs int64) {
	t.Helper()
	p.send("count")
	l := p.mustLine("count ", hang)
	fmt.Sscanf(l, "count events=%d resyncs=%d", &events, &resyncs)
	return events, resyncs
}

// loadProgress returns the load helper's op count so far and its slowest op (including the
// one in progress).
func loadProgress(p *proc) (count int64, slowest time.Duration) {
	for _, l := range p.allLines("lat ") {
		var c, m, cur int64
		fmt.Sscanf(l, "lat count=%d max=%d cur=%d", &c, &m, &cur)
		count = max(count, c)
		slowest = max(slowest, time.Duration(m), time.Duration(cur))
	}
	return count, slowest
}

// TestRestartUnderLoad: the daemon is stopped and started again (twice) while a process opens
// and creates files in a directory that a permission client (allow-all, 5 s deadline) and
// notification clients mark — two helper processes and one client in this process, all of the
// client package with Reconnect. No open stays blocked (none waits anywhere near the
// deadline, which would mean an event was left unanswered), each client gets a Resync event
// after each restart, and its events keep coming.
func TestRestartUnderLoad(t *testing.T) {
	testenv.RequireRoot(t)
	dir, file, sock := loadFiles(t)
	d := startDaemon(t, testConfig(), sock)

	perm := dialClient(t, sock, "class=content,deadline=5s,reconnect=1,auto=allow,quiet=1,name=perm", spawnOpts{})
	mustAdd(t, perm, kindInode, maskOpenPerm, dir)
	notif := dialClient(t, sock, "reconnect=1,quiet=1,name=notif", spawnOpts{})
	mustAdd(t, notif, kindInode, maskOpenChild, dir)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	local, err := client.Dial(ctx, client.Options{Socket: sock, Name: "local", Reconnect: true, Buffer: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if _, err := local.AddMark(ctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Create | engine.Delete | engine.EventOnChild}); err != nil {
		t.Fatal(err)
	}
	var localEvents, localResyncs atomic.Int64
	go func() {
		for ev := range local.Events() {
			if ev.Resync {
				localResyncs.Add(1)
			} else if !ev.Overflow {
				localEvents.Add(1)
			}
		}
	}()

	load := spawn(t, "load", spawnOpts{env: []string{"FSND_PATH=" + file}})
	flowing := func(what string) {
		t.Helper()
		pe, _ := events(t, perm)
		ne, _ := events(t, notif)
		le := localEvents.Load()
		lc, _ := loadProgress(load)
		if !eventually(hang, func() bool {
			pe2, _ := events(t, perm)
			ne2, _ := events(t, notif)
			lc2, _ := loadProgress(load)
			return pe2 > pe+20 && ne2 > ne+20 && localEvents.Load() > le+2 && lc2 > lc+20
		}) {
			pe2, _ := events(t, perm)
			ne2, _ := events(t, notif)
			lc2, _ := loadProgress(load)
			t.Fatalf("%s: events do not flow: permission client %d → %d, notification client %d → %d, local client %d → %d, load %d → %d",
				what, pe, pe2, ne, ne2, le, localEvents.Load(), lc, lc2)
		}
	}
	flowing("before the restarts")

	for round := 1; round <= 2; round++ {
		stopped := time.Now()
		d.stop()
		// Without a daemon the load goes on (the kernel answered what was pending).
		lc, _ := loadProgress(load)
		if !eventually(hang, func() bool { c, _ := loadProgress(load); return c > lc+20 }) {
			t.Fatalf("round %d: the load is stuck after the daemon stopped%s", round, load.tail())
		}
		d = startDaemon(t, testConfig(), sock)
		perm.mustLine("resync", hang)
		notif.mustLine("resync", hang)
		if !eventually(hang, func() bool { return localResyncs.Load() == int64(round) }) {
			t.Fatalf("round %d: the in-process client got %d resync events, want %d", round, localResyncs.Load(), round)
		}
		t.Logf("round %d: all three clients resynced %v after the daemon stopped", round, time.Since(stopped).Round(time.Millisecond))
		flowing(fmt.Sprintf("after restart %d", round))
		if st := d.srv.Stats(false, 0).Daemon; st.Clients != 3 || st.Marks < 1 {
			t.Errorf("round %d: the new daemon has %d clients and %d marks, want 3 clients and their marks", round, st.Clients, st.Marks)
		}
	}
	count, slowest := loadProgress(load)
	t.Logf("load: %d opens and creates, the slowest took %v", count, slowest.Round(time.Microsecond))
	if slowest >= time.Second {
		t.Errorf("an open of the load took %v: a permission event was left unanswered (the client's deadline is 5 s)", slowest)
	}
}

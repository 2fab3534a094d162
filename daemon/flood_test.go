//go:build linux

package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// floodHelper is a hostile local user: it opens FSND_RAW connections that never say Hello
// and FSND_HELLO clients that say Hello and then sit idle, FSND_CONC at a time, and keeps
// them; it prints "first-refusal CODE MESSAGE" for the first Fatal, and "filled raw=N
// welcome=N refused=N dial-err=N codes=CODE:N,...". Then
// FSND_CHURN goroutines connect, say Hello and hang up in a loop, printing "churn ok=N
// refused=N err=N" every 500 ms, until stdin closes; then it closes everything and prints
// "flood-done".
func floodHelper() int {
	sock := os.Getenv("FSND_SOCKET")
	nraw, _ := strconv.Atoi(os.Getenv("FSND_RAW"))
	nhello, _ := strconv.Atoi(os.Getenv("FSND_HELLO"))
	nchurn, _ := strconv.Atoi(os.Getenv("FSND_CHURN"))
	conc, _ := strconv.Atoi(os.Getenv("FSND_CONC"))
	if conc <= 0 {
		conc = 32
	}
	dial := func() (*net.UnixConn, error) {
		for tries := 0; ; tries++ {
			c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
			if errors.Is(err, syscall.EAGAIN) && tries < 5000 { // the backlog is full: it drains
				time.Sleep(time.Millisecond)
				continue
			}
			return c, err
		}
	}
	var codeMu sync.Mutex
	codes := map[string]int{}
	// hello says Hello on a new connection and reads the daemon's answer.
	hello := func(uc *net.UnixConn) (*proto.Conn, bool, error) {
		conn := proto.NewConn(uc, proto.ClientSide)
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		werr := conn.WriteMsg(&proto.Hello{Req: 1, MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Name: "flood"})
		m, err := conn.ReadMsg() // a refusal at accept may come before the Hello is written
		if _, fatal := m.(*proto.Fatal); err != nil || (werr != nil && !fatal) {
			conn.Close()
			return nil, false, errors.Join(werr, err)
		}
		if f, ok := m.(*proto.Fatal); ok {
			codeMu.Lock()
			if len(codes) == 0 {
				say("first-refusal %s %s", f.Code, f.Message)
			}
			codes[f.Code.String()]++
			codeMu.Unlock()
			conn.Close()
			return nil, false, nil
		}
		conn.SetDeadline(time.Time{})
		return conn, true, nil
	}

	var keepMu sync.Mutex
	var keep []io.Closer // referenced, so that no finalizer closes them
	var raw, welcome, refused, dialErr atomic.Int64
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	total := nraw + nhello
	for i := 0; i < total; i++ {
		isRaw := (i*nraw)/total != ((i+1)*nraw)/total // interleaved
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			uc, err := dial()
			if err != nil {
				dialErr.Add(1)
				return
			}
			if isRaw {
				raw.Add(1)
				keepMu.Lock()
				keep = append(keep, uc)
				keepMu.Unlock()
				return
			}
			conn, ok, err := hello(uc)
			switch {
			case err != nil:
				dialErr.Add(1)
			case !ok:
				refused.Add(1)
			default:
				welcome.Add(1)
				keepMu.Lock()
				keep = append(keep, conn)
				keepMu.Unlock()
			}
		}()
	}
	wg.Wait()
	codeMu.Lock()
	var cs []string
	for c, n := range codes {
		cs = append(cs, fmt.Sprintf("%s:%d", c, n))
	}
	codeMu.Unlock()
	sort.Strings(cs)
	say("filled raw=%d welcome=%d refused=%d dial-err=%d codes=%s", raw.Load(), welcome.Load(), refused.Load(), dialErr.Load(), strings.Join(cs, ","))

	stop := make(chan struct{})
	var ok, no, bad atomic.Int64
	for range nchurn {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				uc, err := dial()
				if err != nil {
					bad.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				conn, welcomed, err := hello(uc)
				switch {
				case err != nil:
					bad.Add(1)
				case welcomed:
					ok.Add(1)
					conn.Close()
				default:
					no.Add(1)
				}
			}
		}()
	}
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				say("churn ok=%d refused=%d err=%d", ok.Load(), no.Load(), bad.Load())
			}
		}
	}()
	io.Copy(io.Discard, os.Stdin)
	close(stop)
	wg.Wait()
	keepMu.Lock()
	for _, c := range keep {
		c.Close()
	}
	keepMu.Unlock()
	say("flood-done")
	return 0
}

// openerHelper opens FSND_PATH every 20 ms until stdin closes, printing "open ERRNO NS" for
// each (the errno, 0 for success, and how long open() took).
func openerHelper() int {
	path := os.Getenv("FSND_PATH")
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		start := monoNow()
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		took := monoNow() - start
		errno := 0
		if err != nil {
			var e syscall.Errno
			errors.As(err, &e)
			errno = int(e)
		} else {
			syscall.Close(fd)
		}
		say("open %d %d", errno, took)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostileFloodKeepsProtection: unprivileged processes (uid 65534) open thousands of
// connections to the daemon — idle ones that never say Hello, clients that say Hello and sit
// idle, and a churn of connect-Hello-hang-up — while a root guard client of the same daemon
// denies a file. Throughout, every open of that file fails with EPERM (the guard's answer:
// its deadline verdict is allow), root's stats and a new root guard client connect at once
// (the reserve), and the unprivileged hold at most their share; afterwards the daemon still
// serves and its descriptors are back to their count before the flood. Once with the default
// limits (max_clients_per_uid binds), once with no per-uid limit (the reserve binds).
func TestHostileFloodKeepsProtection(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name   string
		change func(*daemon.Config)
		// the limit the flood meets, and what the unprivileged may hold
		refused string
		hold    func(daemon.Config) int
	}{
		{"defaults", func(*daemon.Config) {}, "UID", func(c daemon.Config) int { return c.MaxClientsPerUID }},
		{"no per-uid limit", func(c *daemon.Config) { c.MaxClientsPerUID = 1 << 20 }, "Share",
			func(c daemon.Config) int { return c.MaxClients - c.ReservedClients }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := daemon.DefaultConfig()
			tc.change(&cfg)
			testFlood(t, cfg, tc.refused, tc.hold(cfg))
		})
	}
}

func testFlood(t *testing.T, cfg daemon.Config, refusedBy string, maxHeld int) {
	scratch := testenv.Tmpfs(t)
	file := filepath.Join(scratch, "secret")
	if err := os.WriteFile(file, []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, cfg, sock)
	guard := dialClient(t, sock, "class=content,deadline=5s,dverdict=allow,auto=deny,quiet=1", spawnOpts{})
	mustAdd(t, guard, kindInode, maskOpenPerm, scratch)
	opener := spawn(t, "opener", spawnOpts{env: []string{"FSND_PATH=" + file}})
	if l := opener.mustLine("open ", hang); field(l, 1) != strconv.Itoa(int(syscall.EPERM)) {
		t.Fatalf("before the flood: %q, want EPERM", l)
	}
	time.Sleep(100 * time.Millisecond) // settle the daemon's goroutines and descriptors
	baseFDs, baseConns := testenv.OpenFDs(t), d.srv.ConnStats().Conns
	before := len(opener.allLines("open "))

	var floods []*proc
	for range 2 {
		floods = append(floods, spawn(t, "flood", spawnOpts{cred: nobody.cred, env: []string{
			"FSND_SOCKET=" + sock, "FSND_RAW=3000", "FSND_HELLO=1200", "FSND_CHURN=4"}}))
	}
	for _, f := range floods {
		t.Logf("flood helper %d: %s", f.pid(), f.mustLine("filled ", 3*hang))
	}
	peakFDs, peakUnpriv := testenv.OpenFDs(t), d.srv.ConnStats().Unprivileged

	// Root still gets in at once: stats, and a new guard client.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	c, err := client.Dial(ctx, client.Options{Socket: sock, Name: "root-stats"})
	if err != nil {
		t.Fatalf("root's stats client during the flood: %v", err)
	}
	st, err := c.Stats(ctx, true)
	c.Close()
	if err != nil {
		t.Fatalf("root's stats during the flood: %v", err)
	}
	t.Logf("root's stats during the flood took %v: %d clients", time.Since(t0), st.Daemon.Clients)
	guard2 := dialClient(t, sock, "class=content,deadline=5s,auto=deny,quiet=1", spawnOpts{})
	time.Sleep(4 * time.Second) // the flood goes on: idle handshakes are reaped, churn refills
	for _, f := range floods {
		if l, ok := f.waitLine("churn ", hang); ok {
			t.Logf("flood helper %d: %s", f.pid(), l)
		}
	}
	if u := d.srv.ConnStats().Unprivileged; u > maxHeld {
		t.Errorf("the unprivileged hold %d connections, more than %d", u, maxHeld)
	}
	peakFDs, peakUnpriv = max(peakFDs, testenv.OpenFDs(t)), max(peakUnpriv, d.srv.ConnStats().Unprivileged)

	// Every open during the flood was denied by the guard's answer.
	during := opener.allLines("open ")[before:]
	var slowest time.Duration
	for _, l := range during {
		if field(l, 1) != strconv.Itoa(int(syscall.EPERM)) {
			t.Errorf("an open during the flood: %q, want EPERM", l)
		}
		slowest = max(slowest, time.Duration(fieldInt(t, l, 2)))
	}
	if len(during) < 20 {
		t.Errorf("only %d opens during the flood", len(during))
	}
	t.Logf("%d opens during the flood, all denied, the slowest in %v", len(during), slowest)

	for _, f := range floods {
		f.kill()
	}
	guard2.kill()
	cs := d.srv.ConnStats()
	t.Logf("connections: %+v; peak: %d unprivileged, %d descriptors (baseline %d)", cs, peakUnpriv, peakFDs, baseFDs)
	refused := map[string]uint64{"UID": cs.RefusedUID, "Share": cs.RefusedShare}[refusedBy]
	if refused == 0 || cs.ReapedHandshake == 0 {
		t.Errorf("refused by %s: %d, reaped handshakes %d: want both > 0", refusedBy, refused, cs.ReapedHandshake)
	}
	if !eventually(hang, func() bool { return d.srv.ConnStats().Conns == baseConns && testenv.OpenFDs(t) <= baseFDs }) {
		t.Errorf("after the flood: %d connections (baseline %d), %d descriptors (baseline %d)",
			d.srv.ConnStats().Conns, baseConns, testenv.OpenFDs(t), baseFDs)
	}
	if ended, err := d.Ended(); ended {
		t.Fatalf("the daemon stopped during the flood: %v", err)
	}
	n := len(opener.allLines("open "))
	if !eventually(hang, func() bool { return len(opener.allLines("open ")) > n }) {
		t.Fatal("no open after the flood")
	}
	if l := opener.allLines("open ")[n]; field(l, 1) != strconv.Itoa(int(syscall.EPERM)) {
		t.Errorf("an open after the flood: %q, want EPERM", l)
	}
}

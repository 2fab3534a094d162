//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// How operators run fsnotifyd (docs/daemon.md, "Running it under systemd"): signals, sd_notify,
// the metrics endpoint.

// serveBg runs `fsnotifyd serve` with extra flags (logging at info to b) on a private socket
// and waits until it answers.
func serveBg(t *testing.T, env []string, extra ...string) (string, *bg) {
	t.Helper()
	return serveBgIn(t, testenv.PublicDir(t), nil, env, extra...)
}

// serveBgIn is serveBg with the socket in dir and the command run by prefix (setpriv ...).
func serveBgIn(t *testing.T, dir string, prefix, env []string, extra ...string) (string, *bg) {
	t.Helper()
	testenv.RequireRoot(t)
	sock := filepath.Join(dir, "d.sock")
	argv := append(append(prefix, bin, "serve", "--socket", sock, "--log-level", "info"), extra...)
	b := &bg{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b, b
	b.cmd.Env = append(os.Environ(), env...)
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() { b.cmd.Process.Kill(); <-b.done })
	for i := 0; exec.Command(bin, "stats", "--socket", sock).Run() != nil; i++ {
		if i == 200 {
			t.Fatalf("serve does not answer: %s", b.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return sock, b
}

// TestServeSIGHUPKeepsServing: `systemctl reload`, `kill -HUP` from a logrotate script, or a
// closed terminal sends the daemon SIGHUP. Before, Go's default action killed it (exit 129):
// every guard through it lost its marks and the kernel allowed what they denied. Now it
// logs that it reloads nothing and serves on; a guard through it still denies.
func TestServeSIGHUPKeepsServing(t *testing.T) {
	sock, b := serveBg(t, nil)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/secret.key", []byte("s\n"), 0o644)
	start(t, "guard", "--daemon="+sock, "--deny", "/**/*.key", dir)
	for range 2 {
		if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if !b.stillBlocked(300 * time.Millisecond) {
			t.Fatalf("serve ended on SIGHUP: %v; log:\n%s", b.err, b.output())
		}
	}
	if out, err := exec.Command("cat", dir+"/secret.key").CombinedOutput(); !isEPERM(err, string(out)) {
		t.Errorf("cat of a denied file after the daemon's SIGHUP: %v %s", err, out)
	}
	if err := exec.Command(bin, "stats", "--socket", sock).Run(); err != nil {
		t.Errorf("stats after SIGHUP: %v", err)
	}
	if !strings.Contains(b.output(), "SIGHUP") {
		t.Errorf("the log does not say what SIGHUP did:\n%s", b.output())
	}
}

// TestServeStopsOnSIGTERMTwice: SIGTERM (systemctl stop) and a second one while the daemon
// closes its clients: it exits 0, once, and removes its socket.
func TestServeStopsOnSIGTERMTwice(t *testing.T) {
	sock, b := serveBg(t, nil)
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.cmd.Process.Signal(syscall.SIGTERM)
	err, out := b.finish(t, 20*time.Second)
	if err != nil {
		t.Fatalf("serve after two SIGTERMs: %v, want exit 0; log:\n%s", err, out)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket is left after the stop: %v", err)
	}
}

// TestServeSIGTERMAnswersEveryPending: SIGTERM while permission events wait for a guard
// through the daemon (its scanner holds each for 8s, deadline 60s, deny at the deadline):
// every waiting open is answered at once (the guard's close verdict, allow, or the kernel's
// allow as the groups close), none waits for the scanner, and the daemon exits 0.
func TestServeSIGTERMAnswersEveryPending(t *testing.T) {
	sock, b := serveBg(t, nil)
	dir := testenv.Tmpfs(t)
	const n = 20
	scannedFiles(dir, n)
	start(t, "guard", "--daemon="+sock, "--exec", slowScanner(t, "8"), "--concurrency", "64", "--deadline", "60s", "--on-timeout", "deny", dir)
	cats := waitingCats(t, dir, n)
	b.cmd.Process.Signal(syscall.SIGTERM)
	allowedAtStop(t, cats, 4*time.Second, "the daemon")
	if err, out := b.finish(t, 20*time.Second); err != nil {
		t.Errorf("serve after SIGTERM with events pending: %v\n%s", err, out)
	}
}

// scannedFiles makes n files f0... in dir, before a guard with a slow scanner starts on it.
func scannedFiles(dir string, n int) {
	for i := range n {
		os.WriteFile(dir+"/f"+strconv.Itoa(i), []byte("x"), 0o644)
	}
}

// waitingCats returns a cat of each of scannedFiles' n files once all of them wait for the
// scanner (500ms on).
func waitingCats(t *testing.T, dir string, n int) []*bg {
	t.Helper()
	var cats []*bg
	for i := range n {
		cats = append(cats, startBg(t, "cat", dir+"/f"+strconv.Itoa(i)))
	}
	time.Sleep(500 * time.Millisecond)
	for i, c := range cats {
		if !c.stillBlocked(0) {
			t.Fatalf("cat %d did not wait for the scanner: %v %s", i, c.err, c.output())
		}
	}
	return cats
}

// allowedAtStop checks that every waiting cat is allowed within d of the stop of who.
func allowedAtStop(t *testing.T, cats []*bg, d time.Duration, who string) {
	t.Helper()
	for i, c := range cats {
		if err, out := c.finish(t, d); err != nil {
			t.Errorf("waiting open %d when %s stopped: %v %s, want allowed", i, who, err, out)
		}
	}
}

// notifySocket listens where NOTIFY_SOCKET will name, as systemd does for a Type=notify unit,
// and returns the env entry and the datagrams received.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return "NOTIFY_SOCKET=" + path, ch
}

// waitNotify waits (bounded) for a datagram holding state.
func waitNotify(t *testing.T, ch <-chan string, state string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("the notify socket closed before %s", state)
			}
			for _, l := range strings.Split(m, "\n") {
				if l == state {
					return m
				}
			}
		case <-deadline:
			t.Fatalf("no %s on NOTIFY_SOCKET within %v", state, within)
		}
	}
}

// TestGuardNotifiesSystemd: the guard as a Type=notify service (contrib/fsnotifyd-guard.service)
// says READY=1 once its marks are in place — so a unit ordered after it starts guarded — and
// STOPPING=1 on SIGTERM. Before, it said nothing: systemd, waiting for READY=1, would have
// killed it at TimeoutStartSec. Run both embedded and through the daemon.
func TestGuardNotifiesSystemd(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testGuardNotifiesSystemd(t) })
	t.Run("daemon", func(t *testing.T) { testGuardNotifiesSystemd(t, "--daemon="+startServe(t)) })
}

func testGuardNotifiesSystemd(t *testing.T, extra ...string) {
	testenv.RequireRoot(t)
	env, ch := notifySocket(t)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/secret.key", []byte("s\n"), 0o644)
	args := append([]string{"guard", "-q", "--deny", "/**/*.key"}, extra...)
	b := &bg{cmd: exec.Command(bin, append(args, dir)...), done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b, b
	b.cmd.Env = append(os.Environ(), env)
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() { b.cmd.Process.Kill(); <-b.done })
	waitNotify(t, ch, "READY=1", 20*time.Second)
	if out, err := exec.Command("cat", dir+"/secret.key").CombinedOutput(); !isEPERM(err, string(out)) {
		t.Fatalf("cat of a denied file right after the guard's READY=1: %v %s", err, out)
	}
	b.cmd.Process.Signal(syscall.SIGHUP)
	m := waitNotify(t, ch, "READY=1", 10*time.Second) // after the reload
	if !strings.Contains(m, "STATUS=") {
		t.Errorf("the READY=1 after a reload says no STATUS: %q", m)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	waitNotify(t, ch, "STOPPING=1", 10*time.Second)
	if err, out := b.finish(t, 20*time.Second); err != nil {
		t.Fatalf("guard: %v\n%s", err, out)
	}
}

// TestServeMetricsAddress: --metrics must say where it listens. An address without a host
// (":9464") listens on every interface: before, it did so silently, serving the daemon-wide
// figures (activity in directories no user may read) to every network. Now it is refused
// with the flag named and the fix; so is an address that does not parse. An explicit
// 0.0.0.0 or [::] is the operator's choice and is taken.
func TestServeMetricsAddress(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct{ addr, want string }{
		{":0", "127.0.0.1:"},
		{"9464", "--metrics"},
		{"localhost", "--metrics"},
		{"127.0.0.1:http-nonsense", "--metrics"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "d.sock")
			cmd := exec.Command(bin, "serve", "--socket", sock, "--metrics", tc.addr)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(out.String(), "--metrics") || !strings.Contains(out.String(), tc.want) {
					t.Errorf("serve --metrics %s: %v %q, want a refusal naming --metrics and %q", tc.addr, err, out.String(), tc.want)
				}
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Errorf("serve --metrics %s started (listening on every interface); want a refusal", tc.addr)
			}
		})
	}
}

// TestServeMetricsBoundsConnections: whoever reaches --metrics opens connections that send
// nothing, or one request and then hold the connection open (keep-alive). Before, each idle
// keep-alive connection was held for ever, a descriptor and a goroutine each, out of the
// descriptors the daemon needs for its clients and for permission events (one the kernel
// cannot create in the daemon is denied). Now at most metricsMaxConns are accepted at once,
// and an idle one is closed after metricsIdleTimeout.
func TestServeMetricsBoundsConnections(t *testing.T) {
	addr := freeTCPAddr(t)
	_, b := serveBg(t, nil, "--metrics", addr)
	fds := func() int {
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(b.cmd.Process.Pid) + "/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	const n = 300
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(500 * time.Millisecond)
	if got := fds() - before; got > metricsMaxConns+8 {
		t.Errorf("%d connections to --metrics that send nothing: the daemon holds %d more descriptors, want at most %d", n, got, metricsMaxConns+8)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil

	// One keep-alive connection, one scrape, then silence: closed by the daemon.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(metricsIdleTimeout + 10*time.Second))
	br := bufio.NewReader(c)
	if l, err := br.ReadString('\n'); err != nil || !strings.Contains(l, "200") {
		t.Fatalf("scrape: %q %v", l, err)
	}
	t0 := time.Now()
	for {
		if _, err := br.ReadByte(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("an idle keep-alive connection to --metrics was still open after %v", time.Since(t0))
			}
			break // closed by the daemon
		}
	}
}

// unitBoundingSet is the setpriv(1) --bounding-set argument for the CapabilityBoundingSet= of
// the unit file contrib/NAME.
func unitBoundingSet(t *testing.T, name string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "contrib", name))
	if err != nil {
		t.Fatal(err)
	}
	set := "--bounding-set=-all"
	found := false
	for _, l := range strings.Split(string(src), "\n") {
		if v, ok := strings.CutPrefix(l, "CapabilityBoundingSet="); ok {
			found = true
			for _, c := range strings.Fields(v) {
				set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
			}
		}
	}
	if !found {
		t.Fatalf("contrib/%s has no CapabilityBoundingSet=", name)
	}
	return set
}

// TestGuardUnitCapabilities: the allowlisting guard with no more capabilities than
// contrib/fsnotifyd-guard.service leaves it decides exe= of another user's process (its
// /proc/PID/exe needs CAP_SYS_PTRACE; without it every such decision is an error, denied by
// --on-error: TestGuardAttributeErrorGetsOnError) and reads the files it decides by content.
func TestGuardUnitCapabilities(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	os.WriteFile(dir+"/a", []byte("x\n"), 0o600) // only root may read it: the guard must, for ftype=
	testenv.OpenToAll(t, dir)
	cat, _ := exec.LookPath("cat")
	cat, _ = filepath.EvalSymlinks(cat)
	rules := filepath.Join(t.TempDir(), "rules")
	os.WriteFile(rules, []byte("allow open "+dir+"/b exe="+cat+"\ndeny open "+dir+"/b\ndeny open "+dir+"/a ftype=text\n"), 0o644)
	os.WriteFile(dir+"/b", []byte("y\n"), 0o644)
	start(t, "setpriv", unitBoundingSet(t, "fsnotifyd-guard.service"), "--inh-caps=-all", bin, "guard", "--policy", rules, dir)
	if out, err := testenv.Sh(testenv.Nobody, cat+" "+dir+"/b"); err != nil || out != "y" {
		t.Errorf("nobody's cat of a file exe=cat allows, under the unit's capabilities: %v %q", err, out)
	}
	if out, err := testenv.Sh(testenv.Nobody, "head "+dir+"/b"); !strings.Contains(out, "Operation not permitted") {
		t.Errorf("nobody's head of a file only cat may read: %v %q", err, out)
	}
	if out, err := exec.Command("cat", dir+"/a").CombinedOutput(); !isEPERM(err, string(out)) {
		t.Errorf("root's cat of a text file ftype=text denies (the guard must read a 0600 file): %v %q", err, out)
	}
}

// TestServeUnitCapabilities: the daemon with no more capabilities than
// contrib/fsnotifyd.service leaves serves a root guard, and checks an unprivileged client's
// access with its credentials (setfsuid: CAP_SETUID, CAP_SETGID): nobody watches a directory
// of its own and gets its events, and is refused a directory it cannot read.
func TestServeUnitCapabilities(t *testing.T) {
	testenv.RequireRoot(t)
	sock, _ := serveBgIn(t, testenv.PublicDir(t), []string{"setpriv", unitBoundingSet(t, "fsnotifyd.service"), "--inh-caps=-all"}, nil)
	dir := testenv.PublicTmpfs(t)
	os.Mkdir(dir+"/g", 0o755)
	os.WriteFile(dir+"/g/secret.key", []byte("s\n"), 0o644)
	os.Mkdir(dir+"/mine", 0o755)
	os.Chown(dir+"/mine", 65534, 65534)
	os.Mkdir(dir+"/root", 0o700)
	start(t, "guard", "--daemon="+sock, "--deny", "/**/*.key", dir+"/g")
	if out, err := exec.Command("cat", dir+"/g/secret.key").CombinedOutput(); !isEPERM(err, string(out)) {
		t.Errorf("cat of a file a guard through the daemon denies: %v %q", err, out)
	}
	out, err := testenv.Sh(testenv.Nobody, "("+bin+" watch --daemon="+sock+" --timeout 3s "+dir+"/mine &) ; sleep 1; touch "+dir+"/mine/new; sleep 3")
	if err != nil || !strings.Contains(out, dir+"/mine/ CREATE new") {
		t.Errorf("nobody's watch of its own directory through the daemon: %v %q", err, out)
	}
	out, err = testenv.Sh(testenv.Nobody, bin+" watch --daemon="+sock+" --timeout 1s "+dir+"/root")
	if err == nil || !strings.Contains(out, "permission") {
		t.Errorf("nobody's watch of root's 0700 directory: %v %q, want a refusal", err, out)
	}
}

// bigDpkg makes a dpkg database in dir of one package of 300000 files (none on disk), which a
// guard takes 100ms or more to load, and returns its directory (for --dpkg-dir).
func bigDpkg(t *testing.T, dir string) string {
	t.Helper()
	dpkg := filepath.Join(dir, "dpkg")
	os.MkdirAll(filepath.Join(dpkg, "info"), 0o755)
	var md5sums, list strings.Builder
	list.WriteString("/.\n")
	for i := range 300000 {
		fmt.Fprintf(&md5sums, "%032x  usr/share/pkg/f%d\n", i, i)
		fmt.Fprintf(&list, "/usr/share/pkg/f%d\n", i)
	}
	writeFile(t, filepath.Join(dpkg, "info", "pkg.md5sums"), md5sums.String())
	writeFile(t, filepath.Join(dpkg, "info", "pkg.list"), list.String())
	writeFile(t, filepath.Join(dpkg, "status"), "Package: pkg\nStatus: install ok installed\nArchitecture: amd64\n\n")
	return dpkg
}

// TestGuardSIGHUPDuringStartKeepsGuard: `kill -HUP` from a logrotate script (or `systemctl
// reload`) that reaches the guard while it starts — loading the trust database, which with a
// large dpkg database takes a while: here a made-up one of 300000 files — must not end it.
// SIGHUP is sent every 200µs from when the guard reads the dpkg database (a descriptor of it
// open: the process is past the Go runtime's start, docs/security.md, "Fail-safe defaults")
// until "Watches established."; the guard must
// then be running and deny, and stop with exit 0. Before, its SIGHUP handler was installed only
// just before the marks, so a SIGHUP during the start killed it with the default action
// ("signal: hangup"): the unit failed, and nothing was guarded.
func TestGuardSIGHUPDuringStartKeepsGuard(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/secret.key", []byte("s\n"), 0o644)
	etc := t.TempDir()
	rules := filepath.Join(etc, "guard.rules")
	writeFile(t, rules, "deny open /**/*.key\nallow open /** trusted=yes\n") // loads the trust database
	dpkg := bigDpkg(t, etc)
	b := &bg{cmd: exec.Command(bin, "guard", "--policy", rules, "--trust-dir", etc, "--dpkg-dir", dpkg, dir), done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b, b
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() { b.cmd.Process.Kill(); <-b.done })
	t0 := time.Now()
	// From when it reads the dpkg database (a descriptor of it open): its own code runs then.
	fds := "/proc/" + strconv.Itoa(b.cmd.Process.Pid) + "/fd/"
	loading := func() bool {
		ents, _ := os.ReadDir(fds)
		for _, e := range ents {
			if l, _ := os.Readlink(fds + e.Name()); strings.HasPrefix(l, dpkg) {
				return true
			}
		}
		return false
	}
	for !loading() {
		if strings.Contains(b.output(), "Watches established.") || !b.stillBlocked(0) || time.Since(t0) > 30*time.Second {
			t.Fatalf("the guard's load of the dpkg database was not seen: too short to test (%v); output:\n%s", time.Since(t0), b.output())
		}
		time.Sleep(50 * time.Microsecond)
	}
	sent := 0
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(b.output(), "Watches established."); sent++ {
		if !b.stillBlocked(0) || time.Now().After(deadline) {
			t.Fatalf("guard after %d SIGHUPs during its start: %v (want running, then \"Watches established.\"); output:\n%s", sent, b.err, b.output())
		}
		b.cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(200 * time.Microsecond)
	}
	t.Logf("%d SIGHUPs sent during a start of %v", sent, time.Since(t0))
	if sent < 20 {
		t.Fatalf("only %d SIGHUPs during the start (%v): too short to test", sent, time.Since(t0))
	}
	if !b.stillBlocked(300 * time.Millisecond) {
		t.Fatalf("guard ended after %d SIGHUPs during its start: %v; output:\n%s", sent, b.err, b.output())
	}
	if out, err := exec.Command("cat", dir+"/secret.key").CombinedOutput(); !isEPERM(err, string(out)) {
		t.Errorf("cat of a denied file after SIGHUPs during the start: %v %s, want EPERM", err, out)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	if err, out := b.finish(t, 20*time.Second); err != nil {
		t.Fatalf("guard after SIGTERM: %v, want exit 0; output:\n%s", err, out)
	}
}

// TestGuardStopsOnSIGTERMTwice: SIGTERM (systemctl stop) while opens wait for the scanner (3s
// each, deadline 60s, deny at the deadline), and a second SIGTERM once they have been answered,
// while the guard waits for its running scanners on its way out: every waiting open is allowed
// at once (the close verdict), the guard exits 0, and its audit log holds one line for each of
// them (written at the exit); a SIGHUP then changes nothing. Before, the first SIGTERM gave the signal back its default
// action, so the second killed the stopping guard (exit -1, "signal: terminated") before it
// wrote the lines of the opens it had answered.
func TestGuardStopsOnSIGTERMTwice(t *testing.T) {
	dir := testenv.Tmpfs(t)
	const n = 5
	scannedFiles(dir, n)
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	p := start(t, "guard", "--exec", slowScanner(t, "3"), "--deadline", "60s", "--on-timeout", "deny", "--audit", audit, dir)
	cats := waitingCats(t, dir, n)
	p.cmd.Process.Signal(syscall.SIGTERM)
	allowedAtStop(t, cats, 2*time.Second, "the guard")
	p.cmd.Process.Signal(syscall.SIGTERM) // the scanners still run: the guard is on its way out
	p.cmd.Process.Signal(syscall.SIGHUP)  // and a logrotate's kill -HUP
	p.exited(t, 20*time.Second, "the guard did not exit after two SIGTERMs")
	if p.err != nil {
		t.Fatalf("guard after two SIGTERMs: %v, want exit 0; stderr:\n%s", p.err, p.errText())
	}
	lines := 0
	for _, r := range auditLines(t, audit) {
		if strings.HasPrefix(fmt.Sprint(r["path"]), dir+"/f") {
			lines++
		}
	}
	if lines != n {
		t.Errorf("%d audit lines for the %d opens answered at the stop, want one each", lines, n)
	}
}

// TestGuardStopDuringReloadKeepsNotifyPaired: SIGTERM while a SIGHUP's reload runs (loading a
// package database of 300000 files): systemd hears RELOADING=1, then that reload's READY=1,
// then STOPPING=1 — the reload's pair is not cut by the stop (a READY=1 after STOPPING=1 would
// tell systemd a stopping service is ready), and the guard exits 0. Before, STOPPING=1 was sent
// at once, and the reload's READY=1 after it.
func TestGuardStopDuringReloadKeepsNotifyPaired(t *testing.T) {
	testenv.RequireRoot(t)
	env, ch := notifySocket(t)
	dir := testenv.Tmpfs(t)
	etc := t.TempDir()
	rules := filepath.Join(etc, "guard.rules")
	writeFile(t, rules, "deny open /**/*.key\nallow open "+dir+"/** trusted=yes\n")
	b := &bg{cmd: exec.Command(bin, "guard", "-q", "--policy", rules, "--trust-dir", etc, "--dpkg-dir", bigDpkg(t, etc), "--reload-interval", "0", dir), done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b, b
	b.cmd.Env = append(os.Environ(), env)
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() { b.cmd.Process.Kill(); <-b.done })
	waitNotify(t, ch, "READY=1", 20*time.Second)
	b.cmd.Process.Signal(syscall.SIGHUP)
	waitNotify(t, ch, "RELOADING=1", 10*time.Second)
	b.cmd.Process.Signal(syscall.SIGTERM) // the reload loads the package database
	var seq []string
	for timeout := time.After(20 * time.Second); len(seq) < 2; {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("the notify socket closed after %v", seq)
			}
			for _, l := range strings.Split(m, "\n") {
				if l == "READY=1" || l == "STOPPING=1" || l == "RELOADING=1" {
					seq = append(seq, l)
				}
			}
		case <-timeout:
			t.Fatalf("after RELOADING=1 and SIGTERM, only %v", seq)
		}
	}
	if seq[0] != "READY=1" || seq[1] != "STOPPING=1" {
		t.Errorf("after RELOADING=1 and a SIGTERM during the reload: %v, want [READY=1 STOPPING=1]", seq)
	}
	if err, out := b.finish(t, 20*time.Second); err != nil {
		t.Fatalf("guard: %v\n%s", err, out)
	}
}

//go:build linux

package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// serveProc is a running `fsnotifyd serve`.
type serveProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (s *serveProc) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func startServe(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	s := &serveProc{cmd: exec.Command(fsnotifydBinary(t), append([]string{"serve"}, args...)...), done: make(chan struct{})}
	s.cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), env...)
	w := &lockedWriter{mu: &s.mu, w: &s.out}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	})
	return s
}

func (s *serveProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(hang):
		t.Fatalf("fsnotifyd serve did not exit; output:\n%s", s.output())
		return nil
	}
}

// notifySocket listens on a unixgram socket (a path, or an abstract name for "@...") as
// systemd does for NOTIFY_SOCKET; datagrams arrive on the returned channel.
func notifySocket(t *testing.T, addr string) <-chan string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return ch
}

func expectNotify(t *testing.T, ch <-chan string, want string, s *serveProc) string {
	t.Helper()
	select {
	case m := <-ch:
		if !strings.Contains(m, want) {
			t.Errorf("sd_notify datagram %q, want %s", m, want)
		}
		return m
	case <-time.After(hang):
		t.Fatalf("no sd_notify datagram with %s; fsnotifyd serve's output:\n%s", want, s.output())
	}
	return ""
}

// TestServeNotifiesSystemd: with NOTIFY_SOCKET set (a path, or an abstract name),
// `fsnotifyd serve` sends READY=1 once it serves, answers clients, sends STOPPING=1 on
// SIGTERM, exits 0 and removes its socket.
func TestServeNotifiesSystemd(t *testing.T) {
	testenv.RequireRoot(t)
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			dir := testenv.PublicDir(t)
			addr := filepath.Join(dir, "notify")
			if abstract {
				addr = fmt.Sprintf("@fsnotifyd-test-notify-%d", os.Getpid())
			}
			ch := notifySocket(t, addr)
			sock := filepath.Join(dir, "run", "fsnotifyd.sock") // serve makes the directory
			s := startServe(t, []string{"NOTIFY_SOCKET=" + addr}, "--socket", sock)
			m := expectNotify(t, ch, "READY=1", s)
			t.Logf("sd_notify: %q", m)
			ctx, cancel := context.WithTimeout(context.Background(), hang)
			defer cancel()
			c, err := client.Dial(ctx, client.Options{Socket: sock})
			if err != nil {
				t.Fatalf("READY=1 was sent, but: %v", err)
			}
			if _, err := c.Stats(ctx, false); err != nil {
				t.Fatal(err)
			}
			c.Close()
			s.cmd.Process.Signal(syscall.SIGTERM)
			expectNotify(t, ch, "STOPPING=1", s)
			if err := s.wait(t); err != nil {
				t.Errorf("fsnotifyd serve after SIGTERM: %v\n%s", err, s.output())
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("the socket is still there after the daemon exited: %v", err)
			}
		})
	}
}

// TestServeRefusesLiveSocket: `fsnotifyd serve` on a socket someone listens on fails and
// leaves that socket alone.
func TestServeRefusesLiveSocket(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(testenv.PublicDir(t), "s.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s := startServe(t, nil, "--socket", sock)
	err = s.wait(t)
	if err == nil {
		t.Fatalf("fsnotifyd serve started over a live socket:\n%s", s.output())
	}
	if !strings.Contains(s.output(), "another fsnotifyd is serving on "+sock) {
		t.Errorf("fsnotifyd serve: %v, output:\n%s\nwant it to say another daemon serves there", err, s.output())
	}
	t.Logf("refused: %s", strings.TrimSpace(s.output()))
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("the live socket was disturbed: %v", err)
	}
	c.Close()
}

// TestServeRemovesStaleSocket: a socket file nobody listens on (a crashed daemon's) is
// replaced.
func TestServeRemovesStaleSocket(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicDir(t)
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := net.Dial("unix", sock); err == nil {
		t.Fatal("the stale socket answers")
	}
	notify := filepath.Join(dir, "notify")
	ch := notifySocket(t, notify)
	s := startServe(t, []string{"NOTIFY_SOCKET=" + notify}, "--socket", sock)
	expectNotify(t, ch, "READY=1", s)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Socket: sock})
	if err != nil {
		t.Fatalf("fsnotifyd serve over a stale socket: %v\n%s", err, s.output())
	}
	c.Close()
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.wait(t); err != nil {
		t.Errorf("fsnotifyd serve after SIGTERM: %v\n%s", err, s.output())
	}
}

// TestAcceptErrorsAreSurvived: `fsnotifyd serve` whose descriptors run out (its open-file
// limit lowered under it, then an unprivileged flood of connections) keeps serving: accept(2)
// fails with EMFILE again and again, the daemon backs off, logs at most once a second and
// counts the errors, its root guard client keeps denying a file meanwhile (the kernel denies a
// permission event whose descriptor it cannot create), and once descriptors are back it
// accepts again. It used to exit on the first accept error, and every guard with it.
func TestAcceptErrorsAreSurvived(t *testing.T) {
	testenv.RequireRoot(t)
	scratch := testenv.Tmpfs(t)
	file := filepath.Join(scratch, "secret")
	if err := os.WriteFile(file, []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := testenv.PublicDir(t)
	sock, config := filepath.Join(dir, "d.sock"), filepath.Join(dir, "config")
	// Limits far above what the descriptors allow: nothing but the descriptors stops the flood.
	if err := os.WriteFile(config, []byte("max_clients 10000\nmax_clients_per_uid 10000\nreserved_clients 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, nil, "--socket", sock, "--config", config, "--metrics", "127.0.0.1:0")
	var metricsURL string
	if !eventually(hang, func() bool {
		m := regexp.MustCompile(`url=(http://\S+)`).FindStringSubmatch(s.output())
		if m != nil {
			metricsURL = m[1]
		}
		return m != nil
	}) {
		t.Fatalf("no metrics address in the output:\n%s", s.output())
	}
	guard := dialClient(t, sock, "class=content,deadline=5s,dverdict=allow,auto=deny,quiet=1", spawnOpts{})
	mustAdd(t, guard, kindInode, maskOpenPerm, scratch)
	opener := spawn(t, "opener", spawnOpts{env: []string{"FSND_PATH=" + file}})
	opener.mustLine("open ", hang)

	// The soft limit only: raising a hard limit needs CAP_SYS_RESOURCE, which a container may
	// lack (it raised soft to hard when it started).
	pid := strconv.Itoa(s.cmd.Process.Pid)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	setLimit := func(n uint64) {
		t.Helper()
		if out, err := exec.Command("prlimit", "--pid", pid, fmt.Sprintf("--nofile=%d:%d", n, lim.Max)).CombinedOutput(); err != nil {
			t.Fatalf("prlimit: %v %s", err, out)
		}
	}
	setLimit(200)
	t.Cleanup(func() { setLimit(lim.Max) })
	flood := spawn(t, "flood", spawnOpts{cred: nobody.cred, env: []string{
		"FSND_SOCKET=" + sock, "FSND_RAW=1000", "FSND_HELLO=0", "FSND_CHURN=2"}})
	t.Logf("flood: %s", flood.mustLine("filled ", 3*hang))
	time.Sleep(5 * time.Second) // out of descriptors, handshakes reaped, accepted again, out again...
	select {
	case <-s.done:
		t.Fatalf("fsnotifyd serve exited during the flood: %v\n%s", s.err, s.output())
	default:
	}
	flood.kill()
	setLimit(lim.Max)

	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Socket: sock, Name: "after"})
	if err != nil {
		t.Fatalf("after the flood: %v\n%s", err, s.output())
	}
	c.Close()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^fsnotifyd_accept_errors_total (\d+)`).FindSubmatch(body)
	if m == nil || string(m[1]) == "0" {
		t.Errorf("metrics: want fsnotifyd_accept_errors_total > 0:\n%s", body)
	} else {
		t.Logf("fsnotifyd_accept_errors_total %s", m[1])
	}
	out := s.output()
	logged := strings.Count(out, "accepting a connection failed; retrying")
	if logged == 0 || !strings.Contains(out, "too many open files") {
		t.Errorf("the daemon did not log its accept errors:\n%s", out)
	}
	if logged > 10 { // at most one a second, over about 6 s
		t.Errorf("%d accept-error lines in about 6 s: not rate-limited", logged)
	}
	for _, l := range opener.allLines("open ") {
		if field(l, 1) != strconv.Itoa(int(syscall.EPERM)) {
			t.Errorf("an open during the flood: %q, want EPERM", l)
		}
	}
	t.Logf("%d opens, all denied; %d accept-error lines logged", len(opener.allLines("open ")), logged)
}

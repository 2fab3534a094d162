//go:build linux

package daemon_test

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testdaemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// The test binary doubles as the helper processes of these tests (accessors blocked in open(),
// daemon clients, load generators): started with helperEnv set, it runs runHelper instead of
// the tests. Clients of the daemon run as separate processes wherever the point of a test is
// what happens across processes (a client killed, a client of another uid).
const helperEnv = "FSNOTIFYD_DAEMON_TEST_HELPER"

var publicBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role))
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	if publicBin.dir != "" {
		os.RemoveAll(publicBin.dir)
	}
	if fsnBin.dir != "" {
		os.RemoveAll(fsnBin.dir)
	}
	os.Exit(code)
}

// helperBinary returns a copy of the test binary that any uid may run (go test builds it in
// a private directory).
func helperBinary(t testing.TB) string {
	t.Helper()
	publicBin.once.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			publicBin.err = err
			return
		}
		dir, err := os.MkdirTemp("", "fsnd-daemon-test-")
		if err != nil {
			publicBin.err = err
			return
		}
		publicBin.dir = dir
		if err := os.Chmod(dir, 0o755); err != nil {
			publicBin.err = err
			return
		}
		data, err := os.ReadFile(exe)
		if err != nil {
			publicBin.err = err
			return
		}
		publicBin.path = filepath.Join(dir, "daemon.test")
		publicBin.err = os.WriteFile(publicBin.path, data, 0o755)
	})
	if publicBin.err != nil {
		t.Fatal(publicBin.err)
	}
	return publicBin.path
}

// fsnBin is the fsnotifyd command, built once for the tests that run `fsnotifyd serve` and
// `fsnotifyd stats`.
var fsnBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func fsnotifydBinary(t testing.TB) string {
	t.Helper()
	fsnBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "fsnd-bin-")
		if err != nil {
			fsnBin.err = err
			return
		}
		fsnBin.dir = dir
		os.Chmod(dir, 0o755)
		fsnBin.path = filepath.Join(dir, "fsnotifyd")
		args := []string{"build", "-o", fsnBin.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../cmd/fsnotifyd")...).CombinedOutput()
		if err != nil {
			fsnBin.err = fmt.Errorf("building fsnotifyd: %v\n%s", err, out)
		}
	})
	if fsnBin.err != nil {
		t.Fatal(fsnBin.err)
	}
	return fsnBin.path
}

// monoNow is CLOCK_MONOTONIC in nanoseconds: comparable across the processes of one boot.
func monoNow() int64 {
	return sys.MonotonicNanos()
}

// openUp makes dir's ancestors below the temporary directory searchable by every uid
// (t.TempDir makes them 0700), so that an unprivileged helper can reach a scratch mount.
func openUp(t testing.TB, dir string) {
	t.Helper()
	root := filepath.Clean(os.TempDir())
	for d := filepath.Dir(dir); strings.HasPrefix(d, root+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// testDaemon is a daemon served in this process on a socket of its own (testdaemon).
type testDaemon struct {
	*testdaemon.Daemon
	srv *daemon.Server
}

// startDaemon serves a new daemon (and backend) with cfg on sock until the test ends.
func startDaemon(t testing.TB, cfg daemon.Config, sock string) *testDaemon {
	t.Helper()
	return startDaemonMode(t, cfg, sock, false)
}

// loadFiles makes what a test that loads the daemon opens, on a tmpfs of its own: a directory
// d holding a file f ("x"); and it names a socket for the daemon in a directory every user
// reaches.
func loadFiles(t testing.TB) (dir, file, sock string) {
	t.Helper()
	dir = filepath.Join(testenv.Tmpfs(t), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file, filepath.Join(testenv.PublicDir(t), "d.sock")
}

// readModes are the two ways the daemon reads permission clients (daemon.Options.ThreadPerClient).
var readModes = []struct {
	name            string
	threadPerClient bool
}{{"inline", false}, {"thread-per-client", true}}

// startDaemonMode is startDaemon with daemon.Options.ThreadPerClient.
func startDaemonMode(t testing.TB, cfg daemon.Config, sock string, threadPerClient bool) *testDaemon {
	t.Helper()
	d := testdaemon.Start(t, daemon.Options{Config: cfg, Version: "test", ThreadPerClient: threadPerClient}, sock)
	return &testDaemon{Daemon: d, srv: d.Server}
}

// stop ends Run and closes the server; it fails the test if either takes more than 10 s.
func (d *testDaemon) stop() { d.Stop() }

func testConfig() daemon.Config {
	cfg := daemon.DefaultConfig()
	cfg.MaxDeadline = 2 * time.Minute
	return cfg
}

// proc is a helper process: its stdout lines are collected for waitLine.
type proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	lines  []string
	taken  []bool
	wake   chan struct{}
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

type spawnOpts struct {
	env  []string
	cred *syscall.Credential // nil: as the test (root)
}

// spawn starts the helper role with env; t.Cleanup SIGKILLs it (an accessor blocked in
// open() ignores SIGTERM) and waits for it.
func spawn(t testing.TB, role string, o spawnOpts) *proc {
	t.Helper()
	bin := helperBinary(t)
	p := &proc{t: t, name: role, wake: make(chan struct{}, 1), done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Dir = "/"
	p.cmd.Env = append(os.Environ(), helperEnv+"="+role)
	// The race detector sleeps 1 s at exit by default (atexit_sleep_ms): not in helpers.
	p.cmd.Env = append(p.cmd.Env, "GORACE=atexit_sleep_ms=0")
	p.cmd.Env = append(p.cmd.Env, o.env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin, err = p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.taken = append(p.taken, false)
			p.mu.Unlock()
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("helper %s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) send(format string, args ...any) {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.stdin, format+"\n", args...); err != nil {
		p.t.Fatalf("helper %s: writing a command: %v%s", p.name, err, p.tail())
	}
}

// waitLine returns the first line not taken yet that has prefix (and takes it), waiting up to
// timeout. ok is false on timeout or if the helper exited without printing one.
func (p *proc) waitLine(prefix string, timeout time.Duration) (string, bool) {
	return p.waitMatch(func(l string) bool { return strings.HasPrefix(l, prefix) }, timeout)
}

// waitMatch is waitLine for the first line that match accepts.
func (p *proc) waitMatch(match func(string) bool, timeout time.Duration) (string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	take := func() (string, bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, l := range p.lines {
			if !p.taken[i] && match(l) {
				p.taken[i] = true
				return l, true
			}
		}
		return "", false
	}
	for {
		if l, ok := take(); ok {
			return l, true
		}
		select {
		case <-p.wake:
		case <-p.done:
			return take() // lines may have arrived with the exit
		case <-deadline.C:
			return "", false
		}
	}
}

// mustLine is waitLine that fails the test on timeout.
func (p *proc) mustLine(prefix string, timeout time.Duration) string {
	p.t.Helper()
	l, ok := p.waitLine(prefix, timeout)
	if !ok {
		p.t.Fatalf("helper %s: no %q line within %v%s", p.name, prefix, timeout, p.tail())
	}
	return l
}

// count returns how many lines (taken or not) have prefix.
func (p *proc) count(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (p *proc) allLines(prefix string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// tail is the end of the helper's output, for failure messages.
func (p *proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := p.lines
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	errText := p.stderr.String()
	if len(errText) > 4000 {
		errText = errText[len(errText)-4000:]
	}
	return fmt.Sprintf("\n--- last stdout lines of %s:\n%s\n--- stderr:\n%s", p.name, strings.Join(lines, "\n"), errText)
}

// exited waits up to timeout for the helper to exit.
func (p *proc) exited(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// fields splits a line into its space-separated fields (the last one, a path or message, may
// hold spaces: use rest for it).
func field(line string, i int) string {
	f := strings.Fields(line)
	if i < len(f) {
		return f[i]
	}
	return ""
}

func fieldInt(t testing.TB, line string, i int) int64 {
	t.Helper()
	n, err := strconv.ParseInt(field(line, i), 0, 64)
	if err != nil {
		t.Fatalf("line %q: field %d: %v", line, i, err)
	}
	return n
}

// rest returns what follows the first n fields of line.
func rest(line string, n int) string {
	s := line
	for i := 0; i < n; i++ {
		s = strings.TrimLeft(s, " ")
		j := strings.IndexByte(s, ' ')
		if j < 0 {
			return ""
		}
		s = s[j+1:]
	}
	return s
}

// eventually polls cond until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	end := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

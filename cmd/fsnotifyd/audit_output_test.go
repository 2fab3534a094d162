package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// hostileNames are file names a local user may choose (any byte but / and NUL) to forge or
// split an operator's log line, to make two files one in it, or to send escape sequences to
// the terminal that shows it.
var hostileNames = []string{
	"inv\xffalid",                      // not UTF-8 ...
	"inv\xfealid",                      // ... and another that JSON's U+FFFD would make the same
	"inv\uFFFDalid",                    // ... and the U+FFFD itself
	"nl\n{\"path\":\"forged\"}",        // a newline and a forged record
	"cr\rtab\tbs\\q\"",                 // CR, tab, backslash, quote
	"esc\x1b[2J\x1b]52;c;ZXZpbA==\x07", // clear screen, OSC 52 (set the clipboard)
	"c1\u0085\u009b",                   // C1 controls (NEL, CSI)
	"ls\u2028ps\u2029",                 // JavaScript's line and paragraph separators
}

// rawControl is the index of the first control byte in b other than a newline (DEL
// included), or -1: what an operator's terminal would act on.
func rawControl(b []byte) int {
	return bytes.IndexFunc(b, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f })
}

// TestGuardAuditHostileNamesAsNobody: nobody opens files with hostile names (and runs a
// program whose name, its comm, is not UTF-8); every audit line stays one JSON object, with
// no raw control byte, whose path and comm (path_raw and comm_raw when not UTF-8, as watch
// --json writes them) read back to the exact bytes.
func TestGuardAuditHostileNamesAsNobody(t *testing.T) {
	testenv.RequireRoot(t)
	guardModes(t, testGuardAuditHostileNames)
}

func testGuardAuditHostileNames(t *testing.T, extra []string) {
	dir := testenv.PublicTmpfs(t)
	os.Chmod(dir, 0o1777)
	cat, _ := exec.LookPath("cat")
	prog := dir + "/c\xff\x1b[31m"
	if out, err := exec.Command("cp", cat, prog).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	os.Chmod(prog, 0o755)
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	p := start(t, append(append([]string{"guard"}, extra...), "--events", "open", "--audit", audit, dir)...)
	for _, name := range hostileNames {
		path := dir + "/" + name
		c := exec.Command("sh", "-c", `printf x > "$1" && "$2" "$1" >/dev/null`, "sh", path, prog)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody}
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%q as nobody: %v %s", name, err, out)
		}
	}
	want := map[string]bool{}
	for _, name := range hostileNames {
		want[dir+"/"+name] = true
	}
	comm := filepath.Base(prog) // shorter than comm's 15 bytes
	var data []byte
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		data, _ = os.ReadFile(audit)
		if bytes.Count(data, []byte("\n")) >= 2*len(hostileNames) {
			break
		}
	}
	p.stop()
	data, _ = os.ReadFile(audit)
	if i := rawControl(data); i >= 0 {
		t.Errorf("audit file holds raw control byte %#x at %d: %q", data[i], i, data[max(0, i-20):min(len(data), i+20)])
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		r, err := format.ParseJSON([]byte(l))
		if err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if want[r.Path] && r.Comm == comm {
			seen[r.Path] = true
		}
	}
	for path := range want {
		if !seen[path] {
			t.Errorf("no audit line with path %q opened by comm %q; audit:\n%s", path, comm, data)
		}
	}
}

// TestGuardAuditDiskFullIsReportedAndRecovers: the audit file's filesystem is full (any user
// with a writable directory on it can fill it). Verdicts do not wait for it; the records that
// cannot be written are counted and said on stderr at once and at exit; once there is room
// again, records are written again, each line whole. Before, the write error was ignored and
// stuck in the buffered writer: every later record was lost, silently, even after space was
// freed.
func TestGuardAuditDiskFullIsReportedAndRecovers(t *testing.T) {
	testenv.RequireRoot(t)
	logs := testenv.TmpfsSize(t, 1)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/a", []byte("x\n"), 0o644)
	os.WriteFile(dir+"/b", []byte("x\n"), 0o644)
	audit := logs + "/audit.jsonl"
	p := start(t, "guard", "--events", "open", "--audit", audit, dir)
	// Fill the filesystem: the audit file has its inode, but no page is left for its data.
	if out, err := exec.Command("sh", "-c", "cat /dev/zero > "+logs+"/filler").CombinedOutput(); err == nil {
		t.Fatalf("filling %s: %s", logs, out)
	}
	for range 50 {
		if out, err := exec.Command("cat", dir+"/a").CombinedOutput(); err != nil {
			t.Fatalf("cat %s/a while the audit file's disk is full: %v %s", dir, err, out)
		}
	}
	for end := time.Now().Add(5 * time.Second); !strings.Contains(p.errText(), "no space left on device"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("nothing on stderr says that the audit records are being lost; stderr:\n%s", p.errText())
		}
	}
	os.Remove(logs + "/filler")
	if out, err := exec.Command("cat", dir+"/b").CombinedOutput(); err != nil {
		t.Fatalf("cat %s/b: %v %s", dir, err, out)
	}
	waitAudit(t, audit, dir+"/b")
	if code := p.stop(); code != 0 {
		t.Errorf("exit status %d", code)
	}
	auditLines(t, audit) // every line whole
	if !strings.Contains(p.errText(), "audit records could not be written") {
		t.Errorf("the guard's exit does not count the records lost; stderr:\n%s", p.errText())
	}
}

// TestGuardAuditStoppedReaderDoesNotHangExit: the audit file is a FIFO (or --audit - a pipe)
// whose reader stopped reading. Verdicts do not wait for it; at SIGINT the guard exits
// within outputGrace of its last write, saying what was not written, rather than waiting
// for the reader forever (before: it hung in its audit writer until SIGKILL).
func TestGuardAuditStoppedReaderDoesNotHangExit(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/a", []byte("x\n"), 0o644)
	fifo := filepath.Join(t.TempDir(), "audit.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0) // a reader that never reads
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := start(t, "guard", "--events", "open", "--audit", fifo, dir)
	// More records than the pipe holds (64 KiB).
	start := time.Now()
	for range 2000 {
		f, err := os.Open(dir + "/a")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("2000 opens took %v with the audit reader stopped", d)
	}
	time.Sleep(200 * time.Millisecond)
	p.cmd.Process.Signal(os.Interrupt)
	p.exited(t, 10*time.Second, "the guard did not exit within 10s of SIGINT with its audit reader stopped")
	if !strings.Contains(p.errText(), "not reading") {
		t.Errorf("the guard did not say that audit records were not written; stderr:\n%s", p.errText())
	}
}

// TestGuardAuditReaderGoneKeepsGuarding: guard --audit - into a pipe whose reader exits
// (`guard --audit - | head`, a log shipper restarted). The writes fail with EPIPE, counted and
// said on stderr; the guard keeps guarding. Before, the write on stdout raised SIGPIPE, which
// killed the guard, and the kernel then allowed every access: the denied file could be read.
func TestGuardAuditReaderGoneKeepsGuarding(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/secret.key", []byte("s\n"), 0o644)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := startBgTo(t, pw, nil, bin, "guard", "--deny", "/**/*.key", "--audit", "-", dir)
	for end := time.Now().Add(30 * time.Second); !strings.Contains(b.output(), "Watches established."); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("guard not ready: %s", b.output())
		}
	}
	pr.Close() // the reader goes away
	for i := range 20 {
		out, err := exec.Command("cat", dir+"/secret.key").CombinedOutput()
		if !isEPERM(err, string(out)) {
			t.Fatalf("cat %d of a denied file after the audit reader went away: %v %q; guard: %v\n%s", i, err, out, b.cmd.ProcessState, b.output())
		}
	}
	if !b.stillBlocked(200 * time.Millisecond) {
		t.Fatalf("the guard ended when its audit reader went away: %v\n%s", b.err, b.output())
	}
	b.cmd.Process.Signal(os.Interrupt)
	if err, out := b.finish(t, 10*time.Second); err != nil || !strings.Contains(out, "broken pipe") || !strings.Contains(out, "audit records could not be written") {
		t.Errorf("guard exit %v; stderr does not say the audit records were lost to a broken pipe:\n%s", err, out)
	}
}

// hostileClientName is a daemon client's name (any UTF-8 without NUL, the protocol's
// MaxName): a newline and tabs that forge a row of `stats`'s table, and escape sequences
// (clear screen, OSC 52 to set the clipboard) for the terminal that shows it.
const hostileClientName = "x\x1b[2J\x1b]52;c;ZXZpbA==\x07\n1\tfsnotifyd-guard\t1\t0\tprivileged"

// TestStatsHostileClientNameChild is TestStatsEscapesClientNamesAsNobody's client, as nobody.
func TestStatsHostileClientNameChild(t *testing.T) {
	if !testenv.IsChild() {
		t.Skip("run by TestStatsEscapesClientNamesAsNobody")
	}
	c, err := client.Dial(context.Background(), client.Options{Socket: os.Getenv("FSN_TEST_SOCKET"), Name: hostileClientName})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(3 * time.Second)
}

// TestStatsEscapesClientNamesAsNobody: nobody connects to the daemon under a name with a
// newline, tabs and escape sequences; root's `fsnotifyd stats` prints it escaped, as trace
// prints names: no raw control byte reaches the terminal, and the table keeps one row a
// client. Before, the name was printed as it came.
func TestStatsEscapesClientNamesAsNobody(t *testing.T) {
	testenv.RequireRoot(t)
	sock := startServeIn(t, testenv.PublicDir(t))
	os.Setenv("FSN_TEST_SOCKET", sock)
	defer os.Unsetenv("FSN_TEST_SOCKET")
	childDone := make(chan string, 1)
	go func() {
		out, err := testenv.RunTestAs(t, 65534, 65534, "TestStatsHostileClientNameChild")
		childDone <- fmt.Sprint(err, out)
	}()
	escaped := string(format.AppendEscaped(nil, hostileClientName))
	var out []byte
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		out, err = exec.Command(bin, "stats", "--socket", sock).CombinedOutput()
		if err != nil {
			t.Fatalf("stats: %v %s", err, out)
		}
		if bytes.Contains(out, []byte("x\x1b")) || bytes.Contains(out, []byte(escaped)) {
			break
		}
		select {
		case c := <-childDone:
			t.Fatalf("the client as nobody ended before stats showed it: %s", c)
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("stats never showed nobody's client:\n%s", out)
		}
	}
	if i := rawControl(out); i >= 0 {
		t.Fatalf("stats printed raw control byte %#x at %d: %q", out[i], i, out)
	}
	if !bytes.Contains(out, []byte(escaped)) {
		t.Errorf("stats does not print the name escaped (%s):\n%s", escaped, out)
	}
	<-childDone
}

// TestPolicyExplainHostileNamesAsNobody: root asks `policy explain` about nobody's script,
// read by nobody's process. Nobody chose the script's name and its "#!" line (its ftype),
// and the process's executable's name: each with escape sequences and a newline. The
// explanation prints them escaped, as trace prints names: no raw control byte reaches root's
// terminal. Before, the path, the ftype and the executable were printed as they came.
func TestPolicyExplainHostileNamesAsNobody(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	os.Chmod(dir, 0o1777)
	const evil = "\x1b[2J\x1b]52;c;ZXZpbA==\x07\nforged"
	sleep, _ := exec.LookPath("sleep")
	sleep, _ = filepath.EvalSymlinks(sleep)
	script, prog := dir+"/s"+evil, dir+"/p"+evil
	c := exec.Command("sh", "-c", `printf '#!/bin/'"$3"'\n' > "$1" && cp "$2" "$4" && exec "$4" 30`, "sh", script, sleep, evil, prog)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.Process.Pid)); exe == prog {
			break
		}
		if time.Now().After(end) {
			t.Fatal("nobody's program did not start")
		}
	}
	rules := filepath.Join(t.TempDir(), "rules")
	os.WriteFile(rules, []byte("deny open /** ftype=script:sh\ndeny open /** exe=/usr/bin/x\nallow open /** ancestor=/usr/bin/x\n"), 0o644)
	out, _ := exec.Command(bin, "policy", "explain", rules, "--path", script, "--pid", strconv.Itoa(c.Process.Pid)).CombinedOutput()
	if !bytes.Contains(out, []byte(`s\x1b[2J`)) || !bytes.Contains(out, []byte(`script:\x1b[2J`)) || !bytes.Contains(out, []byte(`p\x1b[2J`)) {
		t.Errorf("the explanation does not show the path, ftype and executable escaped:\n%q", out)
	}
	if i := rawControl(out); i >= 0 {
		t.Fatalf("policy explain printed raw control byte %#x at %d: %q", out[i], i, out)
	}
	if n := bytes.Count(out, []byte("forged")); bytes.Contains(out, []byte("\nforged")) {
		t.Errorf("a name's newline began a line of the explanation (%d times): %q", n, out)
	}
}

// startServeLogging starts the daemon at info level on a socket every user can reach, its
// stderr to the file given (nil: the bg's output), and waits until it answers.
func startServeLogging(t *testing.T, stderr *os.File) (string, *bg) {
	t.Helper()
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	b := startBgTo(t, nil, stderr, bin, "serve", "--socket", sock, "--log-level", "info")
	for i := 0; exec.Command(bin, "stats", "--socket", sock).Run() != nil; i++ {
		if i == 200 {
			t.Fatalf("serve does not answer: %s", b.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return sock, b
}

// TestServeLogReaderGoneKeepsServing: `fsnotifyd serve 2>&1 | logger`, and the logger exits.
// Any user can make the daemon log (a client connecting logs at info). Before, the log's write
// on stderr raised SIGPIPE, which killed the daemon: every guard through it lost its marks,
// and the kernel allowed what they denied. Now the write fails and the daemon serves on.
func TestServeLogReaderGoneKeepsServing(t *testing.T) {
	testenv.RequireRoot(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	sock, b := startServeLogging(t, pw)
	pr.Close() // the log's reader goes away
	for i := range 5 {
		if out, err := testenv.Sh(testenv.Nobody, bin+" stats --socket "+sock); err != nil {
			t.Fatalf("stats %d as nobody after the log's reader went away: %v %s; serve: %v", i, err, out, b.cmd.ProcessState)
		}
	}
	if !b.stillBlocked(200 * time.Millisecond) {
		t.Fatalf("the daemon ended when its log's reader went away: %v", b.err)
	}
}

// TestServeLogReaderStoppedKeepsServing: the daemon's log reader stops reading (a stopped
// `serve 2>&1 | less`, a wedged shipper) and nobody connects again and again, each connection
// logged, until the pipe is full. Guards through the daemon must still get their decisions,
// and clients still connect: the log must not wedge the daemon.
func TestServeLogReaderStoppedKeepsServing(t *testing.T) {
	testenv.RequireRoot(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close() // a reader that never reads
	sock, _ := startServeLogging(t, pw)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/secret.key", []byte("s\n"), 0o644)
	start(t, "guard", "--daemon="+sock, "--deny", "/**/*.key", "--deadline", "2s", "--on-timeout", "allow", dir)
	out, err := testenv.Sh(testenv.Nobody, "i=0; while [ $i -lt 400 ]; do "+bin+" stats --socket "+sock+" >/dev/null || exit 1; i=$((i+1)); done")
	if err != nil {
		t.Errorf("nobody's connections with the daemon's log full: %v %s", err, out)
	}
	done := make(chan []byte, 1)
	go func() {
		out, _ := exec.Command("cat", dir+"/secret.key").CombinedOutput()
		done <- out
	}()
	select {
	case out := <-done:
		if !strings.Contains(string(out), "Operation not permitted") {
			t.Errorf("cat of a denied file with the daemon's log full: %q", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cat of a guarded file waited 10s: the daemon is wedged on its log")
	}
}

// gateWriter blocks every Write until open is closed.
type gateWriter struct {
	open chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

// TestLogWriterNeverBlocksAndCountsDrops: with its writer blocked, logging returns at once;
// what did not fit the queue is dropped, and once the writer writes again, the count of the
// lines dropped is logged, so that lines + dropped = lines logged.
func TestLogWriterNeverBlocksAndCountsDrops(t *testing.T) {
	g := &gateWriter{open: make(chan struct{})}
	lw := newLogWriter(g)
	log := slog.New(slog.NewTextHandler(lw, nil))
	lw.dropped = func(n uint64) { log.Warn("log lines were dropped", "dropped", n) }
	const lines = 3 * logQueue
	start := time.Now()
	for i := range lines {
		log.Info("line", "i", i)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("%d lines took %v with the writer blocked", lines, d)
	}
	close(g.open)
	lw.close()
	g.mu.Lock()
	out := g.buf.String()
	g.mu.Unlock()
	written := strings.Count(out, "msg=line ")
	var dropped int
	for _, l := range strings.Split(out, "\n") {
		if _, n, ok := strings.Cut(l, "dropped="); ok && strings.Contains(l, "were dropped") {
			k, _ := strconv.Atoi(n)
			dropped += k
		}
	}
	if written+dropped != lines || dropped == 0 {
		t.Errorf("%d lines written and %d counted as dropped, want %d in all (some dropped)", written, dropped, lines)
	}
}

// openPty opens a pseudo-terminal: the master (the test reads what is printed) and the slave
// (a command's stdout, a terminal).
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skip("no pseudo-terminals:", err)
	}
	t.Cleanup(func() { m.Close() })
	rc, _ := m.SyscallConn()
	var n int
	var cerr error
	rc.Control(func(fd uintptr) {
		n, cerr = sys.UnlockPty(int(fd))
	})
	if cerr != nil {
		t.Fatal(cerr)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestWatchEscapesNamesToATerminalAsNobody: root runs `watch` on a terminal over a directory
// where nobody creates files named with escape sequences (clear screen, OSC 52 to set the
// clipboard, a title), a CR and a newline. On a terminal the names are printed escaped, as
// trace escapes them (GNU ls quotes names on a terminal): none reaches the terminal raw.
// Before, they did: nobody could clear root's screen, set its clipboard, or forge lines.
// To a pipe or a file, names stay their bytes, as inotifywait prints them.
func TestWatchEscapesNamesToATerminalAsNobody(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	os.Chmod(dir, 0o1777)
	master, slave := openPty(t)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"default format", nil},
		{"--format", []string{"--format", "%w%f %e %c"}},
		{"-c", []string{"-c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &bg{cmd: exec.Command(bin, append(append([]string{"watch", "-m", "-e", "create"}, tt.args...), dir)...), done: make(chan struct{})}
			b.cmd.Stdout, b.cmd.Stderr = slave, b
			if err := b.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { b.err = b.cmd.Wait(); close(b.done) }()
			defer func() { b.cmd.Process.Kill(); <-b.done }()
			for end := time.Now().Add(30 * time.Second); !strings.Contains(b.output(), "Watches established."); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatalf("watch not ready: %s", b.output())
				}
			}
			name := tt.name + "\x1b[2J\x1b]52;c;ZXZpbA==\x07\x1b]0;title\x07\rcr\nforged"
			c := exec.Command("touch", dir+"/"+name)
			c.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody}
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatal(err, string(out))
			}
			var got []byte
			buf := make([]byte, 4096)
			for !bytes.Contains(got, []byte("forged")) {
				master.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := master.Read(buf)
				if err != nil {
					t.Fatalf("reading the terminal: %v; so far %q", err, got)
				}
				got = append(got, buf[:n]...)
			}
			// What the terminal got, but for the line ends its own ONLCR made of each "\n".
			if i := rawControl(bytes.ReplaceAll(got, []byte("\r\n"), []byte("\n"))); i >= 0 {
				t.Fatalf("watch printed a raw control byte at %d to the terminal: %q", i, got)
			}
			if !bytes.Contains(got, []byte(`\x1b[2J\x1b]52;c;ZXZpbA==\x07`)) || !bytes.Contains(got, []byte(`\rcr\nforged`)) {
				t.Errorf("the name is not printed escaped: %q", got)
			}
		})
	}
}

// TestGuardStderrStoppedKeepsOnError: the guard's stderr reader stops reading (a paused
// `guard ... 2>&1 | less`), and a user's files crash the --exec scanner, each failure a line
// on stderr, until the pipe is full. The decisions must not wait for stderr: a crash still
// gets --on-error (deny), not the deadline's --on-timeout (allow), which a handler blocked in
// its stderr write would leave to the deadline.
func TestGuardStderrStoppedKeepsOnError(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	for i := range 2000 {
		os.WriteFile(fmt.Sprintf("%s/f%d", dir, i), []byte("x\n"), 0o644) // one scan each
	}
	scanner := filepath.Join(t.TempDir(), "crash")
	os.WriteFile(scanner, []byte("#!/bin/sh\nkill -SEGV $$\n"), 0o755)
	pr := startGuardStderrUnread(t, "--exec", scanner, "--on-error", "deny", "--on-timeout", "allow", "--deadline", "2s", dir)
	// 64 KiB of failure lines, and more: eight openers at once.
	var paths []string
	for i := range 2000 {
		paths = append(paths, fmt.Sprintf("%s/f%d", dir, i))
	}
	allowed := allowedOf8(paths)
	if queued := bytesQueued(pr); queued < 60000 {
		t.Fatalf("only %d bytes wait in the guard's stderr pipe: not full, the test tests nothing", queued)
	}
	if n := allowed; n > 0 {
		t.Errorf("%d of 2000 opens whose scanner crashed were allowed (--on-timeout) with the guard's stderr full, not denied by --on-error", n)
	}
}

// TestServeLogUnprivilegedConnectionsRateLimited: nobody connects to the daemon in a loop.
// Each connection was logged at info (connected, left): a user could grow the daemon's log
// without bound, and drive journald's rate limit to drop the daemon's own messages. An
// unprivileged client's connection lines are at most one a second, with the count of those
// held back; root's are all logged.
func TestServeLogUnprivilegedConnectionsRateLimited(t *testing.T) {
	testenv.RequireRoot(t)
	sock, b := startServeLogging(t, nil)
	start := time.Now()
	if out, err := testenv.Sh(testenv.Nobody, "i=0; while [ $i -lt 200 ]; do "+bin+" stats --socket "+sock+" >/dev/null || exit 1; i=$((i+1)); done"); err != nil {
		t.Fatalf("nobody's connections: %v %s", err, out)
	}
	secs := int(time.Since(start).Seconds()) + 1
	if err := exec.Command(bin, "stats", "--socket", sock).Run(); err != nil { // root's, logged
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	logged := strings.Count(b.output(), "uid=65534")
	if logged > 3*(secs+1) {
		t.Errorf("%d log lines for nobody's 200 connections in %ds: want at most one a second of each kind", logged, secs)
	}
	if !strings.Contains(b.output(), "uid=0") {
		t.Errorf("root's connection is not logged:\n%s", b.output())
	}
}

//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fsnotifyd/fsnotifyd/internal/procfs"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// bin is the fsnotifyd binary built once for these tests.
var bin string

func TestMain(m *testing.M) {
	if testenv.IsChild() {
		os.Exit(m.Run()) // a test's unprivileged side (testenv.RunTestAs): it runs no fsnotifyd
	}
	dir, err := os.MkdirTemp("", "fsnotifyd-e2e")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // the unprivileged tests run it too
	bin = filepath.Join(dir, "fsnotifyd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput() // no -race: the binary must keep up with short-lived processes (a cat), as in real use
	if err != nil {
		fmt.Fprintf(os.Stderr, "building fsnotifyd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	// The tests that run the guard's parts in this process (its reporter, auditor, forgetter,
	// launcher) must take their goroutines with them.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running fsnotifyd subcommand.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	lines  chan string
	done   chan struct{}
	err    error
}

// start runs fsnotifyd with args and waits for "Watches established." on stderr.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	argv := append([]string{bin}, args...)
	if args[0] == "setpriv" || args[0] == "inotifywait" || args[0] == "unshare" { // fsnotifyd run by setpriv or unshare, or the peer: args is the whole command line
		argv = args
	}
	p := &proc{t: t, cmd: exec.Command(argv[0], argv[1:]...), lines: make(chan string, 10000), done: make(chan struct{})}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	outR, _ := p.cmd.StdoutPipe()
	errR, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), "Watches established.") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
	}()
	go func() {
		wg.Wait()
		p.err = p.cmd.Wait()
		close(p.lines)
		close(p.done)
		once.Do(func() { close(ready) })
	}()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("fsnotifyd %v: no \"Watches established.\"; stderr:\n%s", args, p.errText())
	}
	select {
	case <-p.done:
		t.Fatalf("fsnotifyd %v exited early (%v); stderr:\n%s", args, p.err, p.errText())
	default:
	}
	return p
}

func (p *proc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop sends SIGINT and waits; it returns the exit status.
func (p *proc) stop() int {
	p.cmd.Process.Signal(os.Interrupt)
	return p.exited(p.t, 20*time.Second, "fsnotifyd did not exit on SIGINT")
}

// exited waits up to within for fsnotifyd to exit, failing t (Fatal: with what and the
// stderr) if it does not, and returns its exit status.
func (p *proc) exited(t *testing.T, within time.Duration, what string) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s; stderr:\n%s", what, p.errText())
	}
	return exitStatus(p.err)
}

// stopOK is stop, with t failed (Errorf: the test goes on) unless fsnotifyd exited 0.
func (p *proc) stopOK(t *testing.T) {
	t.Helper()
	if st := p.stop(); st != 0 {
		t.Errorf("exit status %d; stderr:\n%s", st, p.errText())
	}
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// collect reads output lines until want says done or the timeout passes.
func (p *proc) collect(timeout time.Duration, done func([]string) bool) []string {
	var got []string
	deadline := time.After(timeout)
	for !done(got) {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return got
			}
			got = append(got, l)
		case <-deadline:
			return got
		}
	}
	return got
}

// as is the command line that runs fsnotifyd's args as who: "root" (as it is), "nobody" (uid
// and gid 65534, through setpriv: the unprivileged backends), or "daemon" (through a daemon
// started for the test).
func as(t *testing.T, who string, args []string) []string {
	switch who {
	case "nobody":
		return append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin}, args...)
	case "daemon":
		return append(args, "--daemon="+startServe(t))
	}
	return args
}

// userDir makes dir/name (and what it lacks of dir) for a test run as root, nobody or through
// the daemon (as): a directory anyone may write, mode 0777 whatever the umask. It returns
// its path.
func userDir(t *testing.T, dir, name string) string {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// mkdirs makes each of dirs, mode 0755, in order (a parent before its children).
func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// toNobody gives each of paths (not a symlink's target) to nobody, uid and gid 65534.
func toNobody(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
}

// openAllAtOnce opens every path at once, from this process (root), each open failing the
// test if it is refused (whose says whose open, for the message), and returns how long the
// slowest took.
func openAllAtOnce(t *testing.T, paths []string, whose string) time.Duration {
	type opened struct {
		path string
		took time.Duration
		err  error
	}
	res := make(chan opened, len(paths))
	for _, path := range paths {
		go func() {
			t0 := time.Now()
			f, err := os.Open(path)
			if err == nil {
				f.Close()
			}
			res <- opened{path, time.Since(t0), err}
		}()
	}
	var slowest time.Duration
	for range paths {
		o := <-res
		if o.err != nil {
			t.Errorf("root's open of %s %s: %v after %v, want it allowed", o.path, whose, o.err, o.took)
		}
		slowest = max(slowest, o.took)
	}
	return slowest
}

func sh(t *testing.T, script string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

func TestWatchRecursiveSeesEveryCreateOfMkdirP(t *testing.T) {
	dir := testenv.Tmpfs(t)
	p := start(t, "watch", "-r", "-e", "create", dir)
	for i := 0; i < 5; i++ {
		sh(t, fmt.Sprintf("mkdir -p %s/r%d/a/b/c && touch %s/r%d/a/b/c/f", dir, i, dir, i))
	}
	want := 5 * 5 // r, a, b, c, f per round
	got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= want })
	files := 0
	for _, l := range got {
		if strings.HasSuffix(l, "/a/b/c/ CREATE f") {
			files++
		}
	}
	if len(got) != want || files != 5 {
		t.Fatalf("got %d lines (%d file creates), want %d and 5:\n%s", len(got), files, want, strings.Join(got, "\n"))
	}
	if st := p.stop(); st != 0 {
		t.Fatalf("exit status %d", st)
	}
}

func TestWatchJSONAndCount(t *testing.T) {
	dir := testenv.Tmpfs(t)
	p := start(t, "watch", "--json", "-n", "2", "-e", "create,delete", dir)
	sh(t, "touch "+dir+"/one && rm "+dir+"/one && touch "+dir+"/two")
	<-p.done
	if exitStatus(p.err) != 0 {
		t.Fatalf("exit %v after -n 2; stderr: %s", p.err, p.errText())
	}
	p.mu.Lock()
	out := p.stdout.String()
	p.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("-n 2 printed %d lines:\n%s", len(lines), out)
	}
	var ev struct {
		Time   string   `json:"time"`
		Path   string   `json:"path"`
		Events []string `json:"events"`
		IsDir  bool     `json:"isdir"`
		Pid    int      `json:"pid"`
		Comm   string   `json:"comm"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	// comm may be unknown (omitted) if touch was gone before the watcher read its event;
	// it is never wrong.
	if ev.Path != dir+"/one" || len(ev.Events) != 1 || ev.Events[0] != "CREATE" || ev.Pid <= 0 ||
		(ev.Comm != "touch" && ev.Comm != "") || strings.Contains(lines[0], `"isdir":true`) {
		t.Fatalf("first event %+v from %s", ev, lines[0])
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Time); err != nil {
		t.Fatalf("time %q: %v", ev.Time, err)
	}
}

func TestWatchTimeoutAndErrors(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	out, err := exec.Command(bin, "watch", "-q", "--timeout", "300ms", dir).CombinedOutput()
	if err != nil || time.Since(start) > 20*time.Second {
		t.Fatalf("--timeout: %v, %s", err, out)
	}
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"watch"}, 2, "no PATH"},
		{[]string{"watch", "--bogus", dir}, 2, "unknown flag --bogus"},
		{[]string{"watch", "-e", "create,sneeze", dir}, 2, "sneeze"},
		{[]string{"watch", "/does/not/exist"}, 1, "/does/not/exist: no such file or directory"},
		{[]string{"trace", "-p", "abc"}, 2, "not a process id"},
		{[]string{"guard", "--on-timeout", "maybe", dir}, 2, "--on-timeout"},
		{[]string{"guard", "--deny", "[", dir}, 2, "--deny"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		out, err := exec.Command(bin, tt.args...).CombinedOutput()
		if code := exitStatus(err); code != tt.code || !strings.Contains(string(out), tt.msg) {
			t.Errorf("fsnotifyd %v: exit %d, %q; want exit %d mentioning %q", tt.args, code, out, tt.code, tt.msg)
		}
		if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n > 0 {
			t.Errorf("fsnotifyd %v: %d lines of error, want one: %q", tt.args, n+1, out)
		}
	}
	for _, c := range []string{"watch", "trace", "guard", "serve", "stats"} {
		out, err := exec.Command(bin, c, "--help").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Examples:") || !strings.Contains(string(out), "Usage: fsnotifyd "+c) {
			t.Errorf("%s --help: %v\n%s", c, err, out)
		}
	}
}

func TestTraceShowsPidAndCommandOfCat(t *testing.T) {
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/data", []byte("x"), 0o644)
	p := start(t, "trace", "--fs", dir)
	// cat reads the file, then waits on its stdin until the trace showed it: a process that
	// exits before the tracer reads its first event cannot be named (/proc forgets it), and
	// this machine runs other test packages at the same time.
	cat := exec.Command("cat", dir+"/data", "-")
	cat.Stdout = io.Discard
	stdin, _ := cat.StdinPipe()
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cat.Wait() }()
	want := fmt.Sprintf("cat(%d): ", cat.Process.Pid)
	got := p.collect(10*time.Second, func(l []string) bool {
		for _, s := range l {
			if strings.Contains(s, want) && strings.Contains(s, "O") && strings.HasSuffix(s, dir+"/data") {
				return true
			}
		}
		return false
	})
	for _, s := range got {
		if strings.Contains(s, want) && strings.HasSuffix(s, dir+"/data") {
			fields := strings.Fields(s)
			if _, err := time.Parse("15:04:05.000000", fields[0]); err != nil {
				t.Errorf("line %q does not start with a time: %v", s, err)
			}
			return
		}
	}
	t.Fatalf("no line with %q for %s/data:\n%s", want, dir, strings.Join(got, "\n"))
}

// trace --json --exe names each process's executable; without --exe there is no "exe".
func TestTraceJSONExe(t *testing.T) {
	catExe, _ := exec.LookPath("cat")
	catExe, _ = filepath.EvalSymlinks(catExe)
	for _, withExe := range []bool{true, false} {
		dir := testenv.Tmpfs(t)
		os.WriteFile(dir+"/data", []byte("x"), 0o644)
		args := []string{"trace", "--json", "--fs", dir}
		if withExe {
			args = append(args, "--exe")
		}
		p := start(t, args...)
		cat := exec.Command("cat", dir+"/data", "-") // waits on stdin: see TestTraceShowsPidAndCommandOfCat
		cat.Stdout = io.Discard
		stdin, _ := cat.StdinPipe()
		if err := cat.Start(); err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		p.collect(10*time.Second, func(l []string) bool {
			for _, s := range l {
				var r map[string]any
				if json.Unmarshal([]byte(s), &r) == nil && r["path"] == dir+"/data" && r["pid"] == float64(cat.Process.Pid) {
					rec = r
					return true
				}
			}
			return false
		})
		stdin.Close()
		cat.Wait()
		p.stop()
		if rec == nil {
			t.Fatalf("no record of cat's open (--exe %v)", withExe)
		}
		if exe, ok := rec["exe"]; ok != withExe || (withExe && exe != catExe) {
			t.Errorf("--exe %v: record %v, want exe %q only with --exe", withExe, rec, catExe)
		}
	}
	for _, args := range [][]string{{"trace", "--exe", "/"}, {"trace", "--json", "--exe", "--daemon", "/"}} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); exitStatus(err) != 2 || !strings.Contains(string(out), "--exe") {
			t.Errorf("%v: %v %s, want a usage error", args, err, out)
		}
	}
}

// startServe runs `fsnotifyd serve` (with extra flags) on a private socket and waits until it
// answers.
func startServe(t *testing.T, extra ...string) string {
	t.Helper()
	return startServeIn(t, t.TempDir(), extra...)
}

// startServeIn is startServe with the socket in dir.
func startServeIn(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	testenv.RequireRoot(t)
	sock := filepath.Join(dir, "d.sock")
	cmd := exec.Command(bin, append([]string{"serve", "--socket", sock, "--log-level", "warn"}, extra...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("serve did not exit on SIGTERM")
		}
	})
	for i := 0; ; i++ {
		if exec.Command(bin, "stats", "--socket", sock).Run() == nil {
			return sock
		}
		if i == 200 {
			t.Fatalf("serve does not answer on %s; stderr:\n%s", sock, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeMetrics scrapes `serve --metrics`: the Prometheus endpoint has the daemon's figures,
// and they follow what happens — a watching client's events, a guarding client's permission
// events and answers, clients coming and going.
func TestServeMetrics(t *testing.T) {
	addr := freeTCPAddr(t)
	sock := startServe(t, "--metrics", addr)
	dir := testenv.Tmpfs(t)
	sh(t, "mkdir -p "+dir+"/w "+dir+"/g && echo s > "+dir+"/g/secret.key && echo ok > "+dir+"/g/ok")

	m0 := scrapeMetrics(t, addr)
	for _, name := range []string{"fsnotifyd_events_total", "fsnotifyd_permission_events_total",
		"fsnotifyd_delivered_events_total", "fsnotifyd_dropped_events_total", "fsnotifyd_clients",
		"fsnotifyd_marks", "fsnotifyd_pending_permission_events", "fsnotifyd_close_answered_total",
		"fsnotifyd_verdict_latency_seconds_count", "go_goroutines", "process_open_fds"} {
		if _, ok := m0[name]; !ok {
			t.Fatalf("/metrics has no %s", name)
		}
	}
	if _, ok := m0["fsnotifyd_export_events_total"]; ok {
		t.Errorf("/metrics of a daemon without --export has the export's figures")
	}
	// startServe's readiness probe (a stats client) has gone, but the daemon may not have
	// seen its connection end yet: wait for that, not for anything else.
	m0 = waitMetrics(t, addr, "no client once the readiness probe has gone", func(m map[string]float64) bool {
		return m["fsnotifyd_clients"] == 0
	})
	if m0["fsnotifyd_clients"] != 0 || m0["fsnotifyd_marks"] != 0 || m0["fsnotifyd_events_total"] != 0 {
		t.Fatalf("an idle daemon: clients %v, marks %v, events %v", m0["fsnotifyd_clients"],
			m0["fsnotifyd_marks"], m0["fsnotifyd_events_total"])
	}

	// A watching client and n files created: at least n events read and delivered (one
	// CREATE each, and more for the writes), at most a handful each.
	w := start(t, "watch", "--daemon="+sock, dir+"/w")
	const n = 5
	for i := range n {
		if err := os.WriteFile(fmt.Sprintf("%s/w/f%d", dir, i), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Both counters are waited for: one kernel event can be several deliveries (the kernel
	// merges a file's CREATE, OPEN, MODIFY and CLOSE_WRITE into one unread event, which the
	// backend splits), so n deliveries can come from fewer events read so far.
	m1 := waitMetrics(t, addr, "n events read and delivered", func(m map[string]float64) bool {
		return m["fsnotifyd_delivered_events_total"]-m0["fsnotifyd_delivered_events_total"] >= n &&
			m["fsnotifyd_events_total"]-m0["fsnotifyd_events_total"] >= n
	})
	for _, name := range []string{"fsnotifyd_events_total", "fsnotifyd_delivered_events_total"} {
		if d := m1[name] - m0[name]; d < n || d > 8*n {
			t.Errorf("%s went up by %v for %d files created, want %d to %d", name, d, n, n, 8*n)
		}
	}
	if m1["fsnotifyd_clients"] != 1 || m1["fsnotifyd_marks"] < 1 || m1["fsnotifyd_permission_events_total"] != 0 {
		t.Errorf("with one watching client: clients %v, marks %v, permission events %v", m1["fsnotifyd_clients"],
			m1["fsnotifyd_marks"], m1["fsnotifyd_permission_events_total"])
	}

	// A guarding client: each cat is a permission event it answers.
	g := start(t, "guard", "--daemon="+sock, "--deny", "/**/*.key", dir+"/g")
	if out, err := exec.Command("cat", dir+"/g/secret.key").CombinedOutput(); err == nil {
		t.Fatalf("cat of a denied file: %s", out)
	}
	if out, err := exec.Command("cat", dir+"/g/ok").CombinedOutput(); err != nil {
		t.Fatalf("cat of an allowed file: %v %s", err, out)
	}
	m2 := waitMetrics(t, addr, "two answered permission events", func(m map[string]float64) bool {
		return m["fsnotifyd_verdict_latency_seconds_count"]-m1["fsnotifyd_verdict_latency_seconds_count"] >= 2
	})
	if d := m2["fsnotifyd_permission_events_total"] - m1["fsnotifyd_permission_events_total"]; d < 2 || d > 16 {
		t.Errorf("permission events went up by %v for two cats, want 2 to 16", d)
	}
	if m2["fsnotifyd_clients"] != 2 || m2["fsnotifyd_pending_permission_events"] != 0 {
		t.Errorf("with a watching and a guarding client, nothing held: clients %v, pending %v",
			m2["fsnotifyd_clients"], m2["fsnotifyd_pending_permission_events"])
	}
	if m2["fsnotifyd_verdict_latency_seconds_sum"] <= m1["fsnotifyd_verdict_latency_seconds_sum"] {
		t.Errorf("the verdict latency sum did not grow: %v then %v", m1["fsnotifyd_verdict_latency_seconds_sum"],
			m2["fsnotifyd_verdict_latency_seconds_sum"])
	}

	t.Logf("%d files: events +%v, delivered +%v; two cats: permission events +%v, answers +%v",
		n, m1["fsnotifyd_events_total"]-m0["fsnotifyd_events_total"],
		m1["fsnotifyd_delivered_events_total"]-m0["fsnotifyd_delivered_events_total"],
		m2["fsnotifyd_permission_events_total"]-m1["fsnotifyd_permission_events_total"],
		m2["fsnotifyd_verdict_latency_seconds_count"]-m1["fsnotifyd_verdict_latency_seconds_count"])

	// The clients leave: the gauges come down, the counters stay.
	g.stop()
	w.stop()
	m3 := waitMetrics(t, addr, "no clients", func(m map[string]float64) bool {
		return m["fsnotifyd_clients"] == 0 && m["fsnotifyd_marks"] == 0
	})
	for _, name := range []string{"fsnotifyd_events_total", "fsnotifyd_delivered_events_total",
		"fsnotifyd_permission_events_total", "fsnotifyd_verdict_latency_seconds_count"} {
		if m3[name] < m2[name] {
			t.Errorf("counter %s went down: %v then %v", name, m2[name], m3[name])
		}
	}
}

// scrapeMetrics reads http://addr/metrics into a map from sample (name and labels) to value.
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q: not a sample", l)
		}
		out[l[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// freeTCPAddr is a loopback address with a port free now, for serve --metrics to take.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitMetrics scrapes until ok holds (within 10 s) and returns that scrape.
func waitMetrics(t *testing.T, addr, what string, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrapeMetrics(t, addr)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %s; last scrape: %v", what, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGuardDenyReturnsEPERMToAnotherProcess(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testGuardDeny(t) })
	t.Run("daemon", func(t *testing.T) { testGuardDeny(t, "--daemon="+startServe(t)) })
}

func testGuardDeny(t *testing.T, extra ...string) {
	dir := testenv.Tmpfs(t)
	sh(t, "mkdir -p "+dir+"/g/sub && echo s > "+dir+"/g/sub/secret.key && echo ok > "+dir+"/g/ok")
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	p := start(t, append(append([]string{"guard"}, extra...), "--deny", "/**/*.key", "--audit", audit, dir+"/g")...)
	out, err := exec.Command("cat", dir+"/g/sub/secret.key").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Operation not permitted") {
		t.Fatalf("cat of a denied file: %v %s", err, out)
	}
	if out, err := exec.Command("cat", dir+"/g/ok").CombinedOutput(); err != nil {
		t.Fatalf("cat of an allowed file: %v %s", err, out)
	}
	// No window: a file in a directory created just now is guarded at once.
	out, err = exec.Command("sh", "-c", "mkdir -p "+dir+"/g/new/deeper && echo k > "+dir+"/g/new/deeper/x.key").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Operation not permitted") {
		t.Fatalf("creating a .key file in a new directory: %v %s", err, out)
	}
	if st := p.stop(); st != 0 {
		t.Fatalf("guard exit %d on SIGINT", st)
	}
	data, _ := os.ReadFile(audit)
	var denied int
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		for _, k := range []string{"time", "path", "pid", "comm", "event", "verdict", "rule", "latency"} {
			if _, ok := r[k]; !ok {
				t.Errorf("audit line lacks %q: %s", k, l)
			}
		}
		if r["verdict"] == "deny" && strings.HasSuffix(r["path"].(string), ".key") {
			denied++
			if c := r["comm"]; c != "cat" && c != "sh" { // read while the process waited
				t.Errorf("audit comm %v, want cat or sh: %s", c, l)
			}
		}
	}
	if denied < 2 {
		t.Fatalf("audit shows %d denies:\n%s", denied, data)
	}
}

func TestGuardExecScannerPastDeadlineDenies(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testGuardExec(t) })
	t.Run("daemon", func(t *testing.T) { testGuardExec(t, "--daemon="+startServe(t)) })
}

func testGuardExec(t *testing.T, extra ...string) {
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/f", []byte("x"), 0o644)
	scanner := filepath.Join(t.TempDir(), "slow-scanner")
	os.WriteFile(scanner, []byte("#!/bin/sh\nsleep 5\nexit 0\n"), 0o755)
	guard := func(args ...string) *proc { return start(t, append(append([]string{"guard"}, extra...), args...)...) }
	p := guard("--exec", scanner, "--deadline", "300ms", "--on-timeout", "deny", dir)
	lateness := testenv.MachineLateness()
	t0 := time.Now()
	out, err := exec.Command("cat", dir+"/f").CombinedOutput()
	took := time.Since(t0)
	late := lateness()
	if err == nil || !strings.Contains(string(out), "Operation not permitted") {
		t.Fatalf("cat under a scanner past its deadline: %v %s (after %v); guard's stderr:\n%s", err, out, took, p.errText())
	}
	// The scanner is stopped at the late point (notify.LateMargin before the deadline, twice
	// that through the daemon: 270 or 240 ms) and --on-timeout answers then. The late point
	// runs from the event, which comes after t0: never under it. Above: starting cat and the guard's hops take milliseconds
	// (307-331 ms to the deadline measured under -race on the shared 2-vCPU machine at load
	// 8); a deadline counted twice, from the wrong moment, or not at all (the scanner takes
	// 5 s) is 540 ms or more. A loaded machine's lateness is added once per thread woken on
	// the way (cat's start, the guard's reader, its deadline timer, the launcher; under load
	// one run took 351 ms of 500 with the lateness not counted): on a quiet machine the bound
	// stays about 500 ms, below the 540 of a deadline counted twice.
	margin := notify.LateMargin(300 * time.Millisecond)
	if len(extra) > 0 {
		margin *= 2 // through the daemon
	}
	earliest := 300*time.Millisecond - margin
	latest := 500*time.Millisecond + 4*late
	if took < earliest || took > latest {
		t.Fatalf("denied after %v, want %v to %v (the late point of the 300 ms deadline, plus starting cat, plus 4 × the machine's lateness %v)", took, earliest, latest, late)
	}
	t.Logf("denied after %v", took)
	// A scanner that says yes allows; its argument is the file (/proc/PID/fd/N of the
	// guard), its environment carries the path.
	p.stop()
	envLog := filepath.Join(t.TempDir(), "env")
	ok := filepath.Join(t.TempDir(), "ok-scanner")
	os.WriteFile(ok, []byte("#!/bin/sh\necho \"$(cat \"$1\") $FSNOTIFYD_PATH $FSNOTIFYD_EVENT $FSNOTIFYD_PID\" >> "+envLog+"\nexit 0\n"), 0o755)
	p = guard("--exec", ok, dir)
	cat := exec.Command("cat", dir+"/f")
	if out, err := cat.CombinedOutput(); err != nil {
		t.Fatalf("cat under an allowing scanner: %v %s", err, out)
	}
	p.stop()
	data, _ := os.ReadFile(envLog)
	want := fmt.Sprintf("x %s/f open %d", dir, cat.Process.Pid)
	if !strings.Contains(string(data), want) {
		t.Fatalf("scanner saw %q, want a line %q", data, want)
	}
}

// The --exec scanners (--concurrency of them) are shared among the users whose accesses wait
// for one, in turn: a user who keeps them all busy (200 opens as nobody of a file the scanner
// takes 200 ms over, two scanners) delays another user's scans by one scan each, not by all
// of theirs. With --on-timeout deny, root's five opens amid the flood are allowed by the
// scanner, none at the late point, while some of nobody's reach theirs (the flood did fill
// the scanners' queue). Before the slots were shared, root's scans waited behind nobody's
// and were denied by --on-timeout at their late point. A user is its login uid where there
// is one: the same flood from 200 real uids (a user's subordinate uids in a user namespace)
// under one login is one user, not 200 (keyed by real uid, root's scans would wait 200 turns).
func TestGuardScannerSlotsSharedAmongUsers(t *testing.T) {
	const n = 200
	floods := []struct {
		name, script string
	}{
		{"one uid", `i=0; while [ $i -lt ` + strconv.Itoa(n) + ` ]; do
			head -c1 "$1" >/dev/null 2>&1 &
			i=$((i+1)); done; wait`},
		{"many uids one login", `echo 65534 > /proc/self/loginuid || exit 3
			i=0; while [ $i -lt ` + strconv.Itoa(n) + ` ]; do
			setpriv --reuid $((200000+i)) --regid 65534 --clear-groups -- head -c1 "$1" >/dev/null 2>&1 &
			i=$((i+1)); done; wait`},
	}
	for _, fl := range floods {
		t.Run(fl.name, func(t *testing.T) { testScannerSlotsShared(t, fl.name, fl.script, n) })
	}
}

// testScannerSlotsShared is TestGuardScannerSlotsSharedAmongUsers with the flood script (sh,
// $1 the flooded file; as nobody for "one uid", as root otherwise) of n opens.
func testScannerSlotsShared(t *testing.T, name, script string, n int) {
	if name != "one uid" {
		if _, set, err := procfs.ReadLoginUID(int32(os.Getpid())); err != nil || set {
			t.Skipf("this test's process has a login uid (%v): its children cannot be given another", err)
		}
	}
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		for _, d := range []string{"nobody", "root"} {
			if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		flooded := filepath.Join(mnt, "nobody", "f")
		writeFile(t, flooded, "x")
		const mine = 5
		var roots []string
		for i := range mine {
			p := filepath.Join(mnt, "root", "r"+strconv.Itoa(i))
			writeFile(t, p, "x")
			roots = append(roots, p)
		}
		scanner := filepath.Join(t.TempDir(), "scanner")
		writeFile(t, scanner, "#!/bin/sh\ncase \"$FSNOTIFYD_PATH\" in */nobody/*) sleep 0.2;; esac\nexit 0\n")
		if err := os.Chmod(scanner, 0o755); err != nil {
			t.Fatal(err)
		}
		audit := filepath.Join(t.TempDir(), "audit.jsonl")
		p := start(t, append(append([]string{"guard"}, extra...), "--exec", scanner, "--concurrency", "2",
			"--on-timeout", "deny", "--events", "open", "--audit", audit, mnt)...)
		done := make(chan error, 1)
		go func() {
			cred := testenv.Nobody
			if name != "one uid" {
				cred = nil
			}
			out, err := testenv.Sh(cred, "set -- "+flooded+"\n"+script)
			if err != nil {
				err = fmt.Errorf("%w\n%s", err, out)
			}
			done <- err
		}()
		if !waitFor(20*time.Second, func() bool { return countComm("head") >= 50 }) {
			t.Fatalf("nobody's opens did not pile up: %d head processes", countComm("head"))
		}
		slowest := openAllAtOnce(t, roots, "amid nobody's flood (by the scanner)")
		if err := <-done; err != nil {
			t.Fatalf("as nobody: %v", err)
		}
		p.stop()
		recs := auditLines(t, audit)
		for _, path := range roots {
			got := auditFor(recs, path)
			if len(got) != 1 || got[0]["verdict"] != "allow" || got[0]["late"] == true {
				t.Errorf("audit of root's %s: %v, want one allow by the scanner (not late)", path, got)
			}
		}
		late := 0
		for _, r := range auditFor(recs, flooded) {
			if r["late"] == true {
				late++
			}
		}
		if late == 0 {
			t.Errorf("none of nobody's %d opens reached its late point: the flood did not fill the scanners, the test shows nothing", n)
		}
		t.Logf("root's %d opens took at most %v; %d of nobody's %d opens reached their late point", mine, slowest, late, n)
	})
}

func TestGuardPolicyFileErrorsNameLineAndColumn(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "bad.rules")
	os.WriteFile(rules, []byte("deny open /x/**\ndeny opne /y/**\n"), 0o644)
	out, err := exec.Command(bin, "guard", "--policy", rules, dir).CombinedOutput()
	if exitStatus(err) == 0 || !strings.Contains(string(out), "bad.rules:2:6") {
		t.Fatalf("got %v: %s", err, out)
	}
}

func TestUnprivilegedGuardSaysRootIsNeeded(t *testing.T) {
	dir, err := os.MkdirTemp("", "fsnotifyd-unpriv-") // not under t.TempDir(), whose parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	cmd := exec.Command(bin, "guard", "--deny", "/**", dir)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if exitStatus(err) != 1 || !strings.Contains(string(out), "needs root") {
		t.Fatalf("unprivileged guard: %v %s", err, out)
	}
}

// TestGuardErrnoRuleDeniesAtOnce: `deny open "**/*.bad" errno=EIO` denies at once, embedded and
// through the daemon, with a deadline or none: with EPERM in a content guard (which cannot
// send an errno: a plain deny), with EIO in a pre-content one (--events open,pre_access, on
// ext4). Through the daemon the content guard's open used to wait out the deadline and then
// be allowed, or hang forever with --deadline 0.
func TestGuardErrnoRuleDeniesAtOnce(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name   string
		events string
		want   string
	}{
		{"content", "open", "Operation not permitted"},
		{"pre-content", "open,pre_access", "Input/output error"},
	} {
		for _, daemon := range []bool{false, true} {
			for _, deadline := range []string{"5s", "0"} {
				name := fmt.Sprintf("%s/daemon=%v/deadline=%s", tc.name, daemon, deadline)
				t.Run(name, func(t *testing.T) {
					var dir string
					if tc.name == "pre-content" {
						dir = testenv.Ext4(t, 16)
					} else {
						dir = testenv.Tmpfs(t)
					}
					sh(t, "echo x > "+dir+"/f.bad && echo y > "+dir+"/f.ok")
					rules := filepath.Join(t.TempDir(), "errno.rules")
					os.WriteFile(rules, []byte(`deny open "**/*.bad" errno=EIO`+"\n"), 0o644)
					args := []string{"guard", "--policy", rules, "--events", tc.events, "--deadline", deadline}
					if daemon {
						args = append(args, "--daemon="+startServe(t))
					}
					p := start(t, append(args, dir)...)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // then SIGKILL
					defer cancel()
					t0 := time.Now()
					out, err := exec.CommandContext(ctx, "cat", dir+"/f.bad").CombinedOutput()
					took := time.Since(t0)
					if err == nil || !strings.Contains(string(out), tc.want) || took > time.Second {
						t.Fatalf("cat f.bad: %v %q after %v, want %q within 1s; guard's stderr:\n%s", err, out, took, tc.want, p.errText())
					}
					if out, err := exec.CommandContext(ctx, "cat", dir+"/f.ok").CombinedOutput(); err != nil {
						t.Fatalf("cat f.ok: %v %s", err, out)
					}
					if st := p.stop(); st != 0 {
						t.Fatalf("guard exit %d on SIGINT", st)
					}
				})
			}
		}
	}
}

// TestDaemonRefusalReachesTheUser: when the daemon refuses a mark, the command prints the
// daemon's reason, not a guess from its errno: `trace --mount` as an unprivileged user says a
// mount mark needs root or an allowed uid (it used to say "permission denied (run as a user who
// can read it...)" of a path it could read), and `watch` of a directory the user cannot read
// says so.
func TestDaemonRefusalReachesTheUser(t *testing.T) {
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "fsnotifyd-refusal-") // not under t.TempDir(), whose parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	private := filepath.Join(dir, "private")
	os.Mkdir(private, 0o700)
	sock := startServeIn(t, dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "--mount", dir}, dir + ": the daemon refused (permission): mount marks need uid 0 or a uid/gid allowed by allow_uid/allow_gid in the daemon's config; uid 65534 is not"},
		{[]string{"watch", private}, private + ": the daemon refused (permission): you (uid 65534) cannot read " + private},
	} {
		cmd := exec.Command(bin, append([]string{tc.args[0], "--daemon=" + sock}, tc.args[1:]...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if exitStatus(err) != 1 || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "run as a user who can read it") {
			t.Errorf("fsnotifyd %v as uid 65534: %v\n%s\nwant exit 1 and %q", tc.args, err, out, tc.want)
		} else {
			t.Logf("%s", strings.TrimSpace(string(out)))
		}
	}
}

// TestWatchPacedFloodInOrder: under a flood the embedded watch reads at most once per
// streamPace (stream's pacing): every event is still printed, once, in order, and the
// event that ends a flood is printed without waiting for another one to come.
func TestWatchPacedFloodInOrder(t *testing.T) {
	dir := testenv.Tmpfs(t)
	p := start(t, "watch", "-e", "create", dir)
	const n = 3000
	for i := range n {
		f, err := os.Create(fmt.Sprintf("%s/f%d", dir, i))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	got := p.collect(30*time.Second, func(l []string) bool { return len(l) >= n })
	if len(got) != n {
		t.Fatalf("%d lines for %d creates", len(got), n)
	}
	for i, l := range got {
		if want := fmt.Sprintf("%s/ CREATE f%d", dir, i); l != want {
			t.Fatalf("line %d: %q, want %q", i, l, want)
		}
	}
	time.Sleep(50 * time.Millisecond) // the flood is over
	if err := os.WriteFile(dir+"/last", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	last := p.collect(5*time.Second, func(l []string) bool { return len(l) >= 1 })
	if len(last) != 1 || last[0] != dir+"/ CREATE last" {
		t.Fatalf("after the flood, a lone create printed %q (want it alone, within 5 s)", last)
	}
	if st := p.stop(); st != 0 {
		t.Fatalf("exit status %d", st)
	}
}

// TestWatchRecursiveRmRfSameOnEveryBackend: `watch -r` of a tree that rm -rf removes prints
// the same lines as root (one fanotify mark for the tree) and unprivileged (inotify, a watch
// per directory): every removal, and every directory's DELETE_SELF just before its DELETE.
// On fanotify the directories' DELETE_SELFs below the root were missing (a self event
// carries no ancestry), 2026-12-05.
// A directory's DELETE_SELF comes after every event inside it, with all events asked for, on
// fanotify, inotify and through the daemon:
// rm -rf opens, reads and closes each directory just before its rmdir, and the kernel's
// fanotify queue merges the DELETE_SELF into that open (and the watch's engine group merged
// it back after the split), so it was printed before the removals inside the directory.
func TestWatchRecursiveRmRfDirectoryGoesAfterItsContents(t *testing.T) {
	dir := testenv.PublicTmpfs(t) // nobody reaches it
	const trees = 5
	for _, who := range []string{"root", "nobody", "daemon"} {
		t.Run(who, func(t *testing.T) {
			w := filepath.Join(dir, who, "w")
			for i := range trees {
				sh(t, fmt.Sprintf("mkdir -p %[1]s/t%[2]d/b/c && touch %[1]s/t%[2]d/f %[1]s/t%[2]d/b/g %[1]s/t%[2]d/b/c/h", w, i))
			}
			sh(t, "chmod -R 777 "+filepath.Dir(w))
			p := start(t, as(t, who, []string{"watch", "-r", w})...)
			for i := range trees {
				sh(t, fmt.Sprintf("rm -rf %s/t%d", w, i))
			}
			last := fmt.Sprintf("%s/ DELETE,ISDIR t%d", w, trees-1)
			selfLines := func(l []string) (n int) {
				for _, line := range l {
					if strings.Contains(line, "DELETE_SELF") {
						n++
					}
				}
				return n
			}
			// Until the last DELETE and every DELETE_SELF (a directory still held as it went
			// has its DELETE_SELF after its DELETE).
			got := p.collect(10*time.Second, func(l []string) bool {
				return slices.Contains(l, last) && selfLines(l) >= 3*trees
			})
			if !slices.Contains(got, last) {
				t.Fatalf("no %q in:\n%s", last, strings.Join(got, "\n"))
			}
			// Each line is "DIR/ EVENTS [NAME]": its object is DIR/NAME.
			object := func(line string) (string, string) {
				d, rest, _ := strings.Cut(line, "/ ")
				events, name, _ := strings.Cut(rest, " ")
				return filepath.Join(d, name), events
			}
			for i, line := range got {
				obj, events := object(line)
				if !strings.Contains(events, "DELETE_SELF") {
					continue
				}
				for _, later := range got[i+1:] {
					if o, _ := object(later); strings.HasPrefix(o, obj+"/") {
						t.Errorf("%q after %q:\n%s", later, line, strings.Join(got, "\n"))
					}
				}
			}
			if selves, want := selfLines(got), 3*trees; selves != want {
				t.Errorf("%d DELETE_SELF lines, want %d (t, b, c of each tree):\n%s", selves, want, strings.Join(got, "\n"))
			}
			p.stopOK(t)
		})
	}
}

// TestWatchSelfEventsAsInotifywait: a directory's MOVE_SELF and DELETE_SELF under `watch -r`
// print as inotifywait -m -r prints them — the directory itself (`w/a/c/ MOVE_SELF `), not an
// entry of its parent, and without ISDIR — beside the parent's MOVED_TO and DELETE, run side
// by side on the same operations (as root: fanotify; as nobody: inotify).
func TestWatchSelfEventsAsInotifywait(t *testing.T) {
	if _, err := exec.LookPath("inotifywait"); err != nil {
		t.Skip("no inotifywait (apt-get install inotify-tools)")
	}
	dir := testenv.PublicTmpfs(t)
	for _, who := range []string{"root", "nobody"} {
		t.Run(who, func(t *testing.T) {
			w := filepath.Join(dir, who, "w")
			sh(t, fmt.Sprintf("mkdir -p %s/a/b/d && chmod -R 777 %s", w, filepath.Dir(w)))
			events := "moved_to,move_self,delete,delete_self"
			args := []string{"watch", "-r", "-e", events, w}
			args = as(t, who, args)
			ours := start(t, args...)
			peer := start(t, "inotifywait", "-m", "-r", "-e", events, w) // it says "Watches established." too
			sh(t, fmt.Sprintf("mv %[1]s/a/b %[1]s/a/c && rmdir %[1]s/a/c/d && rmdir %[1]s/a/c", w))
			want := 6 // MOVED_TO c, MOVE_SELF c, DELETE d, DELETE_SELF d, DELETE c, DELETE_SELF c
			collect := func(p *proc) []string {
				got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= want })
				for i := range got {
					got[i] = strings.TrimPrefix(got[i], filepath.Dir(w))
				}
				return slices.Sorted(slices.Values(got))
			}
			g, pw := collect(ours), collect(peer)
			if strings.Join(g, "\n") != strings.Join(pw, "\n") {
				t.Errorf("watch -r printed\n%s\ninotifywait -m -r printed\n%s", strings.Join(g, "\n"), strings.Join(pw, "\n"))
			}
			if !slices.Contains(g, "/w/a/c/ MOVE_SELF ") || !slices.Contains(g, "/w/a/c/ DELETE_SELF ") {
				t.Errorf("no self events of /w/a/c in:\n%s", strings.Join(g, "\n"))
			}
		})
	}
}

func TestWatchRecursiveRmRfSameOnEveryBackend(t *testing.T) {
	dir := testenv.PublicTmpfs(t) // nobody reaches it
	want := []string{
		"/w/a/b/c/ DELETE f",
		// A directory's DELETE_SELF is its own event, as inotifywait prints it (trailing
		// space: %f is empty).
		"/w/a/b/c/ DELETE_SELF ", "/w/a/b/ DELETE,ISDIR c",
		"/w/a/b/ DELETE_SELF ", "/w/a/ DELETE,ISDIR b",
		"/w/a/ DELETE_SELF ", "/w/ DELETE,ISDIR a",
	}
	for _, who := range []string{"root", "nobody"} {
		t.Run(who, func(t *testing.T) {
			w := filepath.Join(dir, who, "w")
			sh(t, fmt.Sprintf("mkdir -p %s/a/b/c && touch %s/a/b/c/f && chmod -R 777 %s", w, w, filepath.Dir(w)))
			args := []string{"watch", "-r", "-e", "delete,delete_self", w}
			args = as(t, who, args)
			p := start(t, args...)
			sh(t, "rm -rf "+filepath.Join(w, "a"))
			got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= len(want) })
			for i := range got {
				got[i] = strings.TrimPrefix(got[i], filepath.Join(dir, who))
			}
			// The same lines; a directory's DELETE_SELF and DELETE come in either order
			// (after the DELETE when rm still held the directory as it went).
			got, want := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			p.stopOK(t)
		})
	}
}

// TestInterruptRightAfterWatchesEstablished: a SIGINT sent as soon as "Watches established."
// is read ends watch, trace and guard as one sent later does, with exit status 0 — they
// caught signals only after printing it, so such a SIGINT killed them (watch's buffered
// lines lost, a reporting guard's last decisions unsent).
func TestInterruptRightAfterWatchesEstablished(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := testenv.Tmpfs(t)
	for _, args := range [][]string{
		{"watch", mnt},
		{"trace", mnt},
		{"guard", "--deny", "**/*.key", mnt},
	} {
		t.Run(args[0], func(t *testing.T) {
			for i := range 10 {
				p := start(t, args...)
				if st := p.stop(); st != 0 {
					t.Fatalf("round %d: exit status %d, want 0; stderr:\n%s", i, st, p.errText())
				}
			}
		})
	}
}

// TestWatchTouchInItsOrder: touch of an existing file opens it, sets its times through the
// descriptor (futimens) and closes it: OPEN, ATTRIB, CLOSE_WRITE, as inotifywait prints them,
// on fanotify (root: the kernel merges the three, and the split puts the ATTRIB before the
// close) and on inotify (nobody: nothing merged; watch's own queue merges only exact repeats).
// Before, the merged ATTRIB came after the close on both.
func TestWatchTouchInItsOrder(t *testing.T) {
	dir := testenv.PublicTmpfs(t)
	want := "OPEN f\nATTRIB f\nCLOSE_WRITE,CLOSE f"
	for _, who := range []string{"root", "nobody"} {
		t.Run(who, func(t *testing.T) {
			w := filepath.Join(dir, who)
			sh(t, fmt.Sprintf("mkdir -p %[1]s && touch %[1]s/f && chmod -R 777 %[1]s", w))
			args := []string{"watch", "--format", "%e %f", w}
			args = as(t, who, args)
			p := start(t, args...)
			for round := range 5 {
				sh(t, "touch "+filepath.Join(w, "f"))
				got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= 3 })
				if g := strings.Join(got, "\n"); g != want {
					t.Fatalf("round %d: got\n%s\nwant\n%s", round, g, want)
				}
			}
		})
	}
}

// TestTraceJSONExeAfterExec: a process that reads a file, then execs another program that
// reads it too, within a second: the second read is the new program's, and trace --json
// --exe names it so (comm and exe), where the exec is traced (the program is on a traced
// filesystem, as with a trace of every filesystem). Before, a name read for a pid was kept
// 2 s: the new program's accesses were shown as "sh", "/usr/bin/dash" (a user could run
// anything after an innocuous exec and be shown as the shell).
func TestTraceJSONExeAfterExec(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	catExe, _ := exec.LookPath("cat")
	sh(t, fmt.Sprintf("cp %s %s/mycat && echo x >%s/data", catExe, dir, dir))
	p := start(t, "trace", "--json", "--exe", "--fs", dir)
	// The new program waits on stdin until its read is seen: see TestTraceShowsPidAndCommandOfCat.
	cmd := exec.Command("sh", "-c", `read x <"$1/data"; sleep 0.3; exec "$1/mycat" "$1/data" -`, "sh", dir)
	cmd.Stdout = io.Discard
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	var recs []map[string]any
	all := p.collect(10*time.Second, func(l []string) bool {
		recs = recs[:0]
		for _, s := range l {
			var r map[string]any
			if json.Unmarshal([]byte(s), &r) == nil && r["path"] == dir+"/data" && r["pid"] == float64(cmd.Process.Pid) {
				recs = append(recs, r)
			}
		}
		opens := 0
		for _, r := range recs {
			if slices.Contains(r["events"].([]any), "OPEN") {
				opens++
			}
		}
		return opens == 2
	})
	p.stop()
	var last map[string]any
	for _, r := range recs {
		if slices.Contains(r["events"].([]any), "OPEN") {
			last = r
		}
	}
	if last == nil || last["comm"] != "mycat" || last["exe"] != dir+"/mycat" {
		t.Errorf("the exec'd program's open: %v, want comm mycat, exe %s/mycat; records:\n%v", last, dir, strings.Join(all, "\n"))
	}
}

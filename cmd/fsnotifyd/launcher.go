//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The guard's --exec scanners are started by a launcher process, never by the guard itself.
// Go starts a child with vfork: the forking thread waits, outside the scheduler's view, until
// the child's execve returns. If the scanner (or its interpreter) lies under a guarded path,
// that execve waits for the guard's verdict; should the Go runtime start a stop-the-world
// meanwhile, it waits for the forking thread, and the guard could never answer — the host
// would hang on every guarded access. The launcher is started before any mark exists, in a
// session of its own (setsid); it and the members of its session — the scanners it starts and
// their children — are exempt (backend.Exemptions) and answered at once by a guard whose
// runtime is never blocked by a fork. The guard does not reap the launcher until it is done
// with it: the exemption holds while the launcher holds its pid, and ends when it is reaped.
//
// The launcher is this binary run as "fsnotifyd __exec-launcher"; it reads one JSON request
// per line on stdin and writes one JSON reply per line on stdout.

// launchRequest is one scanner to run. Argv and Env go as bytes (base64 in JSON), not as
// strings: encoding/json writes each byte of a string that is not UTF-8 as U+FFFD, and a file
// name may hold any byte but NUL — the scanner must be told the name it has, not another
// (TestGuardScannerGetsExactNamesAsNobody).
type launchRequest struct {
	ID      uint64        `json:"id"`
	Argv    [][]byte      `json:"argv"`
	Env     [][]byte      `json:"env"`
	Timeout time.Duration `json:"timeout"`
}

// strs and byteStrs convert between launchRequest's Argv and Env and exec's strings.
func strs(b [][]byte) []string {
	s := make([]string, len(b))
	for i := range b {
		s[i] = string(b[i])
	}
	return s
}

func byteStrs(s []string) [][]byte {
	b := make([][]byte, len(s))
	for i := range s {
		b[i] = []byte(s[i])
	}
	return b
}

type launchReply struct {
	ID     uint64 `json:"id"`
	Exit   int    `json:"exit"`   // the scanner's exit status; -1 if it did not run or was killed
	Killed bool   `json:"killed"` // killed at its timeout
	Err    string `json:"err,omitempty"`
}

// runLauncher is "fsnotifyd __exec-launcher".
func runLauncher(args []string) int {
	closeInheritedOnExec()
	scanOut, flushOut, err := scannerOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fsnotifyd __exec-launcher: %v\n", err)
		return exitRuntime // the guard's scans fail (--on-error)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 4<<20)
	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	reply := func(r launchReply) {
		mu.Lock()
		defer mu.Unlock()
		out.Encode(r)
	}
	var wg sync.WaitGroup
	for in.Scan() {
		var req launchRequest
		if err := json.Unmarshal(in.Bytes(), &req); err != nil || len(req.Argv) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply(launch(req, scanOut))
		}()
	}
	wg.Wait()
	flushOut()    // what the last scanners printed
	return exitOK // stdin closed: the guard is gone
}

// closeInheritedOnExec marks every descriptor above 2 close-on-exec: the scanners get
// standard input (/dev/null), output and error, and nothing else. This process opens each of
// its own close-on-exec, but it inherits the guard's, which inherits whatever its own parent
// left open (a root shell's, a script's pipe): a scanner is handed files from the attacker,
// and one that a crafted file takes over should hold no more than it needs
// (TestGuardScannerGetsTheFileAndNothingElse).
func closeInheritedOnExec() {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Fprintf(os.Stderr, "fsnotifyd __exec-launcher: %v: the scanners may inherit its descriptors\n", err)
		return
	}
	for _, e := range fds {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd) // the directory's own, closed by now, is harmless
		}
	}
}

// scannerOutput is where the scanners write (their standard output and error): a pipe this
// process reads and passes on to its stderr (the guard's) through a logWriter, which drops
// and counts what that stderr does not take. Given the guard's stderr itself, a scanner that
// prints a line per file (clamdscan) blocked in its write once the pipe was full (a paused
// "guard ... 2>&1 | less"), and every scan then ended at its late point: --on-timeout, allow
// by default, for dirty files (TestGuardScannerOutputStoppedKeepsVerdicts).
// flush, once no scanner runs, writes out what they printed (no longer than logWriter.close
// waits for a stderr not read).
func scannerOutput() (w *os.File, flush func(), err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("a pipe for the scanners' output: %w", err)
	}
	out := newLogWriter(os.Stderr)
	out.dropped = func(n uint64) {
		fmt.Fprintf(out, "fsnotifyd guard: %d writes of the --exec scanners' output were dropped (its stderr was not read)\n", n)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			out.Write(buf[:n]) // never waits
			if err != nil {
				return
			}
		}
	}()
	return w, func() {
		w.Close() // EOF once no scanner (or a child it left) holds it
		select {
		case <-read:
		case <-time.After(outputGrace):
		}
		out.close()
	}, nil
}

func launch(req launchRequest, out *os.File) launchReply {
	ctx := context.Background()
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	argv := strs(req.Argv)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = strs(req.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill the scanner's children too
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	r := launchReply{ID: req.ID, Exit: -1}
	switch {
	case err == nil:
		r.Exit = 0
	case ctx.Err() != nil:
		r.Killed = true
	default:
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Exited() {
			r.Exit = ee.ExitCode()
		} else {
			r.Err = err.Error()
		}
	}
	return r
}

// launcher is the guard's side: it starts the launcher process and sends it requests.
type launcher struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	mu   sync.Mutex
	next uint64
	wait map[uint64]chan launchReply
	dead chan struct{}
}

func startLauncher() (*launcher, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "__exec-launcher")
	cmd.Stderr = os.Stderr
	// Its own session: its scanners are exempt as its session's members.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the --exec launcher: %w", err)
	}
	l := &launcher{cmd: cmd, in: in, wait: make(map[uint64]chan launchReply), dead: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			var r launchReply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				// A launcher that says what it should not can be trusted with no scan: every
				// scan from now on fails (--on-error), none waits for a reply that will not come.
				fmt.Fprintf(os.Stderr, "fsnotifyd guard: the --exec launcher wrote %q: %v; scans fail from now on\n", sc.Bytes(), err)
				cmd.Process.Kill()
				break
			}
			l.mu.Lock()
			ch := l.wait[r.ID]
			delete(l.wait, r.ID)
			l.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		}
		close(l.dead)
		cmd.Wait()
	}()
	return l, nil
}

// pid is the launcher's process id (exempt it, and so its scanners, from the guard).
func (l *launcher) pid() int { return l.cmd.Process.Pid }

// run runs argv with env through the launcher, killed at timeout (0: none) or when ctx ends,
// and closes file once the launcher says the scanner has exited (or the launcher is gone) —
// not before, even when ctx ends first: the scanner reads the file by its
// number in this process (/proc/PID/fd/N), which, closed while it still runs, could name
// another file of this process by the time it opens it.
func (l *launcher) run(ctx context.Context, argv, env []string, timeout time.Duration, file io.Closer) (launchReply, error) {
	ch := make(chan launchReply, 1)
	l.mu.Lock()
	l.next++
	id := l.next
	l.wait[id] = ch
	b, _ := json.Marshal(launchRequest{ID: id, Argv: byteStrs(argv), Env: byteStrs(env), Timeout: timeout})
	_, err := l.in.Write(append(b, '\n'))
	if err != nil {
		delete(l.wait, id)
	}
	l.mu.Unlock()
	if err != nil {
		file.Close() // the request did not go: no scanner reads it
		return launchReply{}, fmt.Errorf("the --exec launcher: %w", err)
	}
	select {
	case r := <-ch:
		file.Close()
		return r, nil
	case <-l.dead:
		file.Close()
		return launchReply{}, errors.New("the --exec launcher exited")
	case <-ctx.Done():
		// The scanner may still run (the launcher kills it at timeout, about now): the
		// file stays open until its reply says it has exited.
		go func() {
			select {
			case <-ch:
			case <-l.dead:
			}
			file.Close()
		}()
		return launchReply{}, ctx.Err()
	}
}

func (l *launcher) close() {
	l.in.Close()
	select {
	case <-l.dead:
	case <-time.After(5 * time.Second):
		l.cmd.Process.Kill()
	}
}

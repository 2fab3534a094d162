//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestWatchEndsAtSIGTERMWithItsOutputBlocked: watch's stdout is a pipe whose reader never
// reads (a stopped or wedged consumer). A flood fills the pipe and watch's own buffer, and
// watch blocks in its write. SIGTERM (and --timeout, the same path) must still end it: after
// a second with no write done, it exits with status 1 and says on stderr that lines were not
// written — never a silent 0 with lines lost, never a hang. Before, it waited in the write
// until the reader read or SIGKILL (root, nobody and through the daemon: still running 20 s
// after SIGTERM).
func TestWatchEndsAtSIGTERMWithItsOutputBlocked(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	for _, who := range []string{"root", "nobody", "daemon"} {
		t.Run(who, func(t *testing.T) {
			d := userDir(t, dir, who)
			argv := as(t, who, []string{"watch", "-e", "create", d})
			if argv[0] != "setpriv" {
				argv = append([]string{bin}, argv...)
			}
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close() // never read: the pipe stays full
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Stdout = w
			stderr := &bg{}
			cmd.Stderr = stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			done := make(chan struct{})
			var werr error
			go func() { werr = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			})
			if !waitFor(20*time.Second, func() bool { return strings.Contains(stderr.output(), "Watches established.") }) {
				t.Fatalf("no \"Watches established.\"; stderr:\n%s", stderr.output())
			}
			// 4,000 lines of 60-odd bytes: well over the pipe (64 KiB) and watch's buffer (64 KiB).
			name := strings.Repeat("x", 40)
			for i := range 4000 {
				f, err := os.Create(fmt.Sprintf("%s/%s%d", d, name, i))
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			// watch is blocked in its write once the pipe is (nearly: its pages are not all
			// filled to the end) full and stays so.
			last := -1
			if !waitFor(20*time.Second, func() bool {
				n, err := pipeQueued(r)
				full := err == nil && n >= 32<<10 && n == last
				last = n
				time.Sleep(200 * time.Millisecond)
				return full
			}) {
				n, err := pipeQueued(r)
				t.Fatalf("the pipe never filled (%d, %v); stderr:\n%s", n, err, stderr.output())
			}
			t0 := time.Now()
			syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
				took := time.Since(t0)
				if st := exitStatus(werr); st != 1 {
					t.Errorf("exit status %d, want 1 (lines were not written); stderr:\n%s", st, stderr.output())
				}
				if !strings.Contains(stderr.output(), "not written") {
					t.Errorf("stderr does not say lines were not written:\n%s", stderr.output())
				}
				if took > 5*time.Second {
					t.Errorf("exited %v after SIGTERM, want within a few seconds", took)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("still running 20 s after SIGTERM with its output blocked; stderr:\n%s", stderr.output())
			}
		})
	}
}

// pipeQueued is how many bytes the pipe r holds (FIONREAD).
func pipeQueued(r *os.File) (int, error) {
	sc, err := r.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ierr error
	sc.Control(func(fd uintptr) {
		var v int32
		_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&v)))
		if e != 0 {
			ierr = e
		}
		n = int(v)
	})
	return n, ierr
}

// TestTraceSaysAtExitThatEventsWereLost: a trace stopped (a terminal's ^Z) while 30,000 files
// are created loses events (the kernel's queue holds 16384); besides its "!" line, in order,
// and a stderr line when it was read, it says at exit how many times events were lost, after
// its last line: a user who reads the end of a long trace, or a script that reads stderr once
// it ended, learns it was incomplete. Before, nothing was said at exit.
func TestTraceSaysAtExitThatEventsWereLost(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	p := start(t, "trace", "--fs", dir)
	testenv.Stop(t, p.cmd.Process.Pid)
	if out, err := testenv.Sh(nil, "cd "+dir+" && seq 30000 | xargs touch"); err != nil {
		t.Fatal(out, err)
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
	got := p.collect(20*time.Second, func(l []string) bool {
		return len(l) > 0 && strings.Contains(l[len(l)-1], "): !")
	})
	if len(got) == 0 || !strings.Contains(got[len(got)-1], "): !") {
		t.Fatalf("no \"!\" line in %d lines", len(got))
	}
	if st := p.stop(); st != 0 {
		t.Errorf("exit status %d", st)
	}
	errLines := strings.Split(strings.TrimSpace(p.errText()), "\n")
	last := errLines[len(errLines)-1]
	if !strings.HasPrefix(last, "fsnotifyd trace: events were lost ") || !strings.Contains(last, `"!"`) {
		t.Errorf("stderr ends with %q, want what was lost; stderr:\n%s", last, p.errText())
	}
}

// TestWatchReportsAWriteThroughEachLinkOfAFile: a file with a hard link of the same name in
// each of two watched directories (a/f, b/f), written through a then b while watch is
// stopped (its events unread): each write is its own line, through its own directory, as
// inotifywait prints them (neither kernel merges them: fanotify compares the directory,
// inotify the watch). Before, the engine merged the writes of one inode and name whatever
// the directory: the two writes were one line, `a/ MODIFY f`, and nothing said that b/f was
// written (root, nobody and through the daemon).
func TestWatchReportsAWriteThroughEachLinkOfAFile(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	for _, who := range []string{"root", "nobody", "daemon"} {
		t.Run(who, func(t *testing.T) {
			a, b := userDir(t, dir, who+"-a"), userDir(t, dir, who+"-b")
			if err := os.WriteFile(a+"/f", nil, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(a+"/f", b+"/f"); err != nil {
				t.Fatal(err)
			}
			p := start(t, as(t, who, []string{"watch", "-e", "modify", a, b})...)
			testenv.Stop(t, p.cmd.Process.Pid)
			var want []string
			for _, d := range []string{a, b} {
				// One write, one MODIFY (os.WriteFile's truncation would be a second one,
				// merged by the kernel only while unread).
				f, err := os.OpenFile(d+"/f", os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, err = f.WriteString("x")
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, d+"/ MODIFY f")
			}
			time.Sleep(200 * time.Millisecond) // read by the backend (and the daemon) meanwhile
			syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
			got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= len(want) })
			if !slices.Equal(got, want) {
				t.Errorf("got %d lines %q,\nwant %d %q; stderr:\n%s", len(got), got, len(want), want, p.errText())
			}
		})
	}
}

// watchCreatesAs runs f as a subtest per user of whos (root, nobody, daemon: as), each with
// "watch -e create" started as that user on a directory of its own (userDir) on a public
// tmpfs.
func watchCreatesAs(t *testing.T, whos []string, f func(t *testing.T, d string, p *proc)) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	for _, who := range whos {
		t.Run(who, func(t *testing.T) {
			d := userDir(t, dir, who)
			f(t, d, start(t, as(t, who, []string{"watch", "-e", "create", d})...))
		})
	}
}

// TestWatchWritesWhatWasQueuedAtSIGTERM: watch is stopped (^Z, SIGSTOP) while 2,000 files
// are created, then sent SIGTERM and continued. The 2,000 events were queued to it before
// the signal (in the kernel's queue, or the daemon's for it): it writes every one, in order,
// then exits 0. Before, it exited 0 at once with none written and nothing said (root, nobody
// and through the daemon): "flush what they hold" flushed only its own queue, which its
// stopped reader had not filled yet.
func TestWatchWritesWhatWasQueuedAtSIGTERM(t *testing.T) {
	watchCreatesAs(t, []string{"root", "nobody", "daemon"}, func(t *testing.T, d string, p *proc) {
		testenv.Stop(t, p.cmd.Process.Pid)
		const n = 2000
		var want []string
		for i := range n {
			f, err := os.Create(fmt.Sprintf("%s/f%d", d, i))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			want = append(want, fmt.Sprintf("%s/ CREATE f%d", d, i))
		}
		time.Sleep(200 * time.Millisecond) // through the daemon: sent meanwhile
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
		if st := p.exited(t, 20*time.Second, "still running 20 s after SIGTERM"); st != 0 {
			t.Errorf("exit status %d, want 0; stderr:\n%s", st, p.errText())
		}
		p.mu.Lock()
		got := strings.Split(strings.TrimSuffix(p.stdout.String(), "\n"), "\n")
		p.mu.Unlock()
		if !slices.Equal(got, want) {
			t.Errorf("%d lines written of the %d events queued at SIGTERM (first %q); stderr:\n%s",
				len(got), n, got[:min(len(got), 3)], p.errText())
		}
	})
}

// TestWatchInterruptedInAFloodEndsWithinItsBound: files are created without pause (four
// writers) while watch is sent SIGTERM. Its drain of what was queued
// (TestWatchWritesWhatWasQueuedAtSIGTERM) is bounded: it ends within drainMax and a few
// seconds, exit 0 — never a drain that lasts as long as the flood. Stopped by the bound (no
// quiet drainQuiet came) it says on stderr that events queued after those written were not
// written, and never says so before the bound. (Whether the bound or a quiet drainQuiet
// ended it cannot be told from outside: a writer starved for drainQuiet by a loaded machine
// ends the drain as drained, and the signal reaches watch some time after it is sent.)
func TestWatchInterruptedInAFloodEndsWithinItsBound(t *testing.T) {
	watchCreatesAs(t, []string{"root", "nobody"}, func(t *testing.T, d string, p *proc) {
		go func() { // more lines than p.lines holds
			for range p.lines {
			}
		}()
		stop := make(chan struct{})
		var flood sync.WaitGroup
		for w := range 4 {
			flood.Add(1)
			go func() {
				defer flood.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("%s/w%d-%d", d, w, i%500)
					if f, err := os.Create(name); err == nil {
						f.Close()
						os.Remove(name) // its next create is a CREATE again
					}
				}
			}()
		}
		defer func() { close(stop); flood.Wait() }()
		time.Sleep(300 * time.Millisecond)
		t0 := time.Now()
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
		st := p.exited(t, 20*time.Second, "still running 20 s after SIGTERM in a flood")
		took := time.Since(t0)
		if took > drainMax+3*time.Second {
			t.Errorf("exited %v after SIGTERM, want within %v and a few seconds", took, drainMax)
		}
		if st != 0 {
			t.Errorf("exit status %d, want 0; stderr:\n%s", st, p.errText())
		}
		if said := strings.Contains(p.errText(), "were not written"); said && took < drainMax-drainQuiet {
			t.Errorf("said events were not written %v after SIGTERM, before its bound (%v): the drain stopped early:\n%s", took, drainMax-drainQuiet, p.errText())
		}
	})
}

// TestWatchStoppedInAFloodHasNoGapBeforeItsOverflow: watch -e create is stopped while
// 30,000 files are created, more than any queue in front of it holds (the kernel's 16384,
// the daemon's client queue 16384). Resumed, it writes the creates in the order they
// happened, from the first, with no gap, up to a Q_OVERFLOW line where the loss is; then
// SIGTERM: exit 0, stderr's last line says events were lost (root: fanotify's
// FAN_Q_OVERFLOW; nobody: inotify's IN_Q_OVERFLOW; through the daemon: its queue for the
// stopped client, which stalls no one else).
func TestWatchStoppedInAFloodHasNoGapBeforeItsOverflow(t *testing.T) {
	watchCreatesAs(t, []string{"root", "nobody", "daemon"}, func(t *testing.T, d string, p *proc) {
		testenv.Stop(t, p.cmd.Process.Pid)
		if out, err := testenv.Sh(nil, "cd "+d+" && seq 30000 | xargs touch"); err != nil {
			t.Fatal(out, err)
		}
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
		got := p.collect(60*time.Second, func(l []string) bool {
			return len(l) > 0 && strings.TrimSpace(l[len(l)-1]) == "Q_OVERFLOW"
		})
		if len(got) == 0 || strings.TrimSpace(got[len(got)-1]) != "Q_OVERFLOW" {
			t.Fatalf("no Q_OVERFLOW line in %d lines (last %q); stderr:\n%s", len(got), got[max(len(got)-3, 0):], p.errText())
		}
		for i, l := range got[:len(got)-1] {
			if want := fmt.Sprintf("%s/ CREATE %d", d, i+1); l != want {
				t.Fatalf("line %d is %q, want %q: a gap before the overflow (or out of order)", i+1, l, want)
			}
		}
		if len(got) < 2 {
			t.Errorf("the overflow came first: none of the 30,000 creates before it")
		}
		if st := p.stop(); st != 0 {
			t.Errorf("exit status %d, want 0", st)
		}
		errLines := strings.Split(strings.TrimSpace(p.errText()), "\n")
		if last := errLines[len(errLines)-1]; !strings.HasPrefix(last, "fsnotifyd watch: events were lost ") {
			t.Errorf("stderr ends with %q, want what was lost; stderr:\n%s", last, p.errText())
		}
	})
}

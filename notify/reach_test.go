//go:build linux

package notify

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// Adversarial tests: a process tries to reach a file a guard denies (`--deny '**/*.key'`) by
// unusual ways of opening it, each of which must still meet the guard's decision.

// attackEnv makes this test binary an attacker (see attack).
const attackEnv = "FSNOTIFYD_NOTIFY_ATTACK"

func init() {
	if os.Getenv(attackEnv) == "1" {
		os.Exit(attack(os.Args[1:]))
	}
}

// attack performs one way of opening a file and prints "OK", or "ERR <errno>" when the open
// fails; anything else (a preparation that failed) exits 2. Ways:
//
//	open REL                   open(REL) from the working directory
//	opath-reopen PATH          open(PATH, O_PATH), then open(/proc/self/fd/N, O_RDONLY)
//	by-handle MOUNT TYPE HEX   open_by_handle_at(MOUNT's fd, handle, O_RDONLY); first, with
//	                           O_PATH, prints "PATH <what the kernel prints for it>"
//	openat2 DIR PATH RESOLVE   openat2(DIR's fd, PATH, O_RDONLY, resolve RESOLVE)
func attack(args []string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 2 }
	var fd int
	var err error
	switch args[0] {
	case "open":
		fd, err = sys.Open(args[1], sys.O_RDONLY, 0)
	case "opath-reopen":
		p, perr := sys.Open(args[1], sys.O_PATH, 0)
		if perr != nil {
			return fail(perr)
		}
		fd, err = sys.Open(testenv.ProcFd(p), sys.O_RDONLY, 0)
	case "by-handle":
		mnt, merr := sys.Open(args[1], sys.O_RDONLY|sys.O_DIRECTORY, 0)
		if merr != nil {
			return fail(merr)
		}
		typ, _ := strconv.Atoi(args[2])
		b, _ := hex.DecodeString(args[3])
		h := sys.FileHandle{Type: int32(typ), Bytes: b}
		p, perr := sys.OpenByHandleAt(mnt, h, sys.O_PATH)
		if perr != nil {
			return fail(perr)
		}
		printed, _ := sys.FdPath(p)
		fmt.Printf("PATH %s\n", printed)
		fd, err = sys.OpenByHandleAt(mnt, h, sys.O_RDONLY)
	case "openat2":
		dir, derr := sys.Open(args[1], sys.O_PATH|sys.O_DIRECTORY, 0)
		if derr != nil {
			return fail(derr)
		}
		resolve, _ := strconv.ParseUint(args[3], 0, 64)
		fd, err = sys.Openat2(dir, args[2], sys.O_RDONLY, 0, resolve)
	default:
		return fail(fmt.Errorf("unknown attack %q", args[0]))
	}
	var errno syscall.Errno
	switch {
	case err == nil:
		sys.Close(fd)
		fmt.Println("OK")
	case errors.As(err, &errno):
		fmt.Printf("ERR %d\n", int(errno))
	default:
		return fail(err)
	}
	return 0
}

// runAttack runs attack in a child process (in directory dir if not "") and returns the errno
// of its open (0: it opened) and what else it printed.
func runAttack(t *testing.T, dir string, args ...string) (syscall.Errno, []string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), attackEnv+"=1", "GORACE=atexit_sleep_ms=0")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("attack %v: %v\n%s", args, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if last == "OK" {
		return 0, lines[:len(lines)-1]
	}
	n, err := strconv.Atoi(strings.TrimPrefix(last, "ERR "))
	if err != nil {
		t.Fatalf("attack %v printed %q", args, out)
	}
	return syscall.Errno(n), lines[:len(lines)-1]
}

// decisions records a Guard's decisions.
type decisions struct {
	mu  sync.Mutex
	all []decided
}

type decided struct {
	path     string
	unknown  bool
	dev, ino uint64
	deny     bool
	by       string
	content  string // what Request.File read, for handler decisions
}

func (d *decisions) add(x decided) {
	d.mu.Lock()
	d.all = append(d.all, x)
	d.mu.Unlock()
}

// waitFor waits until n decisions were recorded (a decision through the daemon is recorded
// just after its answer went out) and returns them.
func (d *decisions) waitFor(t *testing.T, n int) []decided {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		got := append([]decided(nil), d.all...)
		d.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(time.Millisecond)
	}
}

// keyGuard starts a Guard of paths denying **/*.key by the guard's own policy (an unknown path
// decided as docs/policy.md says), embedded or through the daemon at sock.
func keyGuard(t *testing.T, sock string, paths ...string) *decisions {
	t.Helper()
	pol, err := policy.FromFlags([]policy.Flag{{Verdict: engine.Deny, Glob: "**/*.key"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &decisions{}
	g, err := NewGuard(GuardConfig{Paths: paths, Daemon: sock, Deadline: 10 * time.Second,
		Inline: func(r *Request) (Verdict, bool) {
			p := r.Path()
			d := pol.Decide(&policy.Request{Path: p, PathUnknown: r.PathUnknown(), Event: engine.OpenPerm, Pid: int32(r.Pid)})
			dev, ino, _ := r.Inode()
			rec.add(decided{path: p, unknown: r.PathUnknown(), dev: dev, ino: ino, deny: d.Verdict == engine.Deny, by: d.Source()})
			if d.Verdict == engine.Deny {
				return Deny, true
			}
			return Allow, true
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return rec
}

// The repro against the library Guard, embedded and through the daemon: a deep.key 22
// directories of 200 bytes below the guarded directory, opened by a relative path from a
// working directory down there, is denied, and decided once, with its path unknown and its
// inode known.
func TestGuardDecidesPathsBeyondPathMax(t *testing.T) {
	embeddedAndDaemon(t, func(t *testing.T, sock, dir string, deep testenv.DeepDir) {
		deep.WriteFile(t, "deep.key", "k")
		st := deep.Stat(t, "deep.key")
		rec := keyGuard(t, sock, dir)
		if errno, _ := runAttack(t, deep.Dir(), "open", "deep.key"); errno != syscall.EPERM {
			t.Fatalf("open of deep.key (%d-byte path): errno %d, want EPERM", len(deep.Path)+9, errno)
		}
		got := rec.waitFor(t, 1)
		if len(got) != 1 || !got[0].unknown || got[0].path != "" || !got[0].deny || got[0].by != "--deny **/*.key" ||
			got[0].ino != st.Ino || got[0].dev != st.Dev {
			t.Fatalf("decisions %+v; want one deny of an unknown path by --deny **/*.key, inode %d", got, st.Ino)
		}
	})
}

// embeddedAndDaemon runs f as two subtests, embedded (sock "") and through a daemon on sock,
// each with a scratch tmpfs dir and a directory 22 levels of 200 bytes below it.
func embeddedAndDaemon(t *testing.T, f func(t *testing.T, sock, dir string, deep testenv.DeepDir)) {
	for _, mode := range []string{"embedded", "daemon"} {
		t.Run(mode, func(t *testing.T) {
			testenv.RequireRoot(t)
			var sock string
			if mode == "daemon" {
				sock = startDaemon(t)
			}
			dir := testenv.Tmpfs(t)
			f(t, sock, dir, testenv.DeepTree(t, dir, 22, 200))
		})
	}
}

// A Handler-based Guard gets the request with its path unknown and can still read the file.
func TestGuardHandlerGetsUnknownPath(t *testing.T) {
	embeddedAndDaemon(t, func(t *testing.T, sock, dir string, deep testenv.DeepDir) {
		deep.WriteFile(t, "deep.txt", "EICAR-like content")
		rec := &decisions{}
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: sock, Deadline: 10 * time.Second},
			func(ctx context.Context, r *Request) Verdict {
				var content []byte
				if f := r.File(); f != nil {
					content = make([]byte, 64)
					n, _ := f.ReadAt(content, 0)
					content = content[:n]
					f.Close()
				}
				rec.add(decided{path: r.Path(), unknown: r.PathUnknown(), content: string(content)})
				if bytes.Contains(content, []byte("EICAR")) {
					return Deny
				}
				return Allow
			})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if errno, _ := runAttack(t, deep.Dir(), "open", "deep.txt"); errno != syscall.EPERM {
			t.Fatalf("open of deep.txt: errno %d, want EPERM (the handler read its content)", errno)
		}
		got := rec.waitFor(t, 1)
		if len(got) != 1 || !got[0].unknown || got[0].path != "" || got[0].content != "EICAR-like content" {
			t.Fatalf("handler saw %+v; want one request with its path unknown and its content readable", got)
		}
	})
}

// How a file can be reached besides its path: re-opening an O_PATH descriptor through
// /proc/self/fd, opening it by handle (on ext4 after a remount, with a dentry the kernel
// has not connected to the tree: it prints "/"), and openat2 with each RESOLVE_* flag. Each
// must meet the guard: EPERM on the key, and the same way works on a file next to it (so the
// EPERM is the guard's, not the method's).
func TestGuardUnusualOpens(t *testing.T) {
	for _, fstype := range []string{"tmpfs", "ext4"} {
		t.Run(fstype, func(t *testing.T) {
			testenv.RequireRoot(t)
			var mnt string
			if fstype == "tmpfs" {
				mnt = testenv.Tmpfs(t)
			} else {
				mnt = testenv.Ext4(t, 16)
			}
			g := filepath.Join(mnt, "g")
			if err := os.MkdirAll(filepath.Join(g, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			key, ok := filepath.Join(g, "sub", "secret.key"), filepath.Join(g, "sub", "ok.txt")
			for _, f := range []string{key, ok} {
				if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			handles := map[string]sys.FileHandle{}
			for _, f := range []string{key, ok} {
				h, _, err := sys.NameToHandleAt(sys.AT_FDCWD, f, 0)
				if err != nil {
					t.Fatal(err)
				}
				handles[f] = h
			}
			if fstype == "ext4" {
				testenv.RemountExt4(t, mnt) // nothing of it cached: a handle opens disconnected
			}
			rec := keyGuard(t, "", g)
			for _, tc := range []struct {
				name string
				args func(file string) []string
			}{
				// First, while nothing below g is cached on the remounted ext4.
				{"open_by_handle_at", func(f string) []string {
					h := handles[f]
					return []string{"by-handle", mnt, strconv.Itoa(int(h.Type)), hex.EncodeToString(h.Bytes)}
				}},
				{"O_PATH re-open through /proc/self/fd", func(f string) []string { return []string{"opath-reopen", f} }},
				{"openat2 RESOLVE_BENEATH", func(f string) []string {
					return []string{"openat2", g, "sub/" + filepath.Base(f), strconv.Itoa(sys.RESOLVE_BENEATH)}
				}},
				{"openat2 RESOLVE_IN_ROOT", func(f string) []string {
					return []string{"openat2", g, "/sub/" + filepath.Base(f), strconv.Itoa(sys.RESOLVE_IN_ROOT)}
				}},
				{"openat2 RESOLVE_NO_SYMLINKS", func(f string) []string {
					return []string{"openat2", "/", f[1:], strconv.Itoa(sys.RESOLVE_NO_SYMLINKS)}
				}},
				{"openat2 RESOLVE_NO_MAGICLINKS", func(f string) []string {
					return []string{"openat2", filepath.Dir(f), filepath.Base(f), strconv.Itoa(sys.RESOLVE_NO_MAGICLINKS | sys.RESOLVE_NO_XDEV)}
				}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					from := len(rec.waitFor(t, 0))
					errno, out := runAttack(t, "", tc.args(key)...)
					if errno != syscall.EPERM {
						t.Fatalf("%v: errno %d (%v), want EPERM; decisions %+v", tc.args(key), errno, out, rec.waitFor(t, 0)[from:])
					}
					disconnected := tc.name == "open_by_handle_at" && fstype == "ext4"
					if disconnected {
						// The kernel prints a path that does not lead to the file: the guard
						// must not take it (before, "/" put the key outside the guarded tree).
						t.Logf("the kernel prints the handle-opened key as %q", out)
						if len(out) != 1 || out[0] == "PATH "+key {
							t.Fatalf("on the remounted ext4 the key opened by handle printed %q: the test needs a disconnected dentry", out)
						}
						if d := rec.waitFor(t, from+1)[from:]; len(d) != 1 || !d[0].unknown || !d[0].deny {
							t.Fatalf("decisions %+v, want one deny of an unknown path", d)
						}
					}
					errno, _ = runAttack(t, "", tc.args(ok)...)
					switch {
					case disconnected && errno != syscall.EPERM:
						// Its place is unknown too, so a deny rule may match it: denied (the
						// documented cost; a rule on every path with a condition on the
						// process would allow it).
						t.Fatalf("ok.txt opened by a disconnected handle: errno %d, want EPERM (path unknown)", errno)
					case !disconnected && errno != 0:
						t.Fatalf("the same way to ok.txt: errno %d, want it to open", errno)
					}
				})
			}
		})
	}
}

// A recursive Watcher, embedded and through the daemon, reports what happens deeper than
// PATH_MAX below it by its full path — a directory-entry event and an open alike: the FID
// group names both by the directory's handle, which leads there at any depth, and a name.
func TestWatcherRecursivePathsBeyondPathMax(t *testing.T) {
	embeddedAndDaemon(t, func(t *testing.T, sock, dir string, deep testenv.DeepDir) {
		deep.WriteFile(t, "deep.txt", "d")
		var opts []Option
		if sock != "" {
			opts = append(opts, WithDaemon(sock))
		}
		w, err := New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.AddWith(dir, WithRecursive(), WithOps(Create|Open)); err != nil {
			t.Fatal(err)
		}
		deep.WriteFile(t, "new.txt", "n") // its open is reported too, by this process
		until(t, w, is(Create, deep.Path+"/new.txt"))
		if errno, _ := runAttack(t, deep.Dir(), "open", "deep.txt"); errno != 0 {
			t.Fatalf("open of deep.txt: errno %d", errno)
		}
		got := until(t, w, func(ev Event) bool {
			return ev.Has(Open) && !ev.PathUnknown && ev.Name == deep.Path+"/deep.txt" && ev.Pid > 0 && ev.Pid != os.Getpid()
		})
		t.Logf("the open of deep.txt: %v (pid %d)", got[len(got)-1], got[len(got)-1].Pid)
	})
}

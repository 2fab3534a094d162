//go:build linux

package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// fsnWithin is fsn for a command that must end by itself within d: one still running then is
// killed (with its process group) and timedOut is true, so that a test of a refusal does not
// hang where the command would not refuse.
func fsnWithin(t *testing.T, d time.Duration, args ...string) (stdout, stderr string, status int, timedOut bool) {
	t.Helper()
	return fsnWithinAs(t, nil, d, args...)
}

// fsnWithinAs is fsnWithin run with the credentials cred (nil: this process's).
func fsnWithinAs(t *testing.T, cred *syscall.Credential, d time.Duration, args ...string) (stdout, stderr string, status int, timedOut bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), exitStatus(err), ctx.Err() != nil
}

// TestParseDuration: a duration flag takes a Go duration or a plain number of seconds, whole;
// anything else is refused, with the accepted forms, never misread (1h30 as 1s, 2,5 as 2s) or
// taken as a value the guard's engine then refuses (1e10 s overflows time.Duration).
func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  string // "" accepted; else in the error
	}{
		{"0", 0, ""},
		{"5", 5 * time.Second, ""},
		{"0.5", 500 * time.Millisecond, ""},
		{".25", 250 * time.Millisecond, ""},
		{"1e3", 1000 * time.Second, ""},
		{"300ms", 300 * time.Millisecond, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"2562047h", 2562047 * time.Hour, ""},
		{"9223372036", 9223372036 * time.Second, ""},
		{"-0", 0, ""},
		{"1h30", 0, `missing unit in duration "1h30"`},
		{"5m30", 0, `missing unit in duration "5m30"`},
		{"2,5", 0, "a comma"},
		{"5s ", 0, `unknown unit "s "`},
		{"5x", 0, `unknown unit "x"`},
		{"0x10", 0, `unknown unit "x"`},
		{"", 0, "invalid duration"},
		{"1e10", 0, "too long: at most 9223372036 seconds"},
		{"9223372037", 0, "too long"},
		{"1e400", 0, "too long"},
		{"3000000h", 0, "invalid duration"},
		{"inf", 0, "not a finite number"},
		{"-Inf", 0, "not a finite number"},
		{"+infinity", 0, "not a finite number"},
		{"nan", 0, "not a finite number"},
		{"NaN", 0, "not a finite number"},
		{"-1", 0, "negative"},
		{"-0.5", 0, "negative"},
		{"-1s", 0, "negative"},
		// A positive value below a nanosecond is not 0, which for --deadline means forever.
		{"1e-10", 0, "shorter than a nanosecond"},
		{"1e-400", 0, "shorter than a nanosecond"},
		{"0.5ns", 0, "shorter than a nanosecond"},
		{"0.0000000001s", 0, "shorter than a nanosecond"},
		{"0.000000001", time.Nanosecond, ""},
		{"0s", 0, ""},
		{"0.0", 0, ""},
		{"0e5", 0, ""},
	} {
		var d durationValue
		err := d.Set(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v, want %v", tt.in, err, tt.want)
		case tt.err == "" && time.Duration(d) != tt.want:
			t.Errorf("%q: %v, want %v", tt.in, time.Duration(d), tt.want)
		case tt.err != "" && err == nil:
			t.Errorf("%q: accepted as %v, want an error with %q", tt.in, time.Duration(d), tt.err)
		case tt.err != "" && (!strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), durationForms)):
			t.Errorf("%q: error %q, want %q and the accepted forms", tt.in, err, tt.err)
		}
	}
}

// TestDurationFlagsRefuseMisreadValues: every duration flag refuses what parseDuration refuses
// with a usage error (exit 2) naming the flag, the value and the accepted forms, before the
// command does anything.
func TestDurationFlagsRefuseMisreadValues(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string // the command; the flag and value follow
		flag string
	}{
		{[]string{"guard", "--deny", "/x", dir}, "--deadline"},
		{[]string{"guard", "--deny", "/x", dir}, "--reload-interval"},
		{[]string{"guard", "--deny", "/x", dir}, "--nats-timeout"},
		{[]string{"watch", dir}, "--timeout"},
		{[]string{"trace", dir}, "--timeout"},
		{[]string{"fleet", "tail"}, "--since"},
		{[]string{"fleet", "tail"}, "--timeout"},
		{[]string{"fleet", "tail"}, "--nats-timeout"},
		{[]string{"policy", "status"}, "--nats-timeout"},
		{[]string{"fleet", "init"}, "--stream-max-age"},
		{[]string{"serve", "--socket", filepath.Join(dir, "s.sock")}, "--stream-max-age"},
		{[]string{"serve", "--socket", filepath.Join(dir, "s.sock")}, "--nats-timeout"},
	} {
		for _, v := range []string{"1h30", "2,5", "1e10", "inf", "nan", "-1"} {
			args := append(append([]string(nil), tt.args...), tt.flag, v)
			out, errOut, st, timedOut := fsnWithin(t, 5*time.Second, args...)
			want := `invalid value "` + v + `" for flag ` + tt.flag + ": "
			if timedOut || st != exitUsage || out != "" || !strings.Contains(errOut, want) || !strings.Contains(errOut, durationForms) {
				t.Errorf("fsnotifyd %s: exit %d (still running after 5s: %v), stdout %q, stderr %q; want exit 2 with %q and the accepted forms", strings.Join(args, " "), st, timedOut, out, errOut, want)
			}
		}
	}
}

// helpCommands is every command and subcommand that has a --help of its own.
var helpCommands = []string{"watch", "trace", "guard", "serve", "stats", "trust add", "trust list", "trust check",
	"policy check", "policy explain", "policy push", "policy status", "fleet init", "fleet tail"}

// TestHelpStatesEachDefaultOnce: each flag's line in --help gives its default at most once,
// and never a second, different one: "deny (default) or allow (default deny)", "(default 1s;
// 0: only on SIGHUP) (default 1s)", or "(default: the number of CPUs) (default 2)", which
// reads as if 2 were the default on every machine.
func TestHelpStatesEachDefaultOnce(t *testing.T) {
	for _, c := range helpCommands {
		out, errOut, st := fsn(t, append(strings.Fields(c), "--help")...)
		_, flags, ok := strings.Cut(out, "\nFlags:\n")
		if st != 0 || errOut != "" || !ok {
			t.Errorf("%s --help: exit %d, stderr %q, no Flags: section in\n%s", c, st, errOut, out)
			continue
		}
		for _, line := range strings.Split(flags, "\n") {
			if n := strings.Count(line, "(default"); n > 1 {
				t.Errorf("%s --help: %q gives a default %d times, want at most once", c, strings.TrimSpace(line), n)
			}
		}
	}
}

// TestReadmeSynopsisMatchesHelp: the README's command table gives each command the synopsis
// its --help gives (a flag added to one and not the other, guard's --mount and
// --reload-interval, leaves the reader of the other without it).
func TestReadmeSynopsisMatchesHelp(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"watch", "trace", "guard", "serve", "stats", "policy check", "fleet init", "fleet tail"} {
		out, _, _ := fsn(t, append(strings.Fields(c), "--help")...)
		usage, _, _ := strings.Cut(strings.TrimPrefix(out, "Usage: "), "\n")
		// The README's table escapes | as \|.
		want := "| `" + strings.ReplaceAll(usage, "|", `\|`) + "` |"
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md has no table row for %s starting %s", c, want)
		}
	}
}

// TestUnreadablePathSaysWhatToDo: a user who names a path it may not read (a directory of
// mode 0700, or a file in one) is told which path, that permission is denied and what to do,
// in one line on stderr, exit 1, whether the stat or the watch (inotify_add_watch needs read
// permission on the directory) is refused: not the backend's raw
// "inotify_add_watch(P, MOVE_SELF|DONT_FOLLOW|MASK_ADD): permission denied".
func TestUnreadablePathSaysWhatToDo(t *testing.T) {
	testenv.RequireRoot(t)
	priv := filepath.Join(testenv.PublicTmpfs(t), "priv")
	if err := os.Mkdir(priv, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(priv, "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	for _, tt := range []struct {
		args []string
		path string
	}{
		{[]string{"watch", priv}, priv},
		{[]string{"watch", "-r", priv}, priv},
		{[]string{"watch", secret}, secret},
		{[]string{"trace", priv}, priv},
		{[]string{"trace", secret}, secret},
	} {
		args := append(append([]string(nil), tt.args...), "--timeout", "2s")
		out, errOut, st, timedOut := fsnWithinAs(t, nobody, 10*time.Second, args...)
		want := tt.path + ": permission denied (run as a user who can read it, or as root)"
		last := strings.TrimSpace(errOut)
		last = last[strings.LastIndex(last, "\n")+1:]
		if timedOut || st != exitRuntime || out != "" || last != "fsnotifyd "+tt.args[0]+": "+want {
			t.Errorf("fsnotifyd %s as uid 65534: exit %d (still running: %v), stdout %q, stderr %q; want exit 1 ending %q", strings.Join(args, " "), st, timedOut, out, errOut, want)
		}
	}
}

// TestFlagsRefuseBadValuesAndStrays: a flag's value that is not of its type says what the
// flag wants (not strconv's "parse error"); a count below what it can mean is refused, not
// silently replaced (guard --concurrency 0 ran 64 scanners); and a flag that only means
// something with another (serve's --spool without --export, guard's --policy-state without
// --policy-from) is refused naming both, as --nats-creds is, not silently ignored. Each is a
// usage error (exit 2), one line on stderr, nothing on stdout, before the command starts.
func TestFlagsRefuseBadValuesAndStrays(t *testing.T) {
	dir := testenv.Tmpfs(t) // a guard not refused must not mark the machine's filesystem
	sock := filepath.Join(dir, "s.sock")
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"watch", "-n", "abc", dir}, `invalid value "abc" for flag -n: want a whole number`},
		{[]string{"trace", "--count", "1.5", dir}, `invalid value "1.5" for flag --count: want a whole number`},
		{[]string{"trust", "check", "-j", "abc"}, `invalid value "abc" for flag -j: want a whole number`},
		{[]string{"serve", "--socket", sock, "--spool-max-bytes", "1G"}, `invalid value "1G" for flag --spool-max-bytes: want a whole number`},
		{[]string{"fleet", "tail", "--seq", "x"}, `invalid value "x" for flag --seq: want a whole number`},
		{[]string{"watch", "--json=maybe", dir}, `invalid value "maybe" for flag --json: want true or false`},
		// inotifywait's -mr: flag cannot group one-letter flags; it said "unknown flag --mr".
		{[]string{"watch", "-mr", dir}, "unknown flag -mr: one-letter flags cannot be grouped; write -m -r"},
		{[]string{"trace", "-qj", dir}, "unknown flag -qj: one-letter flags cannot be grouped; write -q -j"},
		{[]string{"watch", "-rx", dir}, "unknown flag -rx (see"}, // no -x: not a group; spelt as given (it said --rx)
		{[]string{"watch", "--mr", dir}, "unknown flag --mr"},
		{[]string{"guard", "--exec", "true", "--concurrency", "0", dir}, "--concurrency 0: want at least 1"},
		{[]string{"guard", "--exec", "true", "--concurrency", "-1", dir}, "--concurrency -1: want at least 1"},
		{[]string{"serve", "--socket", sock, "--spool", dir}, "--spool is for --export; give --export nats://HOST:PORT"},
		{[]string{"serve", "--socket", sock, "--spool-max-bytes", "-5"}, "--spool-max-bytes is for --export"},
		{[]string{"serve", "--socket", sock, "--stream-max-age", "1h"}, "--stream-max-age is for --export"},
		{[]string{"serve", "--socket", sock, "--stream-max-bytes", "1000"}, "--stream-max-bytes is for --export"},
		{[]string{"serve", "--socket", sock, "--nats-timeout", "1s"}, "--nats-timeout is for --export"},
		{[]string{"guard", "--deny", "/x", "--policy-state", dir, dir}, "--policy-state is for --policy-from; give --policy-from nats://HOST:PORT/BUCKET/KEY"},
		{[]string{"guard", "--deny", "/x", "--nats-timeout", "1s", dir}, "--nats-timeout is for --policy-from"},
		// A negative count names its flag and value: fleet tail said "--seq and -n must not be
		// negative" for -n -3, serve "--spool-max-bytes, --stream-max-bytes and
		// --stream-max-age take positive values" for one of them.
		{[]string{"watch", "-n", "-3", dir}, "-n -3: must not be negative"},
		{[]string{"trace", "--count", "-3", dir}, "-n -3: must not be negative"},
		{[]string{"fleet", "tail", "-n", "-3"}, "fleet tail: -n -3: must not be negative"},
		{[]string{"fleet", "tail", "--seq", "-2"}, "fleet tail: --seq -2: must not be negative"},
		{[]string{"fleet", "init", "--stream-max-bytes", "-1"}, "fleet init: --stream-max-bytes -1: must not be negative"},
		{[]string{"serve", "--socket", sock, "--export", "nats://127.0.0.1:1", "--spool-max-bytes", "-5"}, "serve: --spool-max-bytes -5: must not be negative"},
		{[]string{"serve", "--socket", sock, "--export", "nats://127.0.0.1:1", "--stream-max-bytes", "-5"}, "serve: --stream-max-bytes -5: must not be negative"},
		{[]string{"policy", "push", "--if-revision", "-1", "x.rules"}, "policy push: --if-revision -1: must not be negative"},
		// A key no guard may follow was refused only once NATS answered (unreachable: said
		// nothing of the key), as a runtime error; guard --policy-from refuses it at once.
		{[]string{"policy", "push", "x.rules", "--key", "status.web-1", "--nats", "nats://127.0.0.1:1"}, `policy push: --key: policy key "status.web-1": keys under status. are the hosts' status entries`},
		{[]string{"policy", "status", "--key", ">", "--nats", "nats://127.0.0.1:1"}, `policy status: --key: policy key ">"`},
		{[]string{"policy", "push", "x.rules", "--key", "", "--nats", "nats://127.0.0.1:1"}, "policy push: --key: empty policy key"},
	} {
		out, errOut, st, timedOut := fsnWithin(t, 5*time.Second, tt.args...)
		if timedOut || st != exitUsage || out != "" || !strings.Contains(errOut, tt.msg) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("fsnotifyd %s: exit %d (still running after 5s: %v), stdout %q, stderr %q; want exit 2 and one line with %q", strings.Join(tt.args, " "), st, timedOut, out, errOut, tt.msg)
		}
	}
}

// TestTraceHelpMatchesUnprivilegedTrace: an unprivileged trace of PATHs runs (on inotify)
// and prints lines without the process, "?(?)"; its --help must say so, not that tracing
// needs root (what it said, while the trace ran).
func TestTraceHelpMatchesUnprivilegedTrace(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	out, errOut, st, timedOut := fsnWithinAs(t, &syscall.Credential{Uid: 65534, Gid: 65534}, 10*time.Second, "trace", "--timeout", "1s", dir)
	if timedOut || st != exitOK || !strings.Contains(out, " ?(?): ") {
		t.Fatalf("trace %s as uid 65534: exit %d (still running: %v), stdout %q, stderr %q; want exit 0 and lines with ?(?)", dir, st, timedOut, out, errOut)
	}
	// With no PATH (every filesystem) it is refused, saying that, not naming the first
	// filesystem tried ("/dev/shm: filesystem watch: needs root ...").
	want := "fsnotifyd trace: tracing every filesystem (no --mount, --fs or PATH) needs root"
	out, errOut, st, timedOut = fsnWithinAs(t, &syscall.Credential{Uid: 65534, Gid: 65534}, 10*time.Second, "trace", "-q", "--timeout", "1s")
	if timedOut || st != exitRuntime || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("trace (every filesystem) as uid 65534: exit %d (still running: %v), stdout %q, stderr %q; want exit 1 and one line starting %q", st, timedOut, out, errOut, want)
	}
	help, _, _ := fsn(t, "trace", "--help")
	if strings.Contains(help, "Tracing needs root") || !strings.Contains(help, "?(?)") {
		t.Errorf("trace --help says tracing needs root, or not what an unprivileged trace of PATHs prints (?(?)):\n%s", help)
	}
}

// TestFileFlagErrorsAreRuntimeErrors: a FILE named by a flag that is missing or does not parse
// is a runtime error (exit 1) in every command, one line on stderr naming the flag and the
// file: serve --export-config's exited 2, as a usage error, while serve --config's, guard
// --policy's, watch --fromfile's and trust -f's exited 1.
func TestFileFlagErrorsAreRuntimeErrors(t *testing.T) {
	dir := testenv.Tmpfs(t) // a guard not refused must not mark the machine's filesystem
	missing := filepath.Join(dir, "missing")
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("export frobnicate /etc/**\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"serve", "--socket", sock, "--config", missing}, "--config: open " + missing + ": no such file or directory"},
		{[]string{"serve", "--socket", sock, "--export", "nats://127.0.0.1:1", "--export-config", missing}, "--export-config: open " + missing + ": no such file or directory"},
		{[]string{"serve", "--socket", sock, "--export", "nats://127.0.0.1:1", "--export-config", bad}, "--export-config: " + bad + ":1: export: unknown event"},
		{[]string{"guard", "--policy", missing, dir}, "--policy: open " + missing + ": no such file or directory"},
		{[]string{"watch", "--fromfile", missing, dir}, "--fromfile " + missing + ": no such file or directory"},
		{[]string{"watch", "--fromfile", dir, dir}, "watch: --fromfile " + dir + ": is a directory: want a file of paths, one a line (- for stdin)"},
		{[]string{"trust", "list", "-f", missing}, missing + ": no such file or directory"},
		// The NATS files were usage errors (exit 2, "see --help"), in every command that takes them.
		{[]string{"policy", "status", "--nats", "nats://127.0.0.1:1", "--nats-creds", missing}, "policy status: --nats-creds: open " + missing + ": no such file or directory"},
		{[]string{"fleet", "tail", "--nats", "nats://127.0.0.1:1", "--nats-tls-ca", missing}, "fleet tail: --nats-tls-ca: open " + missing + ": no such file or directory"},
		{[]string{"serve", "--socket", sock, "--export", "nats://127.0.0.1:1", "--nats-creds", missing}, "serve: --export: --nats-creds: open " + missing + ": no such file or directory"},
		{[]string{"guard", "--policy-from", "nats://127.0.0.1:1/b/k", "--nats-tls-ca", missing, dir}, "guard: --policy-from: --nats-tls-ca: open " + missing + ": no such file or directory"},
	} {
		out, errOut, st, timedOut := fsnWithin(t, 5*time.Second, tt.args...)
		if timedOut || st != exitRuntime || out != "" || !strings.Contains(errOut, tt.msg) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("fsnotifyd %s: exit %d (still running after 5s: %v), stdout %q, stderr %q; want exit 1 and one line with %q", strings.Join(tt.args, " "), st, timedOut, out, errOut, tt.msg)
		}
	}
}

// TestTrustDirFlagsSayWhatIsWrong: a trust directory flag (--dir; guard's and explain's
// --trust-dir) that names no directory was read as an empty one, and one given with a file
// flag was not read at all, both without a word: a typo left every trust file out. Missing,
// it is a runtime error naming it (exit 1; policy explain's 2, its 1 being "denied"); with a
// file flag, a usage error (exit 2). One line on stderr, nothing on stdout.
func TestTrustDirFlagsSayWhatIsWrong(t *testing.T) {
	dir := testenv.Tmpfs(t) // a guard not refused must not mark the machine's filesystem
	missing := filepath.Join(dir, "missing")
	tf := filepath.Join(dir, "local.trust")
	rules := filepath.Join(dir, "exec.rules")
	writeFile(t, tf, "")
	writeFile(t, rules, "allow exec ** trusted=yes\ndeny exec **\n")
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"trust", "list", "--dir", missing}, exitRuntime, "fsnotifyd trust list: --dir " + missing + ": no such file or directory"},
		{[]string{"trust", "check", "--dir", missing}, exitRuntime, "fsnotifyd trust check: --dir " + missing + ": no such file or directory"},
		{[]string{"trust", "list", "--dir", dir, "--file", tf}, exitUsage, "fsnotifyd trust list: --dir is read only when no --file is given"},
		{[]string{"guard", "--trust-dir", missing, "--policy", rules, dir}, exitRuntime, "fsnotifyd guard: --trust-dir " + missing + ": no such file or directory"},
		{[]string{"guard", "--trust-dir", dir, "--trust", tf, "--policy", rules, dir}, exitUsage, "fsnotifyd guard: --trust-dir is read only when no --trust is given"},
		{[]string{"policy", "explain", rules, "--event", "exec", "--path", tf, "--uid", "0", "--trust-dir", missing}, exitUsage, "fsnotifyd policy explain: --trust-dir " + missing + ": no such file or directory"},
		// A trust file that cannot be read exited 1, which says "denied".
		{[]string{"policy", "explain", rules, "--event", "exec", "--path", tf, "--uid", "0", "--trust", missing}, exitUsage, missing},
	} {
		out, errOut, st, timedOut := fsnWithin(t, 10*time.Second, tt.args...)
		if timedOut || st != tt.code || out != "" || !strings.Contains(errOut, tt.msg) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("fsnotifyd %s: exit %d (still running after 10s: %v), stdout %q, stderr %q; want exit %d and one line with %q", strings.Join(tt.args, " "), st, timedOut, out, errOut, tt.code, tt.msg)
		}
	}
}

// TestDaemonSocketAsSeparateArgument: "--daemon SOCKET" (a space, not =) took SOCKET as a
// PATH and dialled the default socket: "daemon unavailable at /run/fsnotifyd/fsnotifyd.sock",
// or, with a daemon there, watched the socket file. A unix socket right after --daemon is
// refused, saying to write --daemon=SOCKET (exit 2); a directory there is a PATH, as before.
func TestDaemonSocketAsSeparateArgument(t *testing.T) {
	dir := testenv.Tmpfs(t) // a guard not refused must not mark the machine's filesystem
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := "--daemon takes its socket as --daemon=SOCKET: " + sock + " is a socket, not a path (write --daemon=" + sock + ")"
	for _, args := range [][]string{
		{"watch", "--daemon", sock, dir},
		{"trace", "--daemon", sock, dir},
		{"guard", "--daemon", sock, "--deny", "/x", dir},
	} {
		out, errOut, st, timedOut := fsnWithin(t, 5*time.Second, args...)
		if timedOut || st != exitUsage || out != "" || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("fsnotifyd %s: exit %d (still running after 5s: %v), stdout %q, stderr %q; want exit 2 and one line with %q", strings.Join(args, " "), st, timedOut, out, errOut, want)
		}
	}
	// --daemon before a directory still runs through the default socket (exit 1 where no
	// daemon listens there, 0 where one does): not a usage error.
	if _, errOut, st, _ := fsnWithin(t, 5*time.Second, "watch", "-q", "--daemon", dir, "--timeout", "0.5s"); st == exitUsage || strings.Contains(errOut, "--daemon=SOCKET") {
		t.Errorf("watch --daemon DIR: exit %d, stderr %q; want the default socket dialled, not a usage error", st, errOut)
	}
}

// TestServeUnprivilegedRefusesAtStart: serve needs root (its help says so); run by another
// user it started, said "fsnotifyd serving", and refused every client's mark with "the daemon
// refused (internal): checking your access: setgroups: operation not permitted". It now
// refuses to start, saying so, exit 1, and leaves no socket.
func TestServeUnprivilegedRefusesAtStart(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(testenv.PublicTmpfs(t), "pub")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	syscall.Chmod(dir, 0o1777) // sticky, as /tmp: fine for a socket (os.Chmod takes os.ModeSticky)
	sock := filepath.Join(dir, "s.sock")
	out, errOut, st, timedOut := fsnWithinAs(t, &syscall.Credential{Uid: 65534, Gid: 65534}, 5*time.Second, "serve", "--socket", sock)
	want := "fsnotifyd serve: needs root"
	if timedOut || st != exitRuntime || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("serve as uid 65534: exit %d (still serving after 5s: %v), stdout %q, stderr %q; want exit 1 and one line starting %q", st, timedOut, out, errOut, want)
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("serve as uid 65534 left its socket %s", sock)
	}
}

// TestOpenExecUnprivilegedIsSaid: inotify, which an unprivileged watch or trace runs on, has
// no OPEN_EXEC. "-e open_exec" alone reported nothing, exit 0, without a word; it is now a
// runtime error (exit 1) saying why and what to do, one line after "Setting up watches.";
// with other events, a warning on stderr, and the others are reported.
func TestOpenExecUnprivilegedIsSaid(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	const why = "-e open_exec: not reported unprivileged (inotify has no such event; an exec's open is reported as open): run as root or with --daemon"
	for _, cmd := range []string{"watch", "trace"} {
		out, errOut, st, timedOut := fsnWithinAs(t, nobody, 10*time.Second, cmd, "-q", "-e", "open_exec", "--timeout", "1s", dir)
		if timedOut || st != exitRuntime || out != "" || strings.TrimSpace(errOut) != "fsnotifyd "+cmd+": "+why {
			t.Errorf("%s -e open_exec as uid 65534: exit %d (still running: %v), stdout %q, stderr %q; want exit 1 and the one line %q", cmd, st, timedOut, out, errOut, why)
		}
		out, errOut, st, timedOut = fsnWithinAs(t, nobody, 10*time.Second, cmd, "-q", "-e", "open,open_exec", "--timeout", "1s", dir)
		if timedOut || st != exitOK || strings.TrimSpace(errOut) != "fsnotifyd "+cmd+": "+why+"; the other events are reported" {
			t.Errorf("%s -e open,open_exec as uid 65534: exit %d (still running: %v), stderr %q; want exit 0 and the warning %q", cmd, st, timedOut, errOut, why)
		}
	}
	// As root (fanotify) it is asked of the kernel: no word.
	if _, errOut, st, timedOut := fsnWithin(t, 10*time.Second, "watch", "-q", "-e", "open_exec", "--timeout", "0.5s", dir); timedOut || st != exitOK || errOut != "" {
		t.Errorf("watch -e open_exec as root: exit %d (still running: %v), stderr %q; want exit 0, nothing on stderr", st, timedOut, errOut)
	}
}

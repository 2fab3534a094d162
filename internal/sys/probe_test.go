package sys_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	. "github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestProbeAll: as root on the target kernel (Linux 6.18) every feature is there.
func TestProbeAll(t *testing.T) {
	testenv.RequireRoot(t)
	ResetProbes()
	for _, f := range Features() {
		s, err := Probe(f)
		t.Logf("%-28s %v", f, s)
		if s != Supported || err != nil {
			t.Errorf("%v: %v, %v; want supported on Linux 6.18", f, s, err)
		}
		if err := Require(f); err != nil {
			t.Errorf("Require(%v) = %v", f, err)
		}
	}
}

// TestProbeCachedConcurrent: concurrent first calls agree (run with -race), and a cached
// answer costs no allocation.
func TestProbeCachedConcurrent(t *testing.T) {
	testenv.RequireRoot(t)
	ResetProbes()
	features := Features()
	results := make([][]Support, 16)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			for _, f := range features {
				s, _ := Probe(f)
				results[i] = append(results[i], s)
			}
		})
	}
	wg.Wait()
	for i := range results {
		for j, s := range results[i] {
			if s != results[0][j] {
				t.Errorf("goroutine %d: %v is %v, goroutine 0 says %v", i, features[j], s, results[0][j])
			}
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range features {
			Probe(f)
		}
	})
	if allocs != 0 {
		t.Errorf("cached probes allocate %.1f times", allocs)
	}
	if s, err := Probe(0); s != Unknown || err == nil {
		t.Errorf("Probe(0) = %v, %v", s, err)
	}
}

func TestProbePreAccess(t *testing.T) {
	testenv.RequireRoot(t)
	ResetProbes()
	tmp := testenv.Tmpfs(t)
	ext := testenv.Ext4(t, 16)
	sub := filepath.Join(ext, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		path         string
		want         Support
		notSupported bool
		errno        error
		msg          string
	}{
		{"tmpfs", tmp, Unsupported, true, syscall.EOPNOTSUPP, "FAN_PRE_ACCESS on " + tmp + ": not supported by this filesystem"},
		{"tmpfs cached", tmp, Unsupported, true, syscall.EOPNOTSUPP, "FAN_PRE_ACCESS on " + tmp + ": not supported"},
		{"ext4", ext, Supported, false, nil, ""},
		{"ext4 other path, cached", sub, Supported, false, nil, ""},
		{"missing path", filepath.Join(ext, "missing"), Unknown, false, syscall.ENOENT, "cannot tell"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ProbePreAccess(tc.path)
			if s != tc.want {
				t.Errorf("ProbePreAccess = %v (%v), want %v", s, err, tc.want)
			}
			if errors.Is(err, ErrNotSupported) != tc.notSupported {
				t.Errorf("errors.Is(%v, ErrNotSupported) = %v", err, !tc.notSupported)
			}
			if tc.errno != nil && !errors.Is(err, tc.errno) {
				t.Errorf("error %v does not wrap %v", err, tc.errno)
			}
			if (err == nil) != (tc.msg == "") || err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want one containing %q", err, tc.msg)
			}
			if rerr := RequirePreAccess(tc.path); (rerr == nil) != (err == nil) {
				t.Errorf("RequirePreAccess = %v, ProbePreAccess error %v", rerr, err)
			}
		})
	}
}

// TestProbeUnprivileged runs TestProbeChild as nobody: what needs CAP_SYS_ADMIN (permission
// classes, filesystem marks, FAN_REPORT_PIDFD) is Unknown, never Unsupported; the rest is
// answered through FID groups, which unprivileged users may create.
func TestProbeUnprivileged(t *testing.T) {
	testenv.RequireRoot(t)
	out, err := testenv.RunTestAs(t, 65534, 65534, "TestProbeChild")
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child as nobody:\n%s", out)
	for _, want := range []string{
		"probe fanotify: supported",
		"probe inotify: supported",
		"probe FAN_CLASS_CONTENT: unknown",
		"probe FAN_PRE_ACCESS: unknown",
		"probe FAN_REPORT_FID: supported",
		"probe FAN_REPORT_DFID_NAME: supported",
		"probe FAN_RENAME: supported",
		"probe FAN_MARK_FILESYSTEM: unknown",
		"probe FAN_MARK_EVICTABLE: supported",
		"probe FAN_MARK_IGNORE: supported",
		"probe FAN_REPORT_PIDFD: unknown",
		"probe FAN_REPORT_MNT: supported",
		"probe unprivileged fanotify: supported",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}

func TestProbeChild(t *testing.T) {
	if !testenv.IsChild() {
		t.Skip("runs as a child of TestProbeUnprivileged")
	}
	for _, f := range Features() {
		s, err := Probe(f)
		t.Logf("probe %v: %v (%v)", f, s, err)
		if s == Unknown && errors.Is(err, ErrNotSupported) {
			t.Errorf("%v: unknown but ErrNotSupported", f)
		}
	}
}

//go:build linux

package testenv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

const (
	tmpfsMagic = 0x01021994
	ext4Magic  = 0xef53
)

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func TestFixtures(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		mount func(t *testing.T) string
		magic int64
	}{
		{"tmpfs", func(t *testing.T) string { return testenv.Tmpfs(t) }, tmpfsMagic},
		{"ext4", func(t *testing.T) string { return testenv.Ext4(t, 16) }, ext4Magic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dir string
			var open *os.File
			t.Run("mount", func(t *testing.T) {
				dir = tc.mount(t)
				if !testenv.IsMountPoint(t, dir) {
					t.Fatalf("%s is not a mount point", dir)
				}
				fs, err := sys.Statfs(dir)
				if err != nil {
					t.Fatal(err)
				}
				if fs.Type != tc.magic {
					t.Errorf("f_type %#x, want %#x", fs.Type, tc.magic)
				}
				if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
					t.Fatal(err)
				}
				// Leave a file open past the cleanup: it must still unmount (lazily).
				f, err := os.Open(filepath.Join(dir, "f"))
				if err != nil {
					t.Fatal(err)
				}
				open = f
			})
			if dir == "" {
				t.Fatal("no mount")
			}
			defer open.Close()
			if mounted(t, dir) {
				t.Errorf("%s still mounted after cleanup", dir)
			}
		})
	}
}

func TestExt4ReleasesLoopDevice(t *testing.T) {
	testenv.RequireRoot(t)
	var img string
	t.Run("mount", func(t *testing.T) {
		dir := testenv.Ext4(t, 8)
		img = filepath.Join(filepath.Dir(dir), "ext4.img")
	})
	// The loop device detaches once the lazily unmounted filesystem is released; the kernel
	// may take a moment, so look a few times.
	for range 50 {
		if !loopBacks(t, img) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("a loop device still backs %s", img)
}

// loopBacks reports whether a loop device has file as backing file.
func loopBacks(t *testing.T, file string) bool {
	t.Helper()
	matches, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			continue // detached meanwhile
		}
		if strings.HasPrefix(strings.TrimSpace(string(data)), file) {
			return true
		}
	}
	return false
}

package sys

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAccessAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch filesystem credentials")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	private := filepath.Join(dir, "private")
	public := filepath.Join(dir, "public")
	os.WriteFile(private, []byte("p"), 0o600)
	os.WriteFile(public, []byte("p"), 0o644)
	groupOnly := filepath.Join(dir, "group")
	os.WriteFile(groupOnly, []byte("g"), 0o640)
	os.Chown(groupOnly, 0, 4242)
	tests := []struct {
		path   string
		uid    uint32
		gid    uint32
		groups []uint32
		want   bool
	}{
		{private, 65534, 65534, nil, false},
		{public, 65534, 65534, nil, true},
		{private, 0, 0, nil, true},
		{groupOnly, 65534, 65534, nil, false},
		{groupOnly, 65534, 65534, []uint32{4242}, true},
		{groupOnly, 65534, 4242, nil, true},
	}
	for _, tt := range tests {
		fd, err := Open(tt.path, O_PATH, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AccessAs(fd, tt.uid, tt.gid, tt.groups, R_OK)
		Close(fd)
		if err != nil || got != tt.want {
			t.Errorf("AccessAs(%s, uid %d, gid %d, groups %v) = %v, %v; want %v", filepath.Base(tt.path), tt.uid, tt.gid, tt.groups, got, err, tt.want)
		}
		// The calling goroutine's thread got its credentials back: root reads everything.
		if _, err := os.ReadFile(private); err != nil {
			t.Fatalf("credentials not restored: %v", err)
		}
	}
}

// BenchmarkAccessPathAs is the daemon's check, per batch of events, that an unprivileged
// client may list an event's directory; BenchmarkStatPath, a stat of the same path, is its
// reference.
func BenchmarkAccessPathAs(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to switch filesystem credentials")
	}
	dir := filepath.Join(b.TempDir(), "a", "b", "c")
	os.MkdirAll(dir, 0o755)
	b.Run("AccessPathAs", func(b *testing.B) {
		for b.Loop() {
			if ok, err := AccessPathAs(dir, 65534, 65534, nil, R_OK|X_OK); err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("StatPath", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.Stat(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}

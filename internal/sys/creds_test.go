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

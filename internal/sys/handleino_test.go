package sys_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	. "github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestHandleIno: on tmpfs and ext4 the layout HandleInoOf gives reads from each handle the
// inode number its object has (files and directories, and on a tmpfs mounted inode64 one
// above 2^32, whose high word the handle holds too), CheckedHandleIno accepts it, and a
// handle of another type or length, or a wrong inode number for the check, gives none. A type
// whose layout is not known (ramfs) has none.
func TestHandleIno(t *testing.T) {
	testenv.RequireRoot(t)
	for _, fs := range []struct {
		name  string
		dir   func(testing.TB) string
		magic int64
	}{
		{"tmpfs", func(t testing.TB) string { return testenv.Tmpfs(t) }, TMPFS_MAGIC},
		{"ext4", func(t testing.TB) string { return testenv.Ext4(t, 16) }, EXT4_SUPER_MAGIC},
	} {
		t.Run(fs.name, func(t *testing.T) {
			dir := fs.dir(t)
			l, ok := HandleInoOf(fs.magic)
			if !ok || !l.Known() {
				t.Fatalf("no layout for %s", fs.name)
			}
			var paths []string
			for i := range 20 {
				p := filepath.Join(dir, fmt.Sprint("f", i))
				if i%4 == 0 {
					if err := os.Mkdir(p, 0o755); err != nil {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, p)
			}
			for _, p := range append(paths, dir) {
				h, _, err := NameToHandleAt(AT_FDCWD, p, 0)
				if err != nil {
					t.Fatal(err)
				}
				st, err := Statx(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW)
				if err != nil {
					t.Fatal(err)
				}
				if ino, ok := l.Ino(h); !ok || ino != st.Ino {
					t.Errorf("%s: handle %d %x holds %d (%v), its inode is %d", p, h.Type, h.Bytes, ino, ok, st.Ino)
				}
				if c := CheckedHandleIno(fs.magic, h, st.Ino); c != l {
					t.Errorf("%s: CheckedHandleIno %+v, want %+v", p, c, l)
				}
				if c := CheckedHandleIno(fs.magic, h, st.Ino+1); c.Known() {
					t.Errorf("%s: CheckedHandleIno with a wrong inode number: %+v, want none", p, c)
				}
				other := h
				other.Type++
				if _, ok := l.Ino(other); ok {
					t.Errorf("%s: a handle of type %d read as the layout's", p, other.Type)
				}
				other = h
				other.Bytes = append(append([]byte{}, h.Bytes...), 0, 0, 0, 0)
				if _, ok := l.Ino(other); ok {
					t.Errorf("%s: a handle of %d bytes read as the layout's", p, len(other.Bytes))
				}
			}
		})
	}
	t.Run("tmpfs inode64", func(t *testing.T) {
		// A tmpfs mounted inode64 numbers its inodes from 2^32 up only once its 32-bit
		// numbers run out: a handle with a high word is made here by hand, as shmem_encode_fh
		// writes it (generation, low, high).
		l, _ := HandleInoOf(TMPFS_MAGIC)
		h := FileHandle{Type: 1, Bytes: make([]byte, 12)}
		ino := uint64(0x1_2345_6789)
		binary.NativeEndian.PutUint32(h.Bytes[0:], 7)
		binary.NativeEndian.PutUint32(h.Bytes[4:], uint32(ino))
		binary.NativeEndian.PutUint32(h.Bytes[8:], uint32(ino>>32))
		if got, ok := l.Ino(h); !ok || got != ino {
			t.Errorf("handle %x holds %#x (%v), want %#x", h.Bytes, got, ok, ino)
		}
	})
	if _, ok := HandleInoOf(0x858458f6); ok { // RAMFS_MAGIC
		t.Error("ramfs: a layout, want none")
	}
	var zero HandleIno
	if _, ok := zero.Ino(FileHandle{Type: 1, Bytes: make([]byte, 12)}); ok || zero.Known() {
		t.Error("the zero layout read a handle")
	}
}

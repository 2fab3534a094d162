package sys

// HandleIno is where the file handles of one filesystem hold their object's inode number:
// the kernel's encoding of a handle for that filesystem type (its export operations'
// encode_fh, which name_to_handle_at(2) and fanotify's fid records both use), so that the
// number is read from the handle without a system call. Handles are a persistent format (NFS
// servers hand them out across reboots): a filesystem does not change how it encodes them.
// The zero value knows no layout: Ino always says false.
type HandleIno struct {
	typ  int32
	size int  // the handle's length in bytes
	off  int  // the byte offset of the inode number's low 32 bits (native byte order)
	wide bool // its high 32 bits follow them
}

// FILEID_INO32_GEN is the handle type of the kernel's 32-bit inode and generation encoding
// (include/linux/exportfs.h).
const FILEID_INO32_GEN = 1

// HandleInoOf returns the handle layout of the filesystem type fsType (statfs f_type), ok
// false for a type whose layout is not known here (the inode number must then be found by a
// system call):
//
//   - tmpfs (shmem_encode_fh): type 1, three 32-bit words: generation, inode number low,
//     inode number high;
//   - ext2, ext3 and ext4 (generic_encode_ino32_fh): FILEID_INO32_GEN, two words: inode
//     number, generation.
//
// The handle's type and length are checked for each handle (Ino), and a caller should check
// the layout once against a handle whose object's inode number it knows (CheckedHandleIno).
func HandleInoOf(fsType int64) (HandleIno, bool) {
	switch fsType {
	case TMPFS_MAGIC:
		return HandleIno{typ: 1, size: 12, off: 4, wide: true}, true
	case EXT4_SUPER_MAGIC:
		return HandleIno{typ: FILEID_INO32_GEN, size: 8, off: 0}, true
	}
	return HandleIno{}, false
}

// Ino returns the inode number h holds, ok false when h is not of the layout's type and
// length (or the layout is the zero value).
func (l HandleIno) Ino(h FileHandle) (ino uint64, ok bool) {
	if l.size == 0 || h.Type != l.typ || len(h.Bytes) != l.size {
		return 0, false
	}
	ino = uint64(ne.Uint32(h.Bytes[l.off:]))
	if l.wide {
		ino |= uint64(ne.Uint32(h.Bytes[l.off+4:])) << 32
	}
	return ino, true
}

// Known reports whether l is a layout (not the zero value).
func (l HandleIno) Known() bool { return l.size != 0 }

// CheckedHandleIno returns the handle layout of the filesystem type fsType (HandleInoOf),
// checked against the handle h of an object whose inode number is ino: the zero value (none)
// when the type has no known layout or the layout does not find ino in h.
func CheckedHandleIno(fsType int64, h FileHandle, ino uint64) HandleIno {
	l, ok := HandleInoOf(fsType)
	if !ok {
		return HandleIno{}
	}
	if got, ok := l.Ino(h); !ok || got != ino {
		return HandleIno{}
	}
	return l
}

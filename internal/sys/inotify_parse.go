package sys

import (
	"bytes"
	"unsafe"
)

// inotify event bits (include/uapi/linux/inotify.h); the same on every architecture. The init
// flags IN_CLOEXEC and IN_NONBLOCK are not: they are in inotify_linux.go.
const (
	IN_ACCESS        uint32 = 0x00000001
	IN_MODIFY        uint32 = 0x00000002
	IN_ATTRIB        uint32 = 0x00000004
	IN_CLOSE_WRITE   uint32 = 0x00000008
	IN_CLOSE_NOWRITE uint32 = 0x00000010
	IN_OPEN          uint32 = 0x00000020
	IN_MOVED_FROM    uint32 = 0x00000040
	IN_MOVED_TO      uint32 = 0x00000080
	IN_CREATE        uint32 = 0x00000100
	IN_DELETE        uint32 = 0x00000200
	IN_DELETE_SELF   uint32 = 0x00000400
	IN_MOVE_SELF     uint32 = 0x00000800

	IN_UNMOUNT    uint32 = 0x00002000 // output only: the filesystem was unmounted
	IN_Q_OVERFLOW uint32 = 0x00004000 // output only, wd -1
	IN_IGNORED    uint32 = 0x00008000 // output only: the watch was removed

	IN_ONLYDIR     uint32 = 0x01000000
	IN_DONT_FOLLOW uint32 = 0x02000000
	IN_EXCL_UNLINK uint32 = 0x04000000
	IN_MASK_CREATE uint32 = 0x10000000 // fail with EEXIST if the inode is already watched
	IN_MASK_ADD    uint32 = 0x20000000
	IN_ISDIR       uint32 = 0x40000000 // output only
	IN_ONESHOT     uint32 = 0x80000000

	IN_CLOSE      uint32 = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE
	IN_MOVE       uint32 = IN_MOVED_FROM | IN_MOVED_TO
	IN_ALL_EVENTS uint32 = 0x00000fff
)

// inotifyEvent mirrors struct inotify_event without its flexible name array.
type inotifyEvent struct {
	Wd     int32
	Mask   uint32
	Cookie uint32
	Len    uint32
}

const (
	sizeofInotifyEvent = int(unsafe.Sizeof(inotifyEvent{}))
	offInotifyMask     = int(unsafe.Offsetof(inotifyEvent{}.Mask))
	offInotifyCookie   = int(unsafe.Offsetof(inotifyEvent{}.Cookie))
	offInotifyLen      = int(unsafe.Offsetof(inotifyEvent{}.Len))
)

// InotifyReadSize is a good read buffer size for an inotify instance; any size of at least
// sizeof(struct inotify_event) + NAME_MAX + 1 (272) can hold the next event, smaller ones get
// EINVAL.
const InotifyReadSize = 64 << 10

// InotifyEvent is one parsed struct inotify_event. Name aliases the parsed buffer (same
// lifetime rule as FanotifyEvent); Clone copies it.
type InotifyEvent struct {
	Wd     int32
	Mask   uint32
	Cookie uint32 // pairs IN_MOVED_FROM with IN_MOVED_TO; 0 otherwise
	// Name is the entry name without its NUL padding, for events on a watched directory's
	// entries; empty (nil) for events on the watched object itself.
	Name []byte
}

// Clone returns a copy of ev whose Name does not alias the read buffer.
func (ev *InotifyEvent) Clone() InotifyEvent {
	c := *ev
	if c.Name != nil {
		c.Name = bytes.Clone(c.Name)
	}
	return c
}

const inotifyKind = "inotify"

// ParseInotifyEvent decodes the event at the start of buf into ev and returns its length
// (16 + len). It does not allocate. It returns a *ParseError when buf is shorter than the
// header, when len overruns buf, or when a non-empty name field holds no NUL (the kernel
// always NUL-pads it).
func ParseInotifyEvent(buf []byte, ev *InotifyEvent) (n int, err error) {
	return parseInotifyEvent(buf, 0, ev)
}

// ParseInotify decodes every event of buf in order, calling fn for each, like ParseFanotify.
func ParseInotify(buf []byte, fn func(ev *InotifyEvent) error) error {
	return parseEach(buf, new(InotifyEvent), parseInotifyEvent, fn)
}

func parseInotifyEvent(buf []byte, base int, ev *InotifyEvent) (int, error) {
	*ev = InotifyEvent{}
	if len(buf) < sizeofInotifyEvent {
		return 0, parseErrorf(inotifyKind, base, "%d bytes left, less than inotify_event (%d)",
			len(buf), sizeofInotifyEvent)
	}
	nameLen := ne.Uint32(buf[offInotifyLen:])
	if uint64(nameLen) > uint64(len(buf)-sizeofInotifyEvent) {
		return 0, parseErrorf(inotifyKind, base, "len %d beyond the %d bytes left", nameLen,
			len(buf)-sizeofInotifyEvent)
	}
	n := sizeofInotifyEvent + int(nameLen)
	ev.Wd = int32(ne.Uint32(buf))
	ev.Mask = ne.Uint32(buf[offInotifyMask:])
	ev.Cookie = ne.Uint32(buf[offInotifyCookie:])
	if nameLen > 0 {
		name := buf[sizeofInotifyEvent:n]
		i := bytes.IndexByte(name, 0)
		if i < 0 {
			return 0, parseErrorf(inotifyKind, base, "name of len %d not NUL-terminated", nameLen)
		}
		ev.Name = name[:i:i]
	}
	return n, nil
}

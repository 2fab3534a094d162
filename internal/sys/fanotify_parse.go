package sys

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"unsafe"
)

// Go mirrors of the uapi structs (include/uapi/linux/fanotify.h, include/linux/fs.h). Only their
// sizes and field offsets are used: the parser reads fields with binary.NativeEndian at these
// offsets, so a buffer needs no alignment. TestFanotifyStructSizes pins the sizes to the kernel's.
type (
	fanotifyEventMetadata struct {
		EventLen    uint32
		Vers        uint8
		Reserved    uint8
		MetadataLen uint16
		Mask        uint64 // __aligned_u64: offset 8 on every architecture
		Fd          int32
		Pid         int32
	}
	fanotifyEventInfoHeader struct {
		InfoType uint8
		Pad      uint8
		Len      uint16
	}
	// fanotifyEventInfoFid is followed by a struct file_handle and, for the *_DFID_NAME
	// types, a NUL-terminated name; the record is zero-padded to a multiple of 4.
	fanotifyEventInfoFid struct {
		Hdr  fanotifyEventInfoHeader
		Fsid [2]int32 // __kernel_fsid_t
	}
	// fileHandle is struct file_handle without its flexible f_handle array.
	fileHandle struct {
		HandleBytes uint32
		HandleType  int32
	}
	fanotifyEventInfoPidfd struct {
		Hdr   fanotifyEventInfoHeader
		Pidfd int32
	}
	fanotifyEventInfoError struct {
		Hdr        fanotifyEventInfoHeader
		Error      int32
		ErrorCount uint32
	}
	// fanotifyEventInfoRange has an explicit pad (the uapi spells it out).
	fanotifyEventInfoRange struct {
		Hdr    fanotifyEventInfoHeader
		Pad    uint32
		Offset uint64
		Count  uint64
	}
	// fanotifyEventInfoMnt has implicit padding before mnt_id on 64-bit architectures (the
	// uapi struct has none spelled out); Go lays it out like C, so Offsetof gives the
	// kernel's offset on each architecture.
	fanotifyEventInfoMnt struct {
		Hdr   fanotifyEventInfoHeader
		MntID uint64
	}
	fanotifyResponse struct {
		Fd       int32
		Response uint32
	}
)

// Sizes and offsets, as constants.
const (
	sizeofFanotifyEventMetadata = int(unsafe.Sizeof(fanotifyEventMetadata{}))
	sizeofInfoHeader            = int(unsafe.Sizeof(fanotifyEventInfoHeader{}))
	sizeofInfoFid               = int(unsafe.Sizeof(fanotifyEventInfoFid{}))
	sizeofFileHandle            = int(unsafe.Sizeof(fileHandle{}))
	sizeofInfoPidfd             = int(unsafe.Sizeof(fanotifyEventInfoPidfd{}))
	sizeofInfoError             = int(unsafe.Sizeof(fanotifyEventInfoError{}))
	sizeofInfoRange             = int(unsafe.Sizeof(fanotifyEventInfoRange{}))
	sizeofInfoMnt               = int(unsafe.Sizeof(fanotifyEventInfoMnt{}))
	sizeofFanotifyResponse      = int(unsafe.Sizeof(fanotifyResponse{}))

	offMetaVers        = int(unsafe.Offsetof(fanotifyEventMetadata{}.Vers))
	offMetaMetadataLen = int(unsafe.Offsetof(fanotifyEventMetadata{}.MetadataLen))
	offMetaMask        = int(unsafe.Offsetof(fanotifyEventMetadata{}.Mask))
	offMetaFd          = int(unsafe.Offsetof(fanotifyEventMetadata{}.Fd))
	offMetaPid         = int(unsafe.Offsetof(fanotifyEventMetadata{}.Pid))
	offHdrLen          = int(unsafe.Offsetof(fanotifyEventInfoHeader{}.Len))
	offFidFsid         = int(unsafe.Offsetof(fanotifyEventInfoFid{}.Fsid))
	offHandleType      = int(unsafe.Offsetof(fileHandle{}.HandleType))
	offPidfd           = int(unsafe.Offsetof(fanotifyEventInfoPidfd{}.Pidfd))
	offErrorError      = int(unsafe.Offsetof(fanotifyEventInfoError{}.Error))
	offErrorCount      = int(unsafe.Offsetof(fanotifyEventInfoError{}.ErrorCount))
	offRangeOffset     = int(unsafe.Offsetof(fanotifyEventInfoRange{}.Offset))
	offRangeCount      = int(unsafe.Offsetof(fanotifyEventInfoRange{}.Count))
	offMntID           = int(unsafe.Offsetof(fanotifyEventInfoMnt{}.MntID))
)

// FAN_EVENT_METADATA_LEN is sizeof(struct fanotify_event_metadata): 24.
const FAN_EVENT_METADATA_LEN = sizeofFanotifyEventMetadata

// MAX_HANDLE_SZ is the largest f_handle the kernel encodes or accepts (include/linux/exportfs.h).
const MAX_HANDLE_SZ = 128

// FanotifyReadSize is a good read buffer size for a fanotify group. One event is at most about
// 1.3 KiB (metadata, three fid records with 128-byte handles and 255-byte names, pidfd), and the
// kernel fails a read whose buffer cannot hold the next event with EINVAL; 64 KiB holds hundreds
// of events per read.
const FanotifyReadSize = 64 << 10

var ne = binary.NativeEndian

// Fsid is a filesystem id (__kernel_fsid_t), as in statfs(2) f_fsid and fid records.
type Fsid [2]int32

// FileHandle is a struct file_handle: an opaque handle of type Type (FILEID_*). In a parsed
// event, Bytes aliases the read buffer (see FanotifyEvent).
type FileHandle struct {
	Type  int32
	Bytes []byte
}

// Clone returns a copy of h whose Bytes does not alias anything.
func (h FileHandle) Clone() FileHandle {
	if h.Bytes != nil {
		h.Bytes = bytes.Clone(h.Bytes)
	}
	return h
}

// String formats h as "type:hex", for logs.
func (h FileHandle) String() string {
	return strconv.FormatInt(int64(h.Type), 10) + ":" + hex.EncodeToString(h.Bytes)
}

// FileID is the content of a fid record (FID, DFID, DFID_NAME, OLD_DFID_NAME, NEW_DFID_NAME):
// filesystem id, file handle and, for the *_NAME types, the entry name. Open the object with
// OpenByHandleAt and a mount fd of the filesystem Fsid names.
type FileID struct {
	Fsid   Fsid
	Handle FileHandle
	// Name is the entry name without its NUL, for the *_NAME record types (nil otherwise).
	// For an event on a marked directory itself (ATTRIB|ONDIR, say) the kernel reports the
	// directory's DFID with the name ".".
	Name []byte
}

// InfoSet is a set of info record types (bit 1<<info_type), for the types below 32.
type InfoSet uint32

// Has reports whether a record of infoType was present.
func (s InfoSet) Has(infoType uint8) bool { return infoType < 32 && s&(1<<infoType) != 0 }

// FanotifyEvent is one parsed event: struct fanotify_event_metadata and its info records.
//
// Lifetime: Handle.Bytes and Name of the FileID fields alias the buffer that was parsed (no
// copy, no allocation) and are valid only until that buffer is reused, typically by the next
// read. Use Clone to keep an event longer. The aliasing slices have their capacity clipped, so
// appending to them never writes into the buffer.
type FanotifyEvent struct {
	// Mask is the event set. Unread queued events of one object merge, so one event may carry
	// several bits (FAN_OPEN|FAN_ACCESS|FAN_CLOSE_NOWRITE); permission events never merge.
	// FAN_ONDIR appears only for groups with FID reporting: in fd mode the fd tells a
	// directory apart.
	Mask uint64
	// Fd is an open file descriptor of the object (the caller must close it), FAN_NOFD
	// (FID groups, overflow), or with FAN_REPORT_FD_ERROR a negative errno.
	Fd int32
	// Pid is the process (or with FAN_REPORT_TID the thread) that caused the event; 0 when it
	// is outside the reader's pid namespace or, for unprivileged groups, another user's.
	Pid int32

	// Records is the set of info record types present; only those fields below are valid.
	Records InfoSet

	// FID is the object (FAN_EVENT_INFO_TYPE_FID; with FAN_REPORT_TARGET_FID, the child).
	FID FileID
	// DFID is the directory (FAN_EVENT_INFO_TYPE_DFID, or FAN_EVENT_INFO_TYPE_DFID_NAME with
	// Name set). An event never has both.
	DFID FileID
	// OldDFID and NewDFID are FAN_RENAME's FAN_EVENT_INFO_TYPE_OLD_DFID_NAME and
	// FAN_EVENT_INFO_TYPE_NEW_DFID_NAME: source and target directory and name.
	OldDFID, NewDFID FileID

	// Pidfd (FAN_EVENT_INFO_TYPE_PIDFD) is a pidfd of Pid that the caller must close when it
	// is >= 0, or FAN_NOPIDFD (the process had exited) or FAN_EPIDFD (creation failed).
	Pidfd int32
	// Error and ErrorCount (FAN_EVENT_INFO_TYPE_ERROR, FAN_FS_ERROR events): the first
	// error's positive errno and how many errors the filesystem reported since.
	Error      int32
	ErrorCount uint32
	// RangeOffset and RangeCount (FAN_EVENT_INFO_TYPE_RANGE, FAN_PRE_ACCESS events): the
	// byte range about to be accessed, widened to whole pages by the kernel (a 10-byte read
	// at 1000 reports [0, +4096)). Absent when the kernel does not know the position.
	RangeOffset, RangeCount uint64
	// MntID (FAN_EVENT_INFO_TYPE_MNT, mount events) is the unique 64-bit mount id, as
	// statx(STATX_MNT_ID_UNIQUE) reports it.
	MntID uint64

	// UnknownRecords counts records of types this parser does not know; they are skipped by
	// their len, so a newer kernel's additions do not break parsing.
	UnknownRecords int
}

// IsPerm reports whether the event is a permission event that needs a response.
func (ev *FanotifyEvent) IsPerm() bool { return ev.Mask&FAN_PERM_EVENTS != 0 }

// Clone returns a deep copy of ev whose slices do not alias the read buffer (one allocation).
func (ev *FanotifyEvent) Clone() FanotifyEvent {
	c := *ev
	fids := [...]*FileID{&c.FID, &c.DFID, &c.OldDFID, &c.NewDFID}
	n := 0
	for _, f := range fids {
		n += len(f.Handle.Bytes) + len(f.Name)
	}
	b := make([]byte, 0, n)
	clone := func(s []byte) []byte {
		if s == nil {
			return nil
		}
		i := len(b)
		b = append(b, s...)
		return b[i:len(b):len(b)]
	}
	for _, f := range fids {
		f.Handle.Bytes = clone(f.Handle.Bytes)
		f.Name = clone(f.Name)
	}
	return c
}

const fanotifyKind = "fanotify"

// ParseFanotifyEvent decodes the event at the start of buf (which holds bytes read from a
// fanotify group) into ev, overwriting every field, and returns the event's length
// (event_len): the next event starts at buf[n:]. It does not allocate.
//
// It checks what the kernel guarantees and returns a *ParseError when a check fails: at least
// FAN_EVENT_METADATA_LEN bytes; vers == FANOTIFY_METADATA_VERSION; metadata_len at least 24 and
// at most event_len; event_len within buf; every info record at least 4 bytes with a len
// within the event; fixed-size records at least their struct's size; fid records with
// handle_bytes inside the record and, for the *_NAME types, a NUL-terminated name; at most one
// record of each known type (DFID and DFID_NAME share one). Records of unknown types are
// skipped by their len. On error ev holds what was decoded so far and must not be used. ev is
// the caller's to reuse for the next event but not to write: the fields of the records an
// event lacks are reset only when the last parse into ev decoded some (see parseFanotifyEvent).
func ParseFanotifyEvent(buf []byte, ev *FanotifyEvent) (n int, err error) {
	return parseFanotifyEvent(buf, 0, ev)
}

// ParseFanotifyEventAt is ParseFanotifyEvent for the event at buf[off:] (off ≤ len(buf)),
// whose errors give its offset in buf: for a reader that walks a batch in its own loop
// (off += n while off < len(buf)) rather than through ParseFanotifyInto's callback, an
// indirect call per event less (two, with parseEach's call of its parse function).
func ParseFanotifyEventAt(buf []byte, off int, ev *FanotifyEvent) (n int, err error) {
	return parseFanotifyEvent(buf[off:], off, ev)
}

// ParseFanotify decodes every event of buf (what one read returned) in order, calling fn for
// each; ev is reused between calls and its slices alias buf (see FanotifyEvent). It stops at
// the first malformed event or the first error fn returns, and returns that error. Events
// delivered before a *ParseError are valid, but the events after it are lost: their fds and
// permission events cannot be answered, so the caller should close the group.
func ParseFanotify(buf []byte, fn func(ev *FanotifyEvent) error) error {
	return parseEach(buf, new(FanotifyEvent), parseFanotifyEvent, fn)
}

// ParseFanotifyInto is ParseFanotify decoding into the caller's ev, which it overwrites for
// each event: a reader that parses every batch into the same one allocates nothing (ev
// escapes to fn, so ParseFanotify's own is on the heap: over 300 bytes per call).
//
// Not inlined: its callers' escape analysis cannot see through the generic parseEach, and a
// closure passed here would cost them an allocation per batch; this function's own summary
// (fn does not escape) is what keeps it on their stack.
//
//go:noinline
func ParseFanotifyInto(buf []byte, ev *FanotifyEvent, fn func(ev *FanotifyEvent) error) error {
	return parseEach(buf, ev, parseFanotifyEvent, fn)
}

// parseEach decodes every event of buf in order with parse (which returns an event's length)
// into ev, calling fn for each. The one loop of ParseFanotify and ParseInotify.
func parseEach[E any](buf []byte, ev *E, parse func(buf []byte, base int, ev *E) (int, error), fn func(ev *E) error) error {
	for off := 0; off < len(buf); {
		n, err := parse(buf[off:], off, ev)
		if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// parseFanotifyEvent is ParseFanotifyEvent with base, buf's offset in the caller's buffer, for
// error messages.
//
// Every field of ev but Mask, Fd and Pid is written only by a record's decoding, and only with
// a bit of Records set for it (before the field is written, or already set: a duplicate) or
// UnknownRecords counted, also when the record then turns out malformed. So when ev has
// neither, every one of those fields is zero, and they are not written again: a permission
// event (a header alone, the FD group's every event) writes three fields rather than the
// whole struct (some 330 bytes over six cache lines, per event). ParseFanotifyEvent's callers
// own their ev: nothing else writes it between parses.
func parseFanotifyEvent(buf []byte, base int, ev *FanotifyEvent) (int, error) {
	if ev.Records != 0 || ev.UnknownRecords != 0 {
		*ev = FanotifyEvent{}
	}
	if len(buf) < sizeofFanotifyEventMetadata {
		return 0, parseErrorf(fanotifyKind, base, "%d bytes left, less than fanotify_event_metadata (%d)",
			len(buf), sizeofFanotifyEventMetadata)
	}
	eventLen := ne.Uint32(buf)
	vers := buf[offMetaVers]
	metaLen := int(ne.Uint16(buf[offMetaMetadataLen:]))
	switch {
	case vers != FANOTIFY_METADATA_VERSION:
		return 0, parseErrorf(fanotifyKind, base, "vers %d, want %d", vers, FANOTIFY_METADATA_VERSION)
	case metaLen < sizeofFanotifyEventMetadata:
		return 0, parseErrorf(fanotifyKind, base, "metadata_len %d < %d", metaLen, sizeofFanotifyEventMetadata)
	case uint64(eventLen) < uint64(metaLen):
		return 0, parseErrorf(fanotifyKind, base, "event_len %d < metadata_len %d", eventLen, metaLen)
	case uint64(eventLen) > uint64(len(buf)):
		return 0, parseErrorf(fanotifyKind, base, "event_len %d beyond the %d bytes left", eventLen, len(buf))
	}
	n := int(eventLen)
	ev.Mask = ne.Uint64(buf[offMetaMask:])
	ev.Fd = int32(ne.Uint32(buf[offMetaFd:]))
	ev.Pid = int32(ne.Uint32(buf[offMetaPid:]))

	for off := metaLen; off < n; {
		rec := buf[off:n]
		if len(rec) < sizeofInfoHeader {
			return 0, parseErrorf(fanotifyKind, base, "%d trailing bytes at %d, less than an info header",
				len(rec), off)
		}
		typ := rec[0]
		recLen := int(ne.Uint16(rec[offHdrLen:]))
		if recLen < sizeofInfoHeader {
			// A len of 0 would never advance: reject it rather than loop.
			return 0, parseErrorf(fanotifyKind, base, "info record type %d at %d: len %d < %d",
				typ, off, recLen, sizeofInfoHeader)
		}
		if recLen > len(rec) {
			return 0, parseErrorf(fanotifyKind, base, "info record type %d at %d: len %d overruns event_len %d",
				typ, off, recLen, n)
		}
		rec = rec[:recLen]
		if reason := ev.decodeRecord(typ, rec); reason != "" {
			return 0, parseErrorf(fanotifyKind, base, "info record type %d at %d: %s", typ, off, reason)
		}
		off += recLen
	}
	return n, nil
}

// decodeRecord stores one info record in ev; it returns why the record is malformed, or "".
func (ev *FanotifyEvent) decodeRecord(typ uint8, rec []byte) string {
	var fid *FileID
	named := false
	slot := InfoSet(1) << typ // only used for the known types below, all < 32
	switch typ {
	case FAN_EVENT_INFO_TYPE_FID:
		fid = &ev.FID
	case FAN_EVENT_INFO_TYPE_DFID:
		fid = &ev.DFID
		slot |= 1 << FAN_EVENT_INFO_TYPE_DFID_NAME
	case FAN_EVENT_INFO_TYPE_DFID_NAME:
		fid, named = &ev.DFID, true
		slot |= 1 << FAN_EVENT_INFO_TYPE_DFID
	case FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
		fid, named = &ev.OldDFID, true
	case FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
		fid, named = &ev.NewDFID, true
	case FAN_EVENT_INFO_TYPE_PIDFD:
		if len(rec) < sizeofInfoPidfd {
			return "len " + strconv.Itoa(len(rec)) + " < " + strconv.Itoa(sizeofInfoPidfd)
		}
		ev.Pidfd = int32(ne.Uint32(rec[offPidfd:]))
	case FAN_EVENT_INFO_TYPE_ERROR:
		if len(rec) < sizeofInfoError {
			return "len " + strconv.Itoa(len(rec)) + " < " + strconv.Itoa(sizeofInfoError)
		}
		ev.Error = int32(ne.Uint32(rec[offErrorError:]))
		ev.ErrorCount = ne.Uint32(rec[offErrorCount:])
	case FAN_EVENT_INFO_TYPE_RANGE:
		if len(rec) < sizeofInfoRange {
			return "len " + strconv.Itoa(len(rec)) + " < " + strconv.Itoa(sizeofInfoRange)
		}
		ev.RangeOffset = ne.Uint64(rec[offRangeOffset:])
		ev.RangeCount = ne.Uint64(rec[offRangeCount:])
	case FAN_EVENT_INFO_TYPE_MNT:
		if len(rec) < sizeofInfoMnt {
			return "len " + strconv.Itoa(len(rec)) + " < " + strconv.Itoa(sizeofInfoMnt)
		}
		ev.MntID = ne.Uint64(rec[offMntID:])
	default:
		ev.UnknownRecords++
		return ""
	}
	if ev.Records&slot != 0 {
		return "duplicate record"
	}
	ev.Records |= InfoSet(1) << typ
	if fid != nil {
		return decodeFid(rec, named, fid)
	}
	return ""
}

// decodeFid decodes a fid record: header, fsid, struct file_handle, [name NUL], padding.
func decodeFid(rec []byte, named bool, fid *FileID) string {
	const fixed = sizeofInfoFid + sizeofFileHandle
	if len(rec) < fixed {
		return "len " + strconv.Itoa(len(rec)) + " < " + strconv.Itoa(fixed)
	}
	fid.Fsid = Fsid{int32(ne.Uint32(rec[offFidFsid:])), int32(ne.Uint32(rec[offFidFsid+4:]))}
	fh := rec[sizeofInfoFid:]
	handleBytes := ne.Uint32(fh)
	fid.Handle.Type = int32(ne.Uint32(fh[offHandleType:]))
	rest := fh[sizeofFileHandle:]
	if uint64(handleBytes) > uint64(len(rest)) {
		return "handle_bytes " + strconv.FormatUint(uint64(handleBytes), 10) + " overruns the record"
	}
	hb := int(handleBytes)
	fid.Handle.Bytes = rest[:hb:hb]
	if named {
		rest = rest[hb:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return "name not NUL-terminated within the record"
		}
		fid.Name = rest[:i:i]
	}
	return ""
}

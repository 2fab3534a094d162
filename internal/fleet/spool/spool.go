// Package spool is the exporter's bounded on-disk queue: segment files of checksummed frames,
// each frame one record with its sequence number, written by one goroutine and read in order
// by another, deleted once the records in them are acknowledged.
//
// # Files
//
// A spool directory holds:
//
//	LOCK                  flock(2)ed by the one process that owns the spool
//	<first seq>.seg       segment files, named by the sequence number of their first frame
//	                      (20 decimal digits, so names sort in order)
//	seq                   the sequence state (see Seq), written by the writer with fsync
//	acked                 the publisher's "acknowledged through" mark (a hint, not synced)
//
// A frame is
//
//	u32 length of body (little endian) | u32 CRC-32C of body | body
//	body = u64 seq (little endian) | u8 kind | data
//
// # Crash safety
//
// Frames are appended with write(2) in batches; nothing is read back before the write that
// holds it returned (Reader stops at the committed size). A process killed with SIGKILL loses
// nothing that was written: the page cache keeps it. A power loss can lose what was not yet
// fsynced (the writer syncs on rotation, on Sync and on Close) and can leave a torn tail; Open
// checks every frame of the last segment and truncates it at the first frame that is short or
// fails its checksum, so a torn tail is never parsed. Older segments were fsynced when they
// were rotated; should one be damaged anyway, Reader reports the unreadable range
// (ErrCorrupt) and goes on with the next segment.
//
// # Concurrency
//
// One writer goroutine calls Write, Sync, Rotate and Close; one publisher goroutine uses a
// Reader and calls Ack. Spool.mu guards the segment list and the sizes (a leaf lock: nothing
// is called out while it is held; files are unlinked after it is released).
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// HeaderSize is the size of a frame's length and checksum; BodyFixed the seq and kind.
const (
	HeaderSize = 8
	BodyFixed  = 9
	// MaxData bounds a frame's data, so that a damaged length cannot make a reader allocate
	// gigabytes (NATS's default max_payload is 1 MiB).
	MaxData = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendFrame appends a frame to dst.
func AppendFrame(dst []byte, seq uint64, kind byte, data []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, HeaderSize+BodyFixed)...)
	binary.LittleEndian.PutUint32(dst[n:], uint32(BodyFixed+len(data)))
	binary.LittleEndian.PutUint64(dst[n+HeaderSize:], seq)
	dst[n+HeaderSize+8] = kind
	dst = append(dst, data...)
	binary.LittleEndian.PutUint32(dst[n+4:], crc32.Checksum(dst[n+HeaderSize:], castagnoli))
	return dst
}

// FrameSize is the size of a frame holding n bytes of data.
func FrameSize(n int) int64 { return int64(HeaderSize + BodyFixed + n) }

// Frame is one decoded frame. Data aliases the reader's buffer until the next call.
type Frame struct {
	Seq  uint64
	Kind byte
	Data []byte
}

// errTorn is a frame that is short or fails its checksum.
var errTorn = errors.New("torn or damaged frame")

// decode decodes the frame at the start of b; n is its size. It returns errTorn for a frame
// that is incomplete or damaged and io.EOF for an empty b.
func decode(b []byte) (f Frame, n int, err error) {
	if len(b) == 0 {
		return f, 0, io.EOF
	}
	if len(b) < HeaderSize+BodyFixed {
		return f, 0, errTorn
	}
	blen := int(binary.LittleEndian.Uint32(b))
	if blen < BodyFixed || blen > BodyFixed+MaxData || len(b) < HeaderSize+blen {
		return f, 0, errTorn
	}
	body := b[HeaderSize : HeaderSize+blen]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return f, 0, errTorn
	}
	f.Seq = binary.LittleEndian.Uint64(body)
	f.Kind = body[8]
	f.Data = body[BodyFixed:]
	return f, HeaderSize + blen, nil
}

// segment is one segment file.
type segment struct {
	first uint64 // seq of its first frame (its name)
	last  uint64 // seq of its last frame; first-1 when empty. For a segment found at Open
	// other than the last one, the next segment's first-1 (an upper bound: it was not read).
	size int64 // committed bytes
}

func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

// Options configure a spool.
type Options struct {
	Dir string
	// MaxBytes bounds the total size of the segment files; Fits says whether more fits.
	MaxBytes int64
	// SegmentBytes is the size at which the writer starts a new segment.
	SegmentBytes int64
}

// Recovery is what Open found.
type Recovery struct {
	// LastSeq is the highest seq in the spool, or the first seq of the last segment minus one
	// when that segment is empty; 0 with no segments.
	LastSeq uint64
	// Segments is the number of segment files; Bytes their total size.
	Segments int
	Bytes    int64
	// Truncated is how many bytes of torn tail were cut from the last segment.
	Truncated int64
}

// Spool is an open spool directory.
type Spool struct {
	dir  string
	opts Options
	lock *os.File

	// writer-owned
	active *os.File

	mu      sync.Mutex
	segs    []*segment // in seq order; the last is the active one
	total   int64
	acked   uint64
	closed  bool
	changed chan struct{} // signalled (non-blocking, cap 1) when frames were committed
}

// checkDir refuses a spool directory that a user other than root (or this process's) owns or
// may write in, sticky or not: they could plant segments (published as this host's records at
// the next start), remove them (records lost without a gap), or put links where the spool
// creates its files (followed as root).
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("spool: %s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("spool: %s: no owner", dir)
	}
	if euid := uint32(os.Geteuid()); st.Uid != 0 && st.Uid != euid {
		return fmt.Errorf("spool directory %s is owned by uid %d: its owner could plant records that go out as this host's, or links the exporter follows (chown root %s; chmod 700 %s)", dir, st.Uid, dir, dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("spool directory %s may be written by other users (mode %04o): they could plant records that go out as this host's, remove records, or put links the exporter follows (chmod 700 %s)", dir, perm, dir)
	}
	return nil
}

// ErrLocked is returned when another process owns the spool directory.
var ErrLocked = errors.New("spool directory is in use by another process")

// Open opens (creating if needed) the spool in opts.Dir, takes its lock, and recovers it:
// the last segment is checked frame by frame and a torn tail is truncated (and synced).
func Open(opts Options) (*Spool, Recovery, error) {
	var rec Recovery
	if opts.Dir == "" {
		return nil, rec, errors.New("spool: no directory given")
	}
	if opts.MaxBytes <= 0 || opts.SegmentBytes <= 0 {
		return nil, rec, errors.New("spool: MaxBytes and SegmentBytes must be positive")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, rec, fmt.Errorf("spool: %w", err)
	}
	if err := checkDir(opts.Dir); err != nil {
		return nil, rec, err
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, rec, err
	}
	// The directories above: nobody else may rename the spool away and put theirs in its
	// place (trust.CheckFile's walk, on the lock file, which only this user could make).
	if err := trust.CheckFile(lock, filepath.Join(opts.Dir, "LOCK"), "spool lock file"); err != nil {
		lock.Close()
		return nil, rec, fmt.Errorf("spool %s: %w", opts.Dir, err)
	}
	s := &Spool{dir: opts.Dir, opts: opts, lock: lock, changed: make(chan struct{}, 1)}
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	ents, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, rec, fmt.Errorf("spool: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") {
			if strings.HasSuffix(name, ".tmp") { // a state file write cut short
				os.Remove(filepath.Join(opts.Dir, name))
			}
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
		if err != nil || first == 0 || segName(first) != name {
			return nil, rec, fmt.Errorf("spool: unexpected file %s in %s (remove it, or use another --spool)", name, opts.Dir)
		}
		info, err := e.Info()
		if err != nil {
			return nil, rec, fmt.Errorf("spool: %w", err)
		}
		s.segs = append(s.segs, &segment{first: first, size: info.Size()})
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].first < s.segs[j].first })
	for i, sg := range s.segs {
		if i+1 < len(s.segs) {
			sg.last = s.segs[i+1].first - 1
		}
	}
	if n := len(s.segs); n > 0 {
		last := s.segs[n-1]
		cut, lastSeq, err := s.recoverTail(last)
		if err != nil {
			return nil, rec, err
		}
		rec.Truncated = cut
		last.last = lastSeq
		rec.LastSeq = lastSeq
		f, err := os.OpenFile(s.path(last.first), os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, rec, fmt.Errorf("spool: %w", err)
		}
		s.active = f
	}
	for _, sg := range s.segs {
		s.total += sg.size
	}
	rec.Segments, rec.Bytes = len(s.segs), s.total
	ok = true
	return s, rec, nil
}

func (s *Spool) path(first uint64) string { return filepath.Join(s.dir, segName(first)) }

// recoverTail reads every frame of sg, truncates a torn tail, and returns the bytes cut and
// the last seq (sg.first-1 when no frame is valid).
func (s *Spool) recoverTail(sg *segment) (int64, uint64, error) {
	p := s.path(sg.first)
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: %w", err)
	}
	off, last := 0, sg.first-1
	for {
		f, n, err := decode(b[off:])
		if err != nil || f.Seq <= last { // a seq that does not increase is damage too
			break
		}
		last = f.Seq
		off += n
	}
	cut := int64(len(b) - off)
	if cut > 0 {
		if err := os.Truncate(p, int64(off)); err != nil {
			return 0, 0, fmt.Errorf("spool: truncating the torn tail of %s: %w", p, err)
		}
		if err := syncFile(p); err != nil {
			return 0, 0, err
		}
	}
	sg.size = int64(off)
	return cut, last, nil
}

// Fits reports whether n more bytes stay within MaxBytes.
func (s *Spool) Fits(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total+n <= s.opts.MaxBytes
}

// Bytes is the total size of the segment files.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// NeedRotate reports whether the writer should start a new segment before adding a frame of
// n bytes to pending bytes of frames not yet written: when there is none, or the frame would
// take a non-empty segment past SegmentBytes.
func (s *Spool) NeedRotate(pending, n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 {
		return true
	}
	used := s.segs[len(s.segs)-1].size + pending
	return used > 0 && used+n > s.opts.SegmentBytes
}

// Rotate syncs and closes the active segment and starts a new one whose first frame will be
// first (writer only).
func (s *Spool) Rotate(first uint64) error {
	if s.active != nil {
		if err := s.active.Sync(); err != nil {
			return fmt.Errorf("spool: sync: %w", err)
		}
		s.active.Close()
		s.active = nil
	}
	f, err := os.OpenFile(s.path(first), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.active = f
	s.mu.Lock()
	s.segs = append(s.segs, &segment{first: first, last: first - 1})
	s.mu.Unlock()
	return nil
}

// Write appends frames (made with AppendFrame; lastSeq is the seq of the last one) to the
// active segment with one write(2) and commits them to readers (writer only). A short write
// leaves a torn tail that the next Open truncates; the spool is unusable after an error.
func (s *Spool) Write(frames []byte, lastSeq uint64) error {
	if s.active == nil {
		return errors.New("spool: no active segment (Rotate first)")
	}
	if _, err := s.active.Write(frames); err != nil {
		return fmt.Errorf("spool: write: %w", err)
	}
	s.mu.Lock()
	a := s.segs[len(s.segs)-1]
	a.size += int64(len(frames))
	a.last = lastSeq
	s.total += int64(len(frames))
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return nil
}

// Sync fsyncs the active segment (writer only).
func (s *Spool) Sync() error {
	if s.active == nil {
		return nil
	}
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("spool: sync: %w", err)
	}
	return nil
}

// Changed is signalled when frames were committed (one pending signal at most).
func (s *Spool) Changed() <-chan struct{} { return s.changed }

// Ack records that every spooled frame with seq <= through was acknowledged, and deletes the
// segments (other than the active one) that hold nothing newer (publisher only).
func (s *Spool) Ack(through uint64) {
	var dead []string
	s.mu.Lock()
	if through > s.acked {
		s.acked = through
	}
	for len(s.segs) > 1 && s.segs[0].last <= s.acked {
		dead = append(dead, s.path(s.segs[0].first))
		s.total -= s.segs[0].size
		s.segs = s.segs[1:]
	}
	s.mu.Unlock()
	for _, p := range dead {
		os.Remove(p)
	}
}

// Close syncs and closes the active segment and releases the lock (writer only, after the
// reader is done).
func (s *Spool) Close() error {
	var err error
	if s.active != nil {
		err = s.active.Sync()
		s.active.Close()
		s.active = nil
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.lock.Close()
	return err
}

// Dir is the spool directory.
func (s *Spool) Dir() string { return s.dir }

// committed returns the segment after-or-at seq and its committed size; ok is false when no
// segment holds anything at or after seq yet.
func (s *Spool) segmentFor(seq uint64) (first uint64, size int64, active bool, next uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, sg := range s.segs {
		if i+1 < len(s.segs) && s.segs[i+1].first <= seq {
			continue
		}
		if i+1 < len(s.segs) {
			next = s.segs[i+1].first
		}
		return sg.first, sg.size, i == len(s.segs)-1, next, true
	}
	return 0, 0, false, 0, false
}

// ErrCorrupt is a damaged frame in a segment other than the last one.
type ErrCorrupt struct {
	Segment     string
	First, Last uint64 // the seqs that could not be read
}

func (e *ErrCorrupt) Error() string {
	return fmt.Sprintf("spool: %s is damaged: seq %d-%d cannot be read", e.Segment, e.First, e.Last)
}

// Reader reads frames in seq order, from a starting seq, up to what was committed.
type Reader struct {
	s    *Spool
	seq  uint64 // the next seq wanted
	f    *os.File
	cur  uint64 // first seq of the open segment
	off  int64  // read offset in it
	buf  []byte
	r, w int // unread bytes are buf[r:w]
}

// NewReader returns a reader of the frames with seq >= from.
func (s *Spool) NewReader(from uint64) *Reader {
	if from == 0 {
		from = 1
	}
	return &Reader{s: s, seq: from, buf: make([]byte, 256<<10)}
}

// Pos is the next seq the reader will return (or skip to).
func (r *Reader) Pos() uint64 { return r.seq }

// Close closes the reader's file.
func (r *Reader) Close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// Next returns the next frame, or ok == false when every committed frame was read. A damaged
// frame in an older segment returns *ErrCorrupt once; reading then goes on after it.
func (r *Reader) Next() (f Frame, ok bool, err error) {
	for {
		first, size, active, next, found := r.s.segmentFor(r.seq)
		if !found {
			return f, false, nil
		}
		if r.f == nil || r.cur != first {
			r.Close()
			fh, err := os.Open(r.s.path(first))
			if err != nil {
				return f, false, fmt.Errorf("spool: %w", err)
			}
			r.f, r.cur, r.off, r.r, r.w = fh, first, 0, 0, 0
		}
		// Decode from the buffer, refilling it from the file up to the committed size.
		for {
			fr, n, derr := decode(r.buf[r.r:r.w])
			if derr == nil {
				r.r += n
				if fr.Seq < r.seq {
					continue // before the start (a restarted reader, or a resend)
				}
				r.seq = fr.Seq + 1
				return fr, true, nil
			}
			unread := int64(r.w - r.r)
			avail := size - r.off // committed bytes not yet in the buffer
			if avail > 0 {
				if r.r > 0 {
					copy(r.buf, r.buf[r.r:r.w])
					r.w -= r.r
					r.r = 0
				}
				if r.w == len(r.buf) { // a frame larger than the buffer
					nb := make([]byte, 2*len(r.buf))
					copy(nb, r.buf[:r.w])
					r.buf = nb
				}
				want := int64(len(r.buf) - r.w)
				if want > avail {
					want = avail
				}
				n, err := r.f.ReadAt(r.buf[r.w:r.w+int(want)], r.off)
				r.off += int64(n)
				r.w += n
				if n == 0 && err != nil {
					return f, false, fmt.Errorf("spool: read %s: %w", segName(first), err)
				}
				continue
			}
			if unread == 0 && !active {
				r.seq = max(r.seq, next) // this segment is done
				break
			}
			if unread == 0 || active {
				return f, false, nil // caught up (the rest is not committed yet)
			}
			// Undecodable bytes in a finished segment: skip to the next one.
			bad := &ErrCorrupt{Segment: segName(first), First: r.seq, Last: next - 1}
			r.seq = next
			r.r, r.w = 0, 0
			return f, false, bad
		}
	}
}

// Seq is the sequence state of a spool: seq numbers are reserved in blocks, durably, before
// any of them is written, so that none is handed out twice even after a power loss.
type Seq struct {
	// Reserved is the highest seq that may be used without a new reservation.
	Reserved uint64 `json:"reserved"`
	// Clean is true when the owner stopped with Close; Last is then the last seq it used.
	Clean bool   `json:"clean"`
	Last  uint64 `json:"last"`
	// BootID is the kernel boot id of the run that wrote this state: a different one at the
	// next start means the machine rebooted, so unsynced spool data may be gone.
	BootID string `json:"boot_id"`
	// Pending is a gap (lost seqs) that could not be written into the spool before Close.
	Pending *PendingGap `json:"pending_gap,omitempty"`
	// IDKey is the spool's secret part of every record's Nats-Msg-Id (chosen when the spool
	// is new, kept for its life): another host that could name this host's ids could make
	// the server drop its records as duplicates.
	IDKey string `json:"id_key,omitempty"`
}

// PendingGap is a range of lost seqs not yet reported.
type PendingGap struct {
	First  uint64 `json:"first"`
	Last   uint64 `json:"last"`
	Reason string `json:"reason"`
}

// Marshal encodes st for the seq file.
func (st *Seq) marshal() []byte {
	b := fmt.Appendf(nil, "{\"reserved\":%d,\"clean\":%t,\"last\":%d,\"boot_id\":%q", st.Reserved, st.Clean, st.Last, st.BootID)
	if st.Pending != nil {
		b = fmt.Appendf(b, ",\"pending_gap\":{\"first\":%d,\"last\":%d,\"reason\":%q}", st.Pending.First, st.Pending.Last, st.Pending.Reason)
	}
	if st.IDKey != "" {
		b = fmt.Appendf(b, ",\"id_key\":%q", st.IDKey)
	}
	return append(b, "}\n"...)
}

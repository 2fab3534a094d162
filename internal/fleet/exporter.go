package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet/spool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ExporterConfig configures an Exporter. Zero values take the defaults named.
type ExporterConfig struct {
	Conn ConnOptions
	// Host names this machine in records and subjects (default: the host name).
	Host string
	// BootID goes into every record (default: the kernel's boot id). The spool's state
	// remembers it: a different one at the next start means a reboot, after which unsynced
	// spool data may be gone.
	BootID string
	Stream StreamConfig
	// SpoolDir is the spool directory (required; the daemon's default is
	// /var/lib/fsnotifyd/spool). One exporter per directory (it is locked).
	SpoolDir string
	// SpoolMaxBytes bounds the spool (default 1 GiB). When it is full, records are dropped
	// and a gap record names them once there is room again.
	SpoolMaxBytes int64
	// SegmentBytes is the spool's segment size (default min(16 MiB, SpoolMaxBytes/8)).
	SegmentBytes int64
	// SyncInterval is how often the spool is fsynced (default 1s; also at each new segment
	// and at Close). A kill -9 loses nothing that reached the spool; a power loss can lose up
	// to this much of its tail (reported by a gap record after the reboot).
	SyncInterval time.Duration
	// BufferRecords and BufferBytes bound the memory buffer between Append and the spool
	// writer (defaults 65536 records, 32 MiB). When it is full, Append drops the record and a
	// gap record names it.
	BufferRecords int
	BufferBytes   int
	// MaxRecordBytes bounds one record (default 64 KiB); a larger one becomes a gap.
	MaxRecordBytes int
	// Window is the number of records published and not yet acknowledged (default 4096).
	Window int
	// AckTimeout is how long to wait for a record's acknowledgement before sending it again
	// (default 5s).
	AckTimeout time.Duration
	// Log receives one line per noteworthy change (connected, disconnected, errors, drops).
	// It is called from the exporter's goroutines and nats.go's, never with a lock held.
	Log func(msg string)
}

// Stats are an exporter's counters.
type Stats struct {
	Appended      uint64 // records accepted by Append
	Rejected      uint64 // Append calls refused (not a JSON object, or after Close)
	DroppedBuffer uint64 // records dropped because the memory buffer was full
	DroppedSpool  uint64 // seqs lost in the spool: full, too large, write errors, damage
	Overflows     uint64 // Overflow calls
	Spooled       uint64 // records (gaps included) written to the spool
	Acked         uint64 // records acknowledged by JetStream (resends counted once per ack)
	Resends       uint64 // records sent again after an error
	LastSeq       uint64 // the last seq used
	AckedThrough  uint64 // every spooled record up to this seq is acknowledged
	SpoolBytes    int64
	Connected     bool
	LastError     string
}

// Exporter sends records to the fleet stream through a bounded memory buffer and an on-disk
// spool; see the package documentation.
type Exporter struct {
	cfg    ExporterConfig
	token  string
	msgID  string // the Nats-Msg-Id before the seq: <token>/<the spool's id key>/
	prefix []byte // {"host":"H","boot_id":"B","seq":
	sp     *spool.Spool

	// The memory buffer (Append's side).
	qmu      sync.Mutex
	qbuf     []byte   // payloads, back to back
	qents    []qentry // in Append order
	qlost    uint64   // dropped since the last queued entry
	qover    uint64   // overflows since the last queued entry
	qclosed  bool
	qdamaged []startGap    // spool ranges the publisher could not read or send, for gap records
	qgapped  []gapOutcome  // the writer's outcomes of qdamaged's rejected records, for the publisher
	qfinal   bool          // the writer took its last batch: qdamaged is read no more
	qwake    chan struct{} // cap 1: the writer has something to take
	spareBuf []byte        // the writer's previous batch, reused (writer-owned)
	spareEnt []qentry

	idKey string // the spool's secret in msgID (set by recover, then read-only)

	// Writer-owned.
	next     uint64 // the next seq to use
	reserved uint64 // seqs up to this are durably reserved
	pend     *spool.PendingGap
	fullFrom uint64 // while the spool is full (records dropped): droppedSpool when it filled, +1; else 0
	frames   []byte // frames not yet written
	rec      []byte // scratch record
	firstGap []startGap
	framed   uint64        // the seq of the last frame in frames
	lastSeq  atomic.Uint64 // the last seq used
	written  atomic.Uint64 // the seq of the last frame written to the spool
	crashed  bool          // abandon (tests): stop as a crash would

	// Publisher-owned.
	from    uint64 // the first seq to read at start
	events  chan pubEvent
	evMu    sync.Mutex
	evExtra []pubEvent // events that did not fit in the channel (never expected)
	connCh  chan struct{}
	// dialSaid: the dial failures said since the last connection (nats.go's goroutines).
	dialSaid dialSaid

	stopWriter chan struct{}
	writerDone chan struct{}
	flushBy    chan struct{} // closed when Close's context is done: stop publishing
	pubDone    chan struct{}
	closeOnce  sync.Once

	st struct {
		appended, rejected, droppedBuf, droppedSpool, overflows atomic.Uint64
		spooled, acked, resends, ackedThrough                   atomic.Uint64
		connected                                               atomic.Bool
		errMu                                                   sync.Mutex
		lastErr                                                 string
	}
}

type qentry struct {
	kind       Kind // 0: a marker of lost/over
	off, n     int
	lost, over uint64
}

type startGap struct {
	first, last    uint64
	reason, detail string
}

// gapOutcome says whether the gap record of a record the stream refused is in the spool
// (then the publisher may retire the record) or could not be written (it sends it again).
type gapOutcome struct {
	seq     uint64
	written bool
}

type pubEvent struct {
	seq uint64
	err error
}

// seqBlock is how many seqs one durable reservation covers.
const seqBlock = 1 << 16

// NewExporter opens the spool, recovers it (a torn tail is cut, the next seq is found, a crash
// is reported by a gap record), and starts the writer and the publisher. It returns without
// waiting for NATS: records spool until the server is reachable.
func NewExporter(cfg ExporterConfig) (*Exporter, error) {
	host, token, err := hostAndToken(cfg.Host)
	if err != nil {
		return nil, err
	}
	cfg.Host = host
	if cfg.BootID == "" {
		cfg.BootID = KernelBootID()
	}
	if cfg.SpoolDir == "" {
		return nil, errors.New("no spool directory given (--spool DIR)")
	}
	if err := cfg.Conn.Check(); err != nil {
		return nil, err
	}
	if cfg.SpoolMaxBytes <= 0 {
		cfg.SpoolMaxBytes = 1 << 30
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = min(16<<20, cfg.SpoolMaxBytes/8)
	}
	if cfg.SegmentBytes > cfg.SpoolMaxBytes/4 {
		// A segment is deleted only when it is not the one being written: with fewer than
		// four segments in the limit, acknowledging everything might free nothing.
		cfg.SegmentBytes = max(cfg.SpoolMaxBytes/4, 1)
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Second
	}
	if cfg.BufferRecords <= 0 {
		cfg.BufferRecords = 65536
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = 32 << 20
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = 64 << 10
	}
	if cfg.Window <= 0 {
		cfg.Window = 4096
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = func(string) {}
	}
	cfg.Stream = cfg.Stream.withDefaults()
	if cfg.Conn.Name == "" {
		cfg.Conn.Name = "fsnotifyd-export " + cfg.Host
	}
	if cfg.Conn.InboxPrefix == "" {
		cfg.Conn.InboxPrefix = HostInboxPrefix(token)
	}

	sp, rec, err := spool.Open(spool.Options{Dir: cfg.SpoolDir, MaxBytes: cfg.SpoolMaxBytes, SegmentBytes: cfg.SegmentBytes})
	if err != nil {
		return nil, err
	}
	e := &Exporter{
		cfg: cfg, token: token, sp: sp,
		qwake:      make(chan struct{}, 1),
		events:     make(chan pubEvent, 2*cfg.Window),
		connCh:     make(chan struct{}, 1),
		stopWriter: make(chan struct{}),
		writerDone: make(chan struct{}),
		flushBy:    make(chan struct{}),
		pubDone:    make(chan struct{}),
	}
	e.prefix = append(e.prefix, `{"host":`...)
	e.prefix = appendJSONString(e.prefix, cfg.Host)
	e.prefix = append(e.prefix, `,"boot_id":`...)
	e.prefix = appendJSONString(e.prefix, cfg.BootID)
	e.prefix = append(e.prefix, `,"seq":`...)
	if err := e.recover(rec); err != nil {
		sp.Close()
		return nil, err
	}
	go e.writeLoop()
	go e.publishLoop()
	return e, nil
}

// recover finds the next seq from the spool and its state, and queues the gap records that
// the previous run owes.
func (e *Exporter) recover(rec spool.Recovery) error {
	st, err := e.sp.ReadSeq()
	if err != nil {
		return err
	}
	if rec.Truncated > 0 {
		e.logf("spool: cut a torn tail of %d bytes after seq %d (an interrupted write)", rec.Truncated, rec.LastSeq)
	}
	last := rec.LastSeq
	switch {
	case st.Clean:
		last = max(last, st.Last)
	case st.Reserved == 0:
		// A new spool (or one without state: seqs go on from what it holds).
	case st.BootID != "" && st.BootID == e.cfg.BootID && rec.Segments > 0:
		// The previous run died, the machine did not reboot: the page cache kept every write
		// it made, so the spool's last seq is the last one it used (nothing later left it).
		e.firstGap = append(e.firstGap, startGap{reason: ReasonCrash,
			detail: fmt.Sprintf("the previous exporter run stopped without closing (seq %d was its last in the spool); records it held in memory were lost, their number unknown", last)})
	default:
		// A reboot (or the spool's segments are gone): the spool's tail may have been lost
		// with the page cache, and seqs up to the reservation may have been published. Go on
		// above the reservation, so no seq is ever used twice.
		if st.Reserved > last {
			e.firstGap = append(e.firstGap, startGap{first: last + 1, last: st.Reserved, reason: ReasonCrash,
				detail: "the previous exporter run stopped without closing and the machine rebooted: these seqs were either never used or lost with an unsynced spool tail; records held in memory were lost too, their number unknown"})
		} else {
			e.firstGap = append(e.firstGap, startGap{reason: ReasonCrash,
				detail: "the previous exporter run stopped without closing; records it held in memory were lost, their number unknown"})
		}
		last = max(last, st.Reserved)
	}
	if p := st.Pending; p != nil && st.Clean {
		e.firstGap = append([]startGap{{first: p.First, last: p.Last, reason: p.Reason}}, e.firstGap...)
	}
	e.idKey = st.IDKey
	if e.idKey == "" {
		// A new spool (or one of a version without the key: its unacknowledged records are
		// resent under new ids, so one whose ack was lost is stored, and shown, twice: once).
		var k [16]byte
		if _, err := rand.Read(k[:]); err != nil {
			return fmt.Errorf("spool: choosing its message id key: %w", err)
		}
		e.idKey = hex.EncodeToString(k[:])
	}
	e.msgID = e.token + "/" + e.idKey + "/"
	e.next = last + 1
	e.lastSeq.Store(last)
	e.reserved = last + seqBlock
	if err := e.sp.WriteSeq(spool.Seq{Reserved: e.reserved, BootID: e.cfg.BootID, IDKey: e.idKey}); err != nil {
		return err
	}
	e.from = e.sp.ReadAcked() + 1
	e.st.ackedThrough.Store(e.from - 1)
	if rec.Segments > 0 {
		e.logf("spool: %d segment(s), %d bytes to send; next seq %d", rec.Segments, rec.Bytes, e.next)
	}
	return nil
}

func (e *Exporter) logf(format string, args ...any) { e.cfg.Log(fmt.Sprintf(format, args...)) }

func (e *Exporter) setErr(err error) {
	e.st.errMu.Lock()
	e.st.lastErr = err.Error()
	e.st.errMu.Unlock()
}

// Host is the host name in the records; Token its subject token.
func (e *Exporter) Host() string  { return e.cfg.Host }
func (e *Exporter) Token() string { return e.token }

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("fleet exporter closed")

// Append queues one record: payload is a JSON object (the object `watch --json` prints for
// an event, or the guard's audit line for a decision) to which the exporter adds host,
// boot_id, seq and kind; it must not have those keys itself. Append copies payload and never
// waits: when the memory buffer is full the record is dropped, and the stream later gets a
// gap record naming its seq. It is safe for concurrent use; records get seqs in the order
// their Append calls took the buffer's lock.
func (e *Exporter) Append(kind Kind, payload []byte) error {
	one := [1][]byte{payload}
	_, err := e.AppendBatch(kind, one[:])
	return err
}

// AppendBatch is Append of each payload in turn, under one taking of the buffer's lock and
// with at most one wake-up of the writer: a caller that has several records at once (the
// daemon's export loop, once per read of its group) saves the writer a wake-up, a take and a
// spool write per record. The payloads are copied. It returns how many were taken (queued,
// or dropped for a full buffer with a gap record to come, as by Append), and the error of
// the first one refused (not a JSON object, or the exporter closed), which leaves no seq.
func (e *Exporter) AppendBatch(kind Kind, payloads [][]byte) (taken int, err error) {
	if kind != Event && kind != Decision {
		e.st.rejected.Add(uint64(len(payloads)))
		return 0, fmt.Errorf("fleet: Append of kind %v (want Event or Decision)", kind)
	}
	var queued, lost, rejected uint64
	e.qmu.Lock()
	for _, p := range payloads {
		switch {
		case len(p) < 2 || p[0] != '{' || p[len(p)-1] != '}':
			rejected++
			if err == nil {
				err = errors.New("fleet: Append: the payload is not a JSON object")
			}
		case e.qclosed:
			rejected++
			if err == nil {
				err = ErrClosed
			}
		case len(e.qents) >= e.cfg.BufferRecords || len(e.qbuf)+len(p) > e.cfg.BufferBytes:
			e.qlost++
			lost++
		default:
			e.markLocked()
			e.qents = append(e.qents, qentry{kind: kind, off: len(e.qbuf), n: len(p)})
			e.qbuf = append(e.qbuf, p...)
			queued++
		}
	}
	e.qmu.Unlock()
	if rejected > 0 {
		e.st.rejected.Add(rejected)
	}
	if lost > 0 {
		e.st.droppedBuf.Add(lost)
	}
	if queued > 0 {
		e.st.appended.Add(queued)
	}
	if queued > 0 {
		select {
		case e.qwake <- struct{}{}:
		default:
		}
	}
	return int(queued + lost), err
}

// markLocked queues what was lost since the last queued entry, so that its gap record comes
// in its place in the order.
func (e *Exporter) markLocked() {
	if e.qlost > 0 || e.qover > 0 {
		e.qents = append(e.qents, qentry{lost: e.qlost, over: e.qover})
		e.qlost, e.qover = 0, 0
	}
}

// Overflow reports that the caller's source lost events it could not count (a kernel queue
// overflow): the stream gets a gap record of reason "overflow" in its place in the order.
// It never waits.
func (e *Exporter) Overflow() {
	e.st.overflows.Add(1)
	e.qmu.Lock()
	if e.qclosed {
		e.qmu.Unlock()
		return
	}
	e.qover++
	e.qmu.Unlock()
	select {
	case e.qwake <- struct{}{}:
	default:
	}
}

// take swaps out the memory buffer (writer only). The trailing counters are what was lost
// after the last entry taken.
func (e *Exporter) take(final bool) (ents []qentry, buf []byte, damaged []startGap) {
	e.qmu.Lock()
	e.qfinal = e.qfinal || final
	e.markLocked()
	ents, buf, damaged = e.qents, e.qbuf, e.qdamaged
	e.qents, e.qbuf, e.qdamaged = e.spareEnt[:0], e.spareBuf[:0], nil
	e.qmu.Unlock()
	e.spareEnt, e.spareBuf = ents, buf
	return ents, buf, damaged
}

// writeLoop is the spool writer: it takes batches from the memory buffer, gives them seqs and
// writes them to the spool.
func (e *Exporter) writeLoop() {
	defer close(e.writerDone)
	tick := time.NewTicker(e.cfg.SyncInterval)
	defer tick.Stop()
	dirty := false
	for _, g := range e.firstGap {
		e.gap(g.first, g.last, g.reason, g.detail)
	}
	e.firstGap = nil
	e.flush()
	for {
		stopping := false
		select {
		case <-e.qwake:
		case <-tick.C:
			if e.pend != nil && e.writePending() { // room again: say what was lost
				e.flush()
			}
			if dirty {
				if err := e.sp.Sync(); err != nil {
					e.logf("spool: %v", err)
				}
				dirty = false
			}
		case <-e.stopWriter:
			stopping = true
		}
		if writerGate != nil {
			writerGate()
		}
		ents, buf, damaged := e.take(stopping)
		var rejected []gapOutcome // with the seq of their gap record until it is written
		var gapSeqs []uint64
		for _, d := range damaged {
			detail := d.detail
			if detail == "" {
				detail = "spooled records that could not be read back"
			}
			ok := e.gap(d.first, d.last, d.reason, detail)
			if d.reason == ReasonRejected {
				rejected = append(rejected, gapOutcome{seq: d.first, written: ok})
				gapSeqs = append(gapSeqs, e.framed)
				if ok {
					e.st.droppedSpool.Add(1)
				}
			} else {
				e.st.droppedSpool.Add(d.last - d.first + 1)
			}
		}
		for i := range ents {
			q := &ents[i]
			if q.kind == 0 {
				if q.lost > 0 {
					e.logf("memory buffer full: %d record(s) dropped (the spool writer fell behind)", q.lost)
					e.drop(q.lost, ReasonBufferFull)
					e.writePending()
				}
				for j := uint64(0); j < q.over; j++ {
					e.gap(0, 0, ReasonOverflow, "the event source's queue overflowed: events were lost before they reached the exporter")
				}
				continue
			}
			e.record(q.kind, buf[q.off:q.off+q.n])
		}
		if e.flush() {
			dirty = true
		}
		if len(rejected) > 0 {
			for i := range rejected {
				rejected[i].written = rejected[i].written && e.written.Load() >= gapSeqs[i]
			}
			e.qmu.Lock()
			e.qgapped = append(e.qgapped, rejected...)
			e.qmu.Unlock()
			select {
			case e.connCh <- struct{}{}: // wake the publisher
			default:
			}
		}
		if stopping {
			if !e.crashed {
				e.closeSpool()
			}
			return
		}
	}
}

// assign hands out the next seq, reserving a new block durably first when needed. A
// reservation that cannot be written makes the seq a loss: it must not reach the spool.
func (e *Exporter) assign() (uint64, bool) {
	seq := e.next
	if seq > e.reserved {
		res := seq - 1 + seqBlock
		if err := e.sp.WriteSeq(spool.Seq{Reserved: res, BootID: e.cfg.BootID, IDKey: e.idKey}); err != nil {
			e.logf("spool: reserving seqs: %v", err)
			e.setErr(err)
			return seq, false
		}
		e.reserved = res
	}
	e.next++
	e.lastSeq.Store(seq)
	return seq, true
}

// drop loses the next n seqs for reason: they join the pending gap. Buffer-full losses were
// counted by Append; the others count as spool losses.
func (e *Exporter) drop(n uint64, reason string) {
	if n == 0 {
		return
	}
	if reason != ReasonBufferFull {
		e.st.droppedSpool.Add(n)
	}
	if reason == ReasonSpoolFull && e.fullFrom == 0 {
		// Said once when it fills (not per record), and again when it has room (writePending).
		e.fullFrom = e.st.droppedSpool.Load() - n + 1
		e.logf("spool %s is full (%d bytes, --spool-max-bytes), NATS not taking records fast enough: records are dropped (counted), and named by a %s gap record once there is room", e.cfg.SpoolDir, e.cfg.SpoolMaxBytes, ReasonSpoolFull)
	}
	first := e.next
	e.next += n
	e.lastSeq.Store(e.next - 1)
	e.addPending(first, e.next-1, reason)
}

// addPending adds the seqs first..last to the pending gap. Pending seqs are always the latest
// ones (a pending gap is written before any later record), so the union is one range.
func (e *Exporter) addPending(first, last uint64, reason string) {
	if e.pend == nil {
		e.pend = &spool.PendingGap{First: first, Last: last, Reason: reason}
		return
	}
	e.pend.First = min(e.pend.First, first)
	e.pend.Last = max(e.pend.Last, last)
	if !strings.Contains(","+e.pend.Reason+",", ","+reason+",") {
		e.pend.Reason += "," + reason
	}
}

// writePending writes the pending gap record if it fits; false if it did not.
func (e *Exporter) writePending() bool {
	if e.pend == nil {
		return true
	}
	p := e.pend
	e.rec = e.buildGap(e.rec[:0], e.next, p.First, p.Last, p.Reason, "")
	if !e.fits(len(e.rec)) {
		return false
	}
	e.pend = nil
	e.put(Gap, e.rec)
	if e.fullFrom != 0 {
		e.logf("spool %s has room again: %d records were dropped while it was full (seqs %d-%d, named by the gap record)", e.cfg.SpoolDir, e.st.droppedSpool.Load()-e.fullFrom+1, p.First, p.Last)
		e.fullFrom = 0
	}
	return true
}

// record spools one Append'ed record, or loses it (with a gap record to follow).
func (e *Exporter) record(kind Kind, payload []byte) {
	if !e.writePending() {
		e.drop(1, ReasonSpoolFull)
		return
	}
	e.rec = e.buildRecord(e.rec[:0], e.next, kind, payload)
	if len(e.rec) > e.cfg.MaxRecordBytes {
		e.drop(1, ReasonTooLarge)
		e.writePending()
		return
	}
	if !e.fits(len(e.rec)) {
		e.drop(1, ReasonSpoolFull)
		return
	}
	e.put(kind, e.rec)
}

// gap spools a gap record (a range, or none for first == 0), or loses it (false).
func (e *Exporter) gap(first, last uint64, reason, detail string) bool {
	if !e.writePending() {
		e.drop(1, reason)
		return false
	}
	e.rec = e.buildGap(e.rec[:0], e.next, first, last, reason, detail)
	if !e.fits(len(e.rec)) {
		e.drop(1, reason)
		return false
	}
	return e.put(Gap, e.rec)
}

func (e *Exporter) fits(n int) bool {
	return e.sp.Fits(int64(len(e.frames)) + spool.FrameSize(n))
}

// put frames rec (built with seq e.next) and queues it for the next write; false if it was
// lost instead.
func (e *Exporter) put(kind Kind, rec []byte) bool {
	size := spool.FrameSize(len(rec))
	if e.sp.NeedRotate(int64(len(e.frames)), size) {
		e.flush()
		if err := e.sp.Rotate(e.next); err != nil {
			e.logf("%v", err)
			e.setErr(err)
			e.drop(1, ReasonSpoolError)
			return false
		}
	}
	seq, ok := e.assign()
	if !ok {
		e.drop(1, ReasonSpoolError)
		return false
	}
	e.frames = spool.AppendFrame(e.frames, seq, byte(kind), rec)
	e.framed = seq
	e.st.spooled.Add(1)
	return true
}

// flush writes the queued frames; it reports whether it wrote any.
func (e *Exporter) flush() bool {
	if len(e.frames) == 0 {
		return false
	}
	err := e.sp.Write(e.frames, e.framed)
	if err == nil {
		e.written.Store(e.framed)
	} else {
		// The batch is lost (the spool cut what part of it was written): its seqs go to a gap.
		e.logf("%v", err)
		e.setErr(err)
		n, first := uint64(0), uint64(0)
		for b := e.frames; len(b) > 0; n++ {
			if first == 0 {
				first = binary.LittleEndian.Uint64(b[spool.HeaderSize:])
			}
			b = b[spool.HeaderSize+int(binary.LittleEndian.Uint32(b)):]
		}
		e.st.spooled.Add(^(n - 1))
		e.st.droppedSpool.Add(n)
		e.addPending(first, e.next-1, ReasonSpoolError)
	}
	e.frames = e.frames[:0]
	return err == nil
}

// writerGate, when set (by tests, before NewExporter), runs before each batch of the writer.
var writerGate func()

// queued is the number of entries in the memory buffer (benchmarks).
func (e *Exporter) queued() int {
	e.qmu.Lock()
	defer e.qmu.Unlock()
	return len(e.qents)
}

// abandon stops the exporter as a crash would (tests): no clean state, nothing flushed.
func (e *Exporter) abandon() {
	e.qmu.Lock()
	e.qclosed = true
	e.qmu.Unlock()
	e.crashed = true
	close(e.stopWriter)
	<-e.writerDone
	close(e.flushBy)
	<-e.pubDone
	e.sp.Close()
}

// buildRecord is {"host":..,"boot_id":..,"seq":N,"kind":"K", + the payload's fields.
func (e *Exporter) buildRecord(dst []byte, seq uint64, kind Kind, payload []byte) []byte {
	dst = append(dst, e.prefix...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"kind":"`...)
	dst = append(dst, kind.String()...)
	dst = append(dst, '"')
	inner := payload[1:]
	if len(bytes.TrimSpace(inner[:len(inner)-1])) > 0 { // bytes, not a string: no copy of the payload per record
		dst = append(dst, ',')
	}
	return append(dst, inner...)
}

func (e *Exporter) buildGap(dst []byte, seq, first, last uint64, reason, detail string) []byte {
	dst = append(dst, e.prefix...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"kind":"gap"`...)
	return appendGap(dst, time.Now(), reason, first, last, detail)
}

// closeSpool writes what is left (the pending gap, if it fits, or else into the state), syncs,
// and marks the state clean.
func (e *Exporter) closeSpool() {
	e.writePending()
	e.flush()
	st := spool.Seq{Reserved: e.reserved, Clean: true, Last: e.next - 1, BootID: e.cfg.BootID, Pending: e.pend, IDKey: e.idKey}
	if err := e.sp.Sync(); err != nil {
		e.logf("%v", err)
	}
	if err := e.sp.WriteSeq(st); err != nil {
		e.logf("%v", err)
	}
}

// Close stops accepting records, writes the buffered ones to the spool, and publishes until
// everything spooled is acknowledged or ctx is done; what is left stays in the spool for the
// next run. It returns the number of spooled records not yet acknowledged.
func (e *Exporter) Close(ctx context.Context) (unsent uint64) {
	e.closeOnce.Do(func() {
		e.qmu.Lock()
		e.qclosed = true
		e.qmu.Unlock()
		close(e.stopWriter)
		<-e.writerDone
		stop := context.AfterFunc(ctx, func() { close(e.flushBy) })
		<-e.pubDone
		if stop() {
			close(e.flushBy)
		}
		if err := e.sp.WriteAcked(e.st.ackedThrough.Load()); err != nil {
			e.logf("%v", err)
		}
		if err := e.sp.Close(); err != nil {
			e.logf("%v", err)
		}
	})
	if last := e.lastSeq.Load(); last > e.st.ackedThrough.Load() {
		return last - e.st.ackedThrough.Load()
	}
	return 0
}

// Stats returns the exporter's counters.
func (e *Exporter) Stats() Stats {
	s := Stats{
		Appended: e.st.appended.Load(), Rejected: e.st.rejected.Load(),
		DroppedBuffer: e.st.droppedBuf.Load(), DroppedSpool: e.st.droppedSpool.Load(),
		Overflows: e.st.overflows.Load(), Spooled: e.st.spooled.Load(), Acked: e.st.acked.Load(),
		Resends: e.st.resends.Load(), LastSeq: e.lastSeq.Load(), AckedThrough: e.st.ackedThrough.Load(),
		SpoolBytes: e.sp.Bytes(), Connected: e.st.connected.Load(),
	}
	e.st.errMu.Lock()
	s.LastError = e.st.lastErr
	e.st.errMu.Unlock()
	return s
}

// flight is one record in the publish window.
type flight struct {
	seq   uint64
	msg   *nats.Msg
	state uint8
}

const (
	flightSent uint8 = iota + 1 // awaiting its ack
	flightAcked
	flightFailed
	flightRejected // refused by the stream for good: retired once its gap record is spooled
)

// refusedForGood reports whether a publish error says the stream (or server) will never take
// this record, however often it is sent: larger than the stream's max_msg_size (or its
// headers than their limit), or than the server's max_payload.
func refusedForGood(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum || apiErr.ErrorCode == 10097 // JSStreamHeaderExceedsMaximumErr
	}
	return errors.Is(err, nats.ErrMaxPayload)
}

// onAck and onErr run on nats.go's goroutines: they only pass the outcome on. The channel has
// room for twice the window and at most one outcome per message in flight is due, so the send
// does not wait; evExtra is a guard that keeps nats.go's goroutine from ever blocking anyway.
func (e *Exporter) onAck(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
	e.deliver(pubEvent{seq: msgSeq(m)})
}

func (e *Exporter) onErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	e.deliver(pubEvent{seq: msgSeq(m), err: err})
}

func (e *Exporter) deliver(ev pubEvent) {
	select {
	case e.events <- ev:
	default:
		e.evMu.Lock()
		e.evExtra = append(e.evExtra, ev)
		e.evMu.Unlock()
		select {
		case e.connCh <- struct{}{}:
		default:
		}
	}
}

// msgSeq is the seq in a message's Nats-Msg-Id (TOKEN/KEY/SEQ).
func msgSeq(m *nats.Msg) uint64 {
	id := m.Header.Get(jetstream.MsgIDHeader)
	i := strings.LastIndexByte(id, '/')
	v, _ := strconv.ParseUint(id[i+1:], 10, 64)
	return v
}

func (e *Exporter) connChanged(what string, err error) {
	switch what {
	case "connected", "reconnected":
		e.dialSaid.reset()
		e.st.connected.Store(true)
		e.logf("NATS %s (%s)", what, e.cfg.Conn.Redacted())
	case "disconnected":
		e.st.connected.Store(false)
		if err != nil {
			e.logf("NATS disconnected: %v; records are kept in the spool until it is back", err)
		}
	case "closed":
		e.st.connected.Store(false)
	case "dial failed":
		if err != nil && e.dialSaid.first(err.Error()) {
			e.logf("%v; records are kept in the spool, trying again", err)
			e.setErr(err)
		}
	case "error":
		if err != nil {
			e.logf("NATS: %v", err)
			e.setErr(err)
		}
	}
	select {
	case e.connCh <- struct{}{}:
	default:
	}
}

// publishLoop is the publisher: it reads the spool in seq order, publishes with a window of
// acknowledgements outstanding, resends what failed, and tells the spool what was acked.
func (e *Exporter) publishLoop() {
	defer close(e.pubDone)
	rd := e.sp.NewReader(e.from)
	defer rd.Close()
	var (
		nc          *nats.Conn
		js          jetstream.JetStream
		ring        []flight // in seq order
		outstanding int
		resend      bool
		streamOK    bool
		caughtUp    bool
		retryAt     time.Time
		backoff     = 250 * time.Millisecond
		lastAckSave time.Time
		corrupt     []startGap
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	writerDone := e.writerDone
	fail := func(err error) {
		if resend {
			return // one round of retries at a time
		}
		e.setErr(err)
		resend = true
		retryAt = time.Now().Add(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
	dial := func() {
		var err error
		nc, err = e.cfg.Conn.dialRetrying(e.connChanged)
		if err != nil { // bad options only: Check passed, so a surprise
			e.logf("NATS: %v", err)
			e.setErr(err)
			nc = nil
			return
		}
		js, err = jetstream.New(nc,
			jetstream.WithDefaultTimeout(e.cfg.Conn.timeout()),
			jetstream.WithPublishAsyncAckHandler(e.onAck),
			jetstream.WithPublishAsyncErrHandler(e.onErr),
			jetstream.WithPublishAsyncMaxPending(2*e.cfg.Window),
			jetstream.WithPublishAsyncTimeout(e.cfg.AckTimeout))
		if err != nil {
			e.logf("NATS: %v", err)
			nc.Close()
			nc = nil
		}
		streamOK = false
	}
	// reject hands a record the stream refused for good to the writer, which writes a gap
	// record naming it (reason rejected); the record is retired once that is in the spool.
	// Not when the writer has taken its last batch: the record stays in the spool, and the
	// next run names it.
	reject := func(f *flight, err error) bool {
		if !refusedForGood(err) || writerDone == nil {
			return false
		}
		e.qmu.Lock()
		ok := !e.qfinal
		if ok {
			e.qdamaged = append(e.qdamaged, startGap{first: f.seq, last: f.seq, reason: ReasonRejected,
				detail: "the stream refused the record for good: " + err.Error()})
		}
		e.qmu.Unlock()
		if !ok {
			return false
		}
		f.state = flightRejected
		e.logf("the stream refused seq %d for good (%v): a gap record names it", f.seq, err)
		e.setErr(err)
		select {
		case e.qwake <- struct{}{}:
		default:
		}
		return true
	}
	lastLogged := ""    // the last publish failure logged
	lastStreamErr := "" // the last stream problem logged
	handle := func(ev pubEvent) {
		i := sort.Search(len(ring), func(i int) bool { return ring[i].seq >= ev.seq })
		if i == len(ring) || ring[i].seq != ev.seq || ring[i].state != flightSent {
			return
		}
		outstanding--
		if ev.err != nil && reject(&ring[i], ev.err) {
			return
		}
		if ev.err != nil {
			if msg := ev.err.Error(); msg != lastLogged {
				// Once per kind of failure in a row: a stream that refuses records (full,
				// discarding new ones) is said in the log, not only in the lag.
				lastLogged = msg
				hint := ""
				var apiErr *jetstream.APIError
				if errors.As(ev.err, &apiErr) && apiErr.ErrorCode == 10023 { // JSInsufficientResourcesErr
					hint = " (the NATS server's JetStream storage is full: free its disk or raise its max_file_store)"
				}
				e.logf("publishing seq %d: %v%s; kept in the spool, sent again", ev.seq, ev.err, hint)
			}
			ring[i].state = flightFailed
			if errors.Is(ev.err, jetstream.ErrNoStreamResponse) || errors.Is(ev.err, nats.ErrNoResponders) {
				streamOK = false
			}
			fail(ev.err)
			return
		}
		ring[i].state = flightAcked
		e.st.acked.Add(1)
		backoff = 250 * time.Millisecond
		lastLogged = ""
	}
	for {
		// Take every outcome that arrived.
		for more := true; more; {
			select {
			case ev := <-e.events:
				handle(ev)
			default:
				more = false
			}
		}
		e.evMu.Lock()
		extra := e.evExtra
		e.evExtra = nil
		e.evMu.Unlock()
		for _, ev := range extra {
			handle(ev)
		}
		// The writer's outcomes for refused records: retired (their gap record is spooled),
		// or sent again.
		e.qmu.Lock()
		gapped := e.qgapped
		e.qgapped = nil
		e.qmu.Unlock()
		for _, g := range gapped {
			i := sort.Search(len(ring), func(i int) bool { return ring[i].seq >= g.seq })
			if i == len(ring) || ring[i].seq != g.seq || ring[i].state != flightRejected {
				continue
			}
			if g.written {
				ring[i].state = flightAcked
			} else {
				ring[i].state = flightFailed
				fail(errors.New("the gap record of a refused record could not be spooled"))
			}
		}
		// Retire the acknowledged head of the window.
		n := 0
		for n < len(ring) && ring[n].state == flightAcked {
			n++
		}
		if n > 0 {
			through := ring[n-1].seq
			ring = append(ring[:0], ring[n:]...)
			if len(ring) == 0 && caughtUp {
				// Nothing in flight and the reader has seen everything committed: every seq
				// up to the last one read is either acknowledged or was never spooled.
				through = max(through, rd.Pos()-1)
			}
			e.st.ackedThrough.Store(through)
			e.sp.Ack(through)
			if time.Since(lastAckSave) > time.Second {
				e.sp.WriteAcked(through)
				lastAckSave = time.Now()
			}
		}

		if nc == nil && time.Now().After(retryAt) {
			dial()
			if nc == nil {
				retryAt = time.Now().Add(backoff)
				backoff = min(2*backoff, 5*time.Second)
			}
		}
		if nc != nil && nc.IsClosed() {
			// Given up by nats.go (repeated authorization errors): dial afresh later.
			e.logf("NATS connection closed (%v); dialing again in %v", nc.LastError(), backoff)
			nc.Close()
			nc = nil
			for i := range ring {
				if ring[i].state == flightSent {
					ring[i].state = flightFailed
				}
			}
			outstanding = 0
			fail(errors.New("NATS connection closed"))
		}
		connected := nc != nil && nc.IsConnected()
		now := time.Now()
		if connected && !streamOK && now.After(retryAt) {
			ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Conn.timeout())
			err := EnsureStream(ctx, js, e.cfg.Stream)
			cancel()
			if err != nil {
				if msg := err.Error(); msg != lastStreamErr { // each problem once, until it changes
					lastStreamErr = msg
					e.logf("%v", err)
				}
				waiting := resend
				fail(err)
				if waiting {
					// fail leaves retryAt to the round already waiting, which is past: back
					// off here, or the check would run again at once, every 10 ms.
					retryAt = time.Now().Add(backoff)
					backoff = min(2*backoff, 5*time.Second)
				}
			} else {
				streamOK = true
				if lastStreamErr != "" {
					e.logf("stream %s is there: exporting", e.cfg.Stream.Name)
					lastStreamErr = ""
				}
			}
		}
		ready := connected && streamOK
		if ready && resend && outstanding == 0 && !time.Now().Before(retryAt) {
			resend = false
			for i := range ring {
				if ring[i].state == flightFailed {
					if err := e.send(js, &ring[i]); err != nil {
						if reject(&ring[i], err) {
							continue
						}
						fail(err)
						break
					}
					outstanding++
					e.st.resends.Add(1)
				}
			}
		}
		if ready && !resend {
			caughtUp = false
			for len(ring) < e.cfg.Window {
				f, ok, err := rd.Next()
				var bad *spool.ErrCorrupt
				if errors.As(err, &bad) {
					e.logf("%v", err)
					corrupt = append(corrupt, startGap{first: bad.First, last: bad.Last, reason: ReasonSpoolDamaged})
					continue
				}
				if err != nil {
					e.logf("%v", err)
					e.setErr(err)
					fail(err)
					break
				}
				if !ok {
					caughtUp = true
					break
				}
				data := make([]byte, len(f.Data))
				copy(data, f.Data)
				m := &nats.Msg{Subject: Subject(Kind(f.Kind), e.token), Data: data, Header: nats.Header{}}
				m.Header.Set(jetstream.MsgIDHeader, e.msgID+strconv.FormatUint(f.Seq, 10))
				ring = append(ring, flight{seq: f.Seq, msg: m})
				if err := e.send(js, &ring[len(ring)-1]); err != nil {
					if reject(&ring[len(ring)-1], err) {
						continue
					}
					ring[len(ring)-1].state = flightFailed
					fail(err)
					break
				}
				outstanding++
			}
		}
		if len(corrupt) > 0 {
			// Damaged spool ranges become gap records through the writer, which owns seqs
			// (after Close they are only logged, above, and the next run reads past them).
			e.qmu.Lock()
			e.qdamaged = append(e.qdamaged, corrupt...)
			e.qmu.Unlock()
			corrupt = corrupt[:0]
			select {
			case e.qwake <- struct{}{}:
			default:
			}
		}

		// Done? After Close: everything read and acknowledged, or Close's deadline passed.
		if writerDone == nil && caughtUp && len(ring) == 0 {
			return
		}

		// Wait for something to do.
		wait := time.Hour
		if resend || !streamOK || nc == nil {
			wait = max(time.Until(retryAt), 10*time.Millisecond)
		}
		timer.Reset(wait)
		var changed <-chan struct{}
		if ready && !resend && len(ring) < e.cfg.Window {
			changed = e.sp.Changed()
		}
		select {
		case ev := <-e.events:
			handle(ev)
		case <-changed:
		case <-e.connCh:
		case <-timer.C:
		case <-writerDone:
			writerDone = nil
			caughtUp = false // the writer's last batch may have come after the last read
		case <-e.flushBy:
			if writerDone == nil {
				return
			}
		}
	}
}

// send publishes one record asynchronously.
func (e *Exporter) send(js jetstream.JetStream, f *flight) error {
	f.state = flightSent
	if _, err := js.PublishMsgAsync(f.msg); err != nil {
		f.state = flightFailed
		return err
	}
	return nil
}

//go:build linux

package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// The fleet export (serve --export, docs/fleet.md). The daemon places the marks of the
// config's "export EVENTS GLOB..." lines itself, in an engine group of its own (the export
// group, a notification group like any client's); one goroutine (exportLoop) reads it and
// hands each matching event to the fleet exporter, whose Append copies and never waits. The
// kernel's readers only queue into the group, as for any client: they never wait on NATS or
// the disk. An overflow of the group's queue (or of the kernel's, which the backend passes to
// every group) becomes the exporter's overflow gap record.
//
// Decisions: a permission client that wants its decisions exported sends a proto.Report
// after each answer (its audit record); the daemon checks that it is a JSON object without
// the record fields the exporter adds, puts the client's identity in front, and appends it.

// ExportRule is one "export EVENTS GLOB [GLOB...]" line: events of the mask on paths that
// match one of the globs are exported.
type ExportRule struct {
	Mask  engine.Mask
	Globs []*policy.Glob
	Where string // FILE:LINE, for errors at start
}

// parseExportLine parses the values of an export line (after the key).
func parseExportLine(vals []string) (ExportRule, error) {
	if len(vals) < 2 {
		return ExportRule{}, fmt.Errorf("export needs EVENTS and at least one GLOB (e.g. export open,modify,close_write,delete,rename /etc/**)")
	}
	mask, err := format.ParseEvents(vals[0])
	if err != nil {
		return ExportRule{}, fmt.Errorf("export: %v", err)
	}
	if mask&engine.PermissionEvents != 0 {
		return ExportRule{}, fmt.Errorf("export: %s: permission events are decided by guards, not exported as events (their decisions are exported when the guard reports them)", vals[0])
	}
	r := ExportRule{Mask: mask}
	for _, v := range vals[1:] {
		if !strings.HasPrefix(v, "/") {
			return r, fmt.Errorf("export: glob %q: want an absolute pattern (/etc/**): the daemon marks the directory it starts with", v)
		}
		g, err := policy.CompileGlob(v)
		if err != nil {
			return r, fmt.Errorf("export: %v", err)
		}
		r.Globs = append(r.Globs, g)
	}
	return r, nil
}

// ParseExportConfig reads a file of export lines (serve --export-config): the export lines of
// a daemon config, alone. Errors name the file and line.
func ParseExportConfig(name string, src string) ([]ExportRule, error) {
	var rules []ExportRule
	for i, text := range strings.Split(src, "\n") {
		if j := strings.IndexByte(text, '#'); j >= 0 {
			text = text[:j]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if f[0] != "export" {
			return nil, fmt.Errorf("%s:%d: unknown key %q (an export config has only lines \"export EVENTS GLOB...\")", name, i+1, f[0])
		}
		r, err := parseExportLine(f[1:])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, i+1, err)
		}
		r.Where = name + ":" + strconv.Itoa(i+1)
		rules = append(rules, r)
	}
	return rules, nil
}

// markRoot is where a glob's subtree mark goes: its components before the first with a
// wildcard; for a glob without any (literal), the path itself, which the caller replaces by
// its directory when it is not one.
func markRoot(glob string) (root string, literal bool) {
	comps := strings.Split(strings.Trim(glob, "/"), "/")
	root = "/"
	for _, c := range comps {
		if c == "" {
			continue
		}
		if strings.ContainsAny(c, `*?[\`) {
			return root, false
		}
		root = strings.TrimSuffix(root, "/") + "/" + c
	}
	return root, true
}

// exporter is the daemon's side of the fleet export.
type exporter struct {
	exp   *fleet.Exporter
	rules []ExportRule
	g     *engine.Group // nil without export lines
	stop  context.CancelFunc
	done  sync.WaitGroup
	// interval and maxInterval are exportInterval and exportMaxInterval when the loop
	// started: the least time between two reads, and how far it grows while reads bring few
	// records (see nextInterval).
	interval, maxInterval time.Duration

	events, decisions, refused atomic.Uint64
}

// startExport places the export marks and starts exportLoop. Errors name the export line.
func (s *Server) startExport(exp *fleet.Exporter, rules []ExportRule) error {
	if exp == nil {
		if len(rules) > 0 {
			s.log.Warn("export lines in the config but no --export: nothing is exported", "line", rules[0].Where)
		}
		return nil
	}
	x := &exporter{exp: exp, rules: rules, interval: exportInterval, maxInterval: exportMaxInterval}
	s.export = x
	if len(rules) == 0 {
		return nil
	}
	g, err := s.b.Engine().NewGroup(engine.Options{Name: "fleet-export", QueueLimit: exportQueueLimit})
	if err != nil {
		return err
	}
	x.g = g
	// One subtree mark per directory, with the union of the masks of the lines that need it
	// (a second mark on one object would replace the first); selects sorts the events out.
	type markNeed struct {
		mask  engine.Mask
		where string
	}
	needs := map[string]*markNeed{}
	var order []string
	for _, r := range rules {
		for _, gl := range r.Globs {
			root, literal := markRoot(gl.String())
			if literal {
				if st, err := os.Stat(root); err == nil && !st.IsDir() {
					root = filepath.Dir(root) // a file: its directory reports its events
				}
			}
			n := needs[root]
			if n == nil {
				n = &markNeed{where: fmt.Sprintf("%s: export %s", r.Where, gl)}
				needs[root] = n
				order = append(order, root)
			}
			n.mask |= r.Mask
		}
	}
	for _, root := range order {
		n := needs[root]
		t, err := s.b.Resolve(root, engine.KindSubtree, false)
		if err == nil && !t.IsDir {
			s.b.Release(t)
			err = fmt.Errorf("not a directory")
		}
		if err != nil {
			g.Close()
			return fmt.Errorf("%s: %s: %w", n.where, root, err)
		}
		if err := s.b.AddMark(g, t, engine.MarkSpec{Mask: n.mask | engine.OnDir}); err != nil {
			g.Close()
			return fmt.Errorf("%s: marking %s: %w", n.where, root, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.stop = cancel
	x.done.Add(1)
	go func() {
		defer x.done.Done()
		x.loop(ctx)
	}()
	return nil
}

// stopExport stops exportLoop, which appends what its group still holds, then removes the
// export group. The exporter itself is the caller's (it closes it after the server, so that
// the last reports reach it).
func (s *Server) stopExport() {
	x := s.export
	if x == nil || x.g == nil {
		return
	}
	x.stop()
	x.done.Wait()
	x.g.Close()
}

// exportInterval is the least time between two reads of the export group while events keep
// coming (the first event after a quiet spell is read at once). Each read's events reach the
// exporter in one AppendBatch, so the exporter's writer, its spool write, its publisher and
// the NATS server each wake once per read instead of once per event; and repeats of an event
// on one object within the interval merge in the group (fanotify's rule, as in the kernel's
// own queue: one record whose events are the union) instead of each costing a record. It is
// at most this much added to the time from an event to its record while reads are large
// (exportMaxInterval otherwise). Measured in docs/design/performance.md (fleet). A variable
// for tests, which set it before New.
var exportInterval = 5 * time.Millisecond

// exportMaxInterval is how far the time between two reads grows while reads keep bringing
// fewer than exportSmallRead records. Then each read's cost (the loop's, the exporter's
// writer, spool write and publish, nats.go's flush and ack, the server's store and ack:
// several wake-ups in two processes; about 0.3 ms of the server's CPU and as much or more
// of the daemon's per read, measured on a 2-vCPU guest) is shared by few records (one file
// opened 100,000 times a second is one record per read) and is most of what the export
// costs. The interval doubles after each such read, up to this, and is back to
// exportInterval after a read of at least exportSmallRead records (many objects at once:
// their records share the read's cost already, and their lag stays at most exportInterval)
// or after a quiet spell (a read that waited for its first event, which is read at once).
// So a record can reach the spool up to this much later than its first event, and repeats
// on one object within it are one record. The group's queue (exportQueueLimit) holds this
// long of 1.3 million distinct events a second, several times what a kernel reader delivers,
// and a read that fills the loop's buffer is followed by another at once. Measured in
// docs/design/performance.md (fleet, 2026-12-05). A variable for tests, which set it before
// New.
var exportMaxInterval = 50 * time.Millisecond

// exportSmallRead is the number of records below which a read counts as small (see
// exportMaxInterval).
const exportSmallRead = 16

// nextInterval is the wait before the read after one that brought records records, came
// since (time since the read before it) after the previous read and had cur as its interval:
// doubled (up to maxInterval) after a small read, the base interval after a large one;
// after a quiet spell (since more than twice cur: the read waited for its first event) it
// starts over from the base. Never below the base.
func (x *exporter) nextInterval(cur, since time.Duration, records int) time.Duration {
	if since > 2*cur {
		cur = x.interval
	}
	if records >= exportSmallRead {
		return x.interval
	}
	return max(x.interval, min(2*cur, x.maxInterval))
}

// exportReadGate, when set (by tests, before New), runs before each read of the export loop.
var exportReadGate func()

// exportQueueLimit bounds the export group's queue: an overflow becomes a gap record.
const exportQueueLimit = 1 << 16

// loop is exportLoop: it reads the export group at most once per interval (at once again
// after a read that filled its buffer; the interval grows from exportInterval to
// exportMaxInterval while reads are small, nextInterval) and appends what the rules select, a
// read's records in one batch. When ctx is done it appends what the group still holds, then
// returns.
func (x *exporter) loop(ctx context.Context) {
	buf := make([]engine.Delivery, 256)
	var (
		lines    []byte   // the batch's records, back to back
		ends     []int    // where each ends in lines
		payloads [][]byte // the records, for AppendBatch
		lastRead time.Time
		interval = x.interval // the wait before the next read, while events keep coming
		records  int          // the records of the current read
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	stopping, drains, full := false, 0, false
	for {
		if exportReadGate != nil {
			exportReadGate()
		}
		// A read that filled buf left events behind: read on at once, or a flood faster than
		// len(buf) per interval would fill the queue (an overflow) while the loop sleeps.
		if wait := interval - time.Since(lastRead); wait > 0 && !stopping && !full {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				stopping = true
			}
		}
		var n int
		var err error
		if stopping {
			n, err = x.g.TryReadBatch(buf)
		} else {
			n, err = x.g.ReadBatch(ctx, buf)
			if errors.Is(err, context.Canceled) {
				stopping = true
				continue
			}
		}
		if err != nil || n == 0 {
			return
		}
		if stopping {
			// What was queued when the stop came, not a flood that goes on after it.
			if drains++; drains > exportQueueLimit/len(buf) {
				return
			}
		}
		now := time.Now()
		since := now.Sub(lastRead)
		lastRead, full = now, n == len(buf)
		lines, ends, records = lines[:0], ends[:0], 0
		for i := range buf[:n] {
			d := buf[i]
			buf[i] = engine.Delivery{}
			if d.Event == nil || d.Mask&engine.QueueOverflow != 0 {
				// In its place in the order: the records before it go first.
				records += len(ends)
				x.appendBatch(lines, ends, &payloads)
				lines, ends = lines[:0], ends[:0]
				x.exp.Overflow()
				d.Release()
				continue
			}
			if m := x.selects(d); m != 0 {
				r := backend.Record(d, true)
				if r.Time.IsZero() {
					r.Time = lastRead
				}
				r.Mask &= m | engine.OnDir // only what the lines ask for (the mark has the union)
				lines = r.AppendJSON(lines)
				ends = append(ends, len(lines))
			}
			d.Release()
		}
		records += len(ends)
		x.appendBatch(lines, ends, &payloads)
		interval = x.nextInterval(interval, since, records)
	}
}

// appendBatch hands the records in lines (ending at ends) to the exporter at once.
func (x *exporter) appendBatch(lines []byte, ends []int, payloads *[][]byte) {
	if len(ends) == 0 {
		return
	}
	p := (*payloads)[:0]
	start := 0
	for _, e := range ends {
		p = append(p, lines[start:e])
		start = e
	}
	*payloads = p
	taken, _ := x.exp.AppendBatch(fleet.Event, p)
	x.events.Add(uint64(taken))
	clear(p) // keep no reference to lines beyond the call
}

// selects returns the events of d that the lines take: those of each line with a glob that
// matches its path (an unknown path may match any: it is exported, with what is known of the
// object); 0 for none.
func (x *exporter) selects(d engine.Delivery) engine.Mask {
	path := d.Event.GetPath()
	var m engine.Mask
	for _, r := range x.rules {
		if d.Mask&r.Mask == 0 {
			continue
		}
		if path == "" {
			m |= r.Mask
			continue
		}
		for _, g := range r.Globs {
			if g.Match(path) {
				m |= r.Mask
				break
			}
		}
	}
	return d.Mask & m
}

// reservedReportKeys are the fields the daemon puts in front of a reported decision (the
// exporter's and the reporting client's): a client may not set them, in any case, else a
// reader taking the last of duplicate keys (matched case-insensitively, as Go's decoder
// does) would see the client's.
var reservedReportKeys = []string{"host", "boot_id", "seq", "kind", "client", "client_pid", "client_uid"}

// report exports a client's decision report. Only a permission client decides; a report
// from any other, or one that is not a JSON object or sets a reserved key, is refused
// (counted and logged at debug level; the connection lives on).
func (c *session) report(m *proto.Report) {
	x := c.s.export
	if x == nil {
		return
	}
	if c.g.Options().Class == engine.ClassNotification {
		x.refused.Add(1)
		c.s.log.Debug("decision report from a notification client refused", "client", c.id)
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(m.Text), &fields); err != nil {
		x.refused.Add(1)
		c.s.log.Debug("decision report refused", "client", c.id, "err", err)
		return
	}
	for f := range fields {
		for _, k := range reservedReportKeys {
			// Case folded as readers match keys to fields (Go's decoder: "HOST" and "Host" are
			// host, "ſeq" with a long s is seq), the last one winning.
			if strings.EqualFold(f, k) {
				x.refused.Add(1)
				c.s.log.Debug("decision report refused: it sets a field the daemon sets", "client", c.id, "field", f)
				return
			}
		}
	}
	b := make([]byte, 0, len(m.Text)+64+len(c.name))
	name, _ := json.Marshal(c.name)
	b = append(b, `{"client":`...)
	b = append(b, name...)
	b = append(b, `,"client_pid":`...)
	b = strconv.AppendInt(b, int64(c.cred.Pid), 10)
	b = append(b, `,"client_uid":`...)
	b = strconv.AppendUint(b, uint64(c.cred.Uid), 10)
	if len(fields) > 0 {
		b = append(b, ',')
	}
	b = append(b, m.Text[1:]...)
	if x.exp.Append(fleet.Decision, b) == nil {
		x.decisions.Add(1)
	}
}

//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
)

func init() {
	registerFleetSubcommand(subcommand{"tail", "print the fleet's events (or decisions) as they arrive", runFleetTail})
}

const fleetTailHelp = `
Print the records of every host (or those whose name matches --host) from the
fleet stream as they arrive: file events in trace's line format, or with
--decisions the guard decisions, each line starting with the host; --json
prints each record as stored (the object of "watch --json" or of the audit
log, with host, boot_id, seq and kind) plus its stream_seq. Gap records —
records a host lost, or may have lost — are always shown, as
  HOST *** LOST seq 1200-1450 (251 records): spool_full ***
Records the stream itself dropped before this reader got to them (its
max_msgs, max_bytes or max_age, or an admin's purge, while the reader was
behind or stopped) are said, by stream sequence, as
  *** LOST stream seq 6-90 (85 records): stream FSNOTIFYD dropped them ... ***
(with --json: {"kind":"gap","reason":"stream_dropped","stream":...,
"stream_first":6,"stream_last":90,"count":85}); the stream does not say whose
they were. A record the stream holds twice (a resend after the duplicate
window) is printed once.

Without --since or --seq only new records are printed. --durable NAME keeps
the reading position in the server: run again with the same NAME to go on
where the last run stopped, without loss (the first run starts per --since or
--seq).

Exit status: 0 after -n records, at --timeout, or on SIGINT/SIGTERM; 1 on a
runtime error (NATS unreachable: which URL and what to check); 2 on a usage
error.

Examples:
  fsnotifyd fleet tail --nats nats://nats1:4222
  fsnotifyd fleet tail --host 'web-*' --path '/etc/**' --since 1h
  fsnotifyd fleet tail --decisions --json --durable siem
  fsnotifyd fleet tail --seq 1 -n 100 --timeout 10s
`

func runFleetTail(args []string) int {
	var (
		nf                          natsFlags
		hostGlob, pathGlob, durable string
		stream                      = fleet.DefaultStream
		decisions, jsonOut          bool
		since, timeout              time.Duration
		startSeq, count             int
	)
	fs := newFlagSet("fleet tail", "[--nats URL] [--host GLOB] [--path GLOB] [--decisions] [--since DUR | --seq N] [--json] [--durable NAME] [-n COUNT] [--timeout DUR]", fleetTailHelp)
	nf.register(fs)
	fs.stringVar(&hostGlob, "host", "only hosts whose name matches GLOB (shell pattern: web-*)")
	fs.stringVar(&pathGlob, "path", "only records whose path matches GLOB (as in policies: /etc/**)")
	fs.boolVar(&decisions, "decisions", "print guard decisions instead of file events")
	fs.durationVar(&since, "since", "start with the records of the last DUR (e.g. 10m, 24h)")
	fs.intVar(&startSeq, "seq", "start at stream sequence N (1: everything the stream holds)")
	fs.boolVar(&jsonOut, "json,j", "print one JSON object per record")
	fs.stringVar(&durable, "durable", "a durable consumer NAME that remembers what was read")
	fs.stringVar(&stream, "stream", "the fleet stream's name")
	fs.intVar(&count, "n,count", "exit after COUNT records (0, the default: no limit; a LOST stream seq line is not counted)")
	fs.durationVar(&timeout, "t,timeout", "exit after DUR")
	if status, ok := fs.parseNoArgs(args); !ok {
		return status
	}
	if since > 0 && startSeq > 0 {
		return fs.usageError(errors.New("--since and --seq cannot be used together"))
	}
	if err := negativeFlag(intFlag{"--seq", startSeq}, intFlag{"-n", count}); err != nil {
		return fs.usageError(err)
	}
	if hostGlob != "" {
		if _, err := path.Match(hostGlob, ""); err != nil {
			return fs.usageError(fmt.Errorf("--host %q: %w", hostGlob, err))
		}
	}
	var pathMatch *policy.Glob
	if pathGlob != "" {
		g, err := policy.CompileGlob(pathGlob)
		if err != nil {
			return fs.usageError(fmt.Errorf("--path: %w", err))
		}
		pathMatch = g
	}
	opts := fleet.TailOptions{Stream: stream, Decisions: decisions, StartSeq: uint64(startSeq), Since: since, Durable: durable}
	if hostGlob != "" && !strings.ContainsAny(hostGlob, `*?[\`) {
		tok, err := fleet.HostToken(hostGlob)
		if err != nil {
			return fs.usageError(fmt.Errorf("--host: %w", err))
		}
		opts.HostToken = tok // one host: the server filters
	}
	c, status, ok := nf.connect(fs, "fsnotifyd-fleet-tail")
	if !ok {
		return status
	}
	defer c.close()

	ctx, stop := untilInterrupt(timeout)
	defer stop()
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	defer w.Flush()
	var dedupe fleet.Deduper
	var line []byte
	printed := 0
	errDone := fleet.ErrStopTail
	// emit prints line: a record (counted for -n) or a run the stream dropped (not counted:
	// said even after the last record -n asked for, when it comes before it).
	emit := func(record bool) error {
		if _, err := w.Write(line); err != nil {
			return errDone // stdout closed
		}
		if record {
			printed++
		}
		if count > 0 && printed >= count {
			return errDone
		}
		if len(line) > 0 && w.Buffered() > 0 {
			if err := w.Flush(); err != nil {
				return errDone
			}
		}
		return nil
	}
	err := fleet.Tail(ctx, c.js, opts, func(r *fleet.Received) error {
		if r.Missed != nil {
			line = missedLine(line[:0], stream, r.Missed, jsonOut)
			return emit(false)
		}
		h, err := fleet.CheckHeader(r.Subject, r.Data)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fsnotifyd fleet tail: stream sequence %d on %s: %v\n", r.StreamSeq, r.Subject, err)
			return nil
		}
		if hostGlob != "" {
			if m, _ := path.Match(hostGlob, h.Host); !m {
				return nil
			}
		}
		if dedupe.Seen(fleet.DedupeKey(h.Host, r.MsgID), h.Seq) {
			return nil
		}
		line, ok = tailLine(line[:0], r, &h, jsonOut, pathMatch)
		if !ok {
			return nil
		}
		return emit(true)
	})
	w.Flush()
	if err != nil {
		return fail(fs.cmd, err)
	}
	return exitOK
}

// tailLine formats one record; ok is false when --path filters it out.
func tailLine(dst []byte, r *fleet.Received, h *fleet.Header, jsonOut bool, pathMatch *policy.Glob) ([]byte, bool) {
	if h.Kind != "gap" && pathMatch != nil {
		var p struct {
			Path       string        `json:"path"`
			OldPath    string        `json:"old_path"`
			PathRaw    fsevent.Bytes `json:"path_raw"` // a path that is not UTF-8
			OldPathRaw fsevent.Bytes `json:"old_path_raw"`
		}
		json.Unmarshal(r.Data, &p)
		if p.PathRaw != nil {
			p.Path = string(p.PathRaw)
		}
		if p.OldPathRaw != nil {
			p.OldPath = string(p.OldPathRaw)
		}
		if !pathMatch.Match(p.Path) && (p.OldPath == "" || !pathMatch.Match(p.OldPath)) {
			if n := reportsDropped(h, r.Data); n > 0 && !jsonOut {
				// Filtered out, but the loss it carries is shown: a hole is never hidden.
				dst = format.AppendEscaped(dst, h.Host)
				return append(appendReportsDropped(append(dst, ' '), n), '\n'), true
			}
			return dst, false
		}
	}
	if jsonOut {
		// Compacted: a host may put newlines between the tokens of its record, which would
		// split it over lines and start one with an object of its making.
		buf := bytes.NewBuffer(dst)
		if err := json.Compact(buf, r.Data); err != nil {
			return dst, false
		}
		d := buf.Bytes()
		if len(d)-len(dst) < 2 || d[len(d)-1] != '}' {
			return dst, false
		}
		dst = d[:len(d)-1]
		dst = append(dst, `,"stream_seq":`...)
		dst = strconv.AppendUint(dst, r.StreamSeq, 10)
		return append(dst, "}\n"...), true
	}
	dst = format.AppendEscaped(dst, h.Host)
	dst = append(dst, ' ')
	switch h.Kind {
	case "gap":
		dst = append(dst, "*** LOST"...)
		if h.First > 0 {
			dst = fmt.Appendf(dst, " seq %d-%d (%d records)", h.First, h.Last, h.Count)
		}
		dst = append(dst, ": "...)
		dst = format.AppendEscaped(dst, h.Reason)
		if h.Detail != "" {
			dst = append(dst, " — "...)
			dst = format.AppendEscaped(dst, h.Detail)
		}
		dst = fmt.Appendf(dst, " (gap record seq %d) ***", h.Seq)
	case "decision":
		var d fsevent.Decision
		json.Unmarshal(r.Data, &d)
		d.RestoreBytes()
		if t, err := time.Parse(time.RFC3339Nano, d.Time); err == nil {
			dst = t.Local().AppendFormat(dst, "15:04:05.000000 ")
		}
		rec := format.Record{Pid: d.Pid, Comm: d.Comm}
		dst = appendCommPid(dst, &rec)
		dst = append(dst, ' ')
		dst = format.AppendEscaped(dst, strings.ToUpper(d.Verdict))
		dst = append(dst, ' ')
		dst = format.AppendEscaped(dst, d.Event)
		dst = append(dst, ' ')
		dst = format.AppendEscaped(dst, d.Path)
		if d.Rule != "" {
			dst = append(dst, " rule="...)
			dst = format.AppendEscaped(dst, d.Rule)
		}
		if d.Latency != "" {
			dst = append(dst, " latency="...)
			dst = format.AppendEscaped(dst, d.Latency)
		}
		if n := reportsDropped(h, r.Data); n > 0 {
			dst = appendReportsDropped(append(dst, ' '), n)
		}
	default:
		rec, err := format.ParseJSON(r.Data)
		if err != nil {
			dst = append(dst, "? (unreadable event: "...)
			dst = format.AppendEscaped(dst, err.Error())
			dst = append(dst, ')')
			break
		}
		rec.Time = rec.Time.Local()
		dst = format.Trace{}.Append(dst, &rec)
	}
	return append(dst, '\n'), true
}

// missedLine says that the stream dropped records before this reader got there: its
// limits (max_msgs, max_bytes, max_age with discard old) or an admin's purge. The stream
// does not say whose they were.
func missedLine(dst []byte, stream string, m *fleet.Missed, jsonOut bool) []byte {
	if jsonOut {
		s, _ := json.Marshal(stream)
		return fmt.Appendf(dst, `{"kind":"gap","reason":"stream_dropped","stream":%s,"stream_first":%d,"stream_last":%d,"count":%d}`+"\n", s, m.First, m.Last, m.Count)
	}
	dst = fmt.Appendf(dst, "*** LOST stream seq %d-%d (%d records): stream ", m.First, m.Last, m.Count)
	dst = format.AppendEscaped(dst, stream)
	return append(dst, " dropped them before this reader got there (its max_msgs, max_bytes or max_age, or a purge); records of any host and kind ***\n"...)
}

// appendCommPid is trace's "comm(pid):" for a decision line.
func appendCommPid(dst []byte, r *format.Record) []byte {
	line := format.Trace{}.Append(nil, r) // "comm(pid): " + letters + path "?"
	if i := strings.Index(string(line), "):"); i >= 0 {
		return append(dst, line[:i+2]...)
	}
	return dst
}

// reportsDropped is a decision record's reports_dropped: how many decision reports its guard
// dropped (its queue full) before this one was sent; they reached no daemon, so no gap
// record names them.
func reportsDropped(h *fleet.Header, data []byte) uint64 {
	if h.Kind != "decision" {
		return 0
	}
	var d struct {
		N uint64 `json:"reports_dropped"`
	}
	json.Unmarshal(data, &d)
	return d.N
}

func appendReportsDropped(dst []byte, n uint64) []byte {
	return fmt.Appendf(dst, "*** LOST %d decision reports: the guard dropped them before this record (its queue was full) ***", n)
}

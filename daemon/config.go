//go:build linux

package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// Config is the daemon's policy about its clients (fsnotifyd serve --config FILE). The file
// is line-based: a key and its values, "#" starts a comment. See docs/daemon.md.
//
//	allow_uid 1000 alice          # may place mount/filesystem marks and take permission events
//	allow_gid 10 wheel
//	fd_uid 1000                   # may receive permission events' file descriptors
//	fd_gid audit
//	max_deadline 30s              # caps every permission client's deadline (0: no cap)
//	max_clients 4096              # connections at once, in their handshake or not
//	reserved_clients 128          # of which only root and allowed uids/gids may use these
//	max_clients_per_uid 256       # connections of one unprivileged uid
//	handshake_timeout 3s          # to say Hello after connecting
//	idle_timeout 60s              # an unprivileged client with no marks and no request
//	max_marks 65536               # per client
//	max_marks_per_uid 131072      # all the clients of one unprivileged uid together
//	max_marks_unprivileged 524288 # all unprivileged uids' clients together
//	max_held_fds 4096             # unprivileged marks on files the daemon keeps open (procfs, sysfs)
//	queue_limit 16384             # per client, events waiting to be read
//	queue_limit_per_uid 65536     # all the clients of one unprivileged uid together
//	queue_limit_unprivileged 262144 # all unprivileged uids' clients together
//	export open,close_write /etc/**  # with serve --export: events the daemon exports (export.go)
type Config struct {
	AllowUIDs, AllowGIDs map[uint32]bool
	FdUIDs, FdGIDs       map[uint32]bool
	MaxDeadline          time.Duration
	// MaxClients bounds the connections served at once, counted from accept(2), handshake
	// included; ReservedClients of them are kept for privileged peers (uid 0, allow_uid,
	// allow_gid): unprivileged connections may take at most MaxClients-ReservedClients, and
	// each unprivileged uid at most MaxClientsPerUID.
	MaxClients, ReservedClients, MaxClientsPerUID int
	// HandshakeTimeout bounds the wait for a connection's Hello; IdleTimeout closes an
	// unprivileged client that holds no mark and sent no request for that long.
	HandshakeTimeout, IdleTimeout time.Duration
	MaxMarks                      int
	// MaxMarksPerUID bounds the marks of all the clients of one unprivileged uid together,
	// MaxMarksUnprivileged those of all unprivileged uids (checked after the uid's): a
	// mark holds the daemon's memory and its object's inode in the kernel, and MaxMarks
	// bounds one connection only. 0 is 2 x MaxMarks and 4 x MaxMarksPerUID; the second may
	// not be below the first.
	MaxMarksPerUID, MaxMarksUnprivileged int
	QueueLimit                           int
	// QueueLimitPerUID bounds the events queued, not yet read, in all the clients of one
	// unprivileged uid together (engine.QueueBudget); past it their clients get overflows as
	// on a full queue. Without it a user's clients that stop reading would hold QueueLimit
	// times MaxClientsPerUID events of the daemon's memory (4 Mi events at the defaults, some
	// 14 GB with long paths): the daemon, which every guard through it needs, could be made
	// to run out. 0 is 4 x QueueLimit.
	QueueLimitPerUID int
	// QueueLimitUnprivileged bounds the events queued in the clients of all unprivileged
	// uids together; each uid's QueueLimitPerUID is within it (checked first). A user with
	// subordinate uids (/etc/subuid) has a QueueLimitPerUID for each of up to 65536 uids:
	// without it such a user's clients could hold the unprivileged connections' share times
	// QueueLimit events. 0 is 4 x QueueLimitPerUID; it may not be below QueueLimitPerUID.
	QueueLimitUnprivileged int
	// MaxHeldFDs bounds the marks all unprivileged clients together hold on objects the
	// daemon must keep a descriptor of (no file handle: procfs, sysfs); each uid may hold a
	// quarter of it. 0, and any value above it, is half the descriptors the daemon keeps
	// for itself beyond its connections (heldBudget).
	MaxHeldFDs int
	// Exports are the "export EVENTS GLOB..." lines (serve --export; export.go).
	Exports []ExportRule
}

// DefaultConfig is the policy without a config file: only root may place mount and
// filesystem marks, take permission events or receive their descriptors; deadlines are capped
// at 30 s, so that no client can hold an access longer; 4096 connections, 128 of them kept for
// root, at most 256 per unprivileged uid; a Hello within 3 s; an unprivileged client with no
// marks closed after 60 s without a request.
func DefaultConfig() Config {
	return Config{
		AllowUIDs: map[uint32]bool{}, AllowGIDs: map[uint32]bool{},
		FdUIDs: map[uint32]bool{}, FdGIDs: map[uint32]bool{},
		MaxDeadline: 30 * time.Second, MaxClients: 4096, ReservedClients: 128, MaxClientsPerUID: 256,
		HandshakeTimeout: 3 * time.Second, IdleTimeout: 60 * time.Second,
		MaxMarks: 65536, QueueLimit: 16384,
	}
}

// fill gives the zero limits their defaults (a Config built in code before they existed).
func (c *Config) fill() {
	d := DefaultConfig()
	for _, f := range []struct{ v, def *int }{
		{&c.MaxClients, &d.MaxClients}, {&c.MaxClientsPerUID, &d.MaxClientsPerUID},
		{&c.MaxMarks, &d.MaxMarks}, {&c.QueueLimit, &d.QueueLimit},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if c.QueueLimitPerUID <= 0 {
		c.QueueLimitPerUID = 4 * c.QueueLimit
	}
	if c.MaxMarksPerUID <= 0 {
		c.MaxMarksPerUID = 2 * c.MaxMarks
	}
	if c.MaxMarksUnprivileged <= 0 {
		c.MaxMarksUnprivileged = 4 * c.MaxMarksPerUID
	}
	if c.QueueLimitUnprivileged <= 0 {
		c.QueueLimitUnprivileged = 4 * c.QueueLimitPerUID
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
}

// check reports a config whose limits contradict each other.
func (c *Config) check() error {
	if c.ReservedClients >= c.MaxClients {
		return fmt.Errorf("reserved_clients %d leaves no room below max_clients %d for unprivileged clients", c.ReservedClients, c.MaxClients)
	}
	f := *c
	f.fill()
	if f.MaxMarksUnprivileged < f.MaxMarksPerUID {
		return fmt.Errorf("max_marks_unprivileged %d is below max_marks_per_uid %d, the marks of each unprivileged uid within it: raise max_marks_unprivileged or lower max_marks_per_uid", f.MaxMarksUnprivileged, f.MaxMarksPerUID)
	}
	if f.QueueLimitUnprivileged < f.QueueLimitPerUID {
		return fmt.Errorf("queue_limit_unprivileged %d is below queue_limit_per_uid %d, the budget of each unprivileged uid within it: raise queue_limit_unprivileged or lower queue_limit_per_uid", f.QueueLimitUnprivileged, f.QueueLimitPerUID)
	}
	return nil
}

// LoadConfig reads a config file over the defaults. It says who may mark mounts and receive
// permission events, so it is held to the trust files' rule (trust.ReadChecked): a regular
// file that only root (or this process's user) can change, in directories only they can
// change; any other is refused, with the fix.
func LoadConfig(path string) (Config, error) {
	data, err := trust.ReadChecked(path, "daemon config file")
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(path, bytes.NewReader(data))
}

// ParseConfig parses a config; errors name the file and line.
func ParseConfig(name string, r io.Reader) (Config, error) {
	c := DefaultConfig()
	// The keys that take a single value (a second one is an error, never dropped:
	// "idle_timeout 60s 3600s"), and the field each sets.
	durations := map[string]*time.Duration{"max_deadline": &c.MaxDeadline, "handshake_timeout": &c.HandshakeTimeout, "idle_timeout": &c.IdleTimeout}
	numbers := map[string]*int{
		"max_clients": &c.MaxClients, "reserved_clients": &c.ReservedClients, "max_clients_per_uid": &c.MaxClientsPerUID,
		"max_marks": &c.MaxMarks, "max_marks_per_uid": &c.MaxMarksPerUID, "max_marks_unprivileged": &c.MaxMarksUnprivileged,
		"queue_limit": &c.QueueLimit, "queue_limit_per_uid": &c.QueueLimitPerUID, "queue_limit_unprivileged": &c.QueueLimitUnprivileged,
		"max_held_fds": &c.MaxHeldFDs,
	}
	// The keys that take uids or gids (numbers or names), and the set each adds to.
	idSets := map[string]map[uint32]bool{"allow_uid": c.AllowUIDs, "fd_uid": c.FdUIDs, "allow_gid": c.AllowGIDs, "fd_gid": c.FdGIDs}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		errf := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, a...))
		}
		key, vals := f[0], f[1:]
		if len(vals) == 0 {
			return c, errf("%s needs a value", key)
		}
		dur, num := durations[key], numbers[key]
		if len(vals) > 1 && (dur != nil || num != nil) {
			return c, errf("%s takes one value, not %d (%s)", key, len(vals), quoteAll(vals))
		}
		switch {
		case dur != nil:
			d, err := time.ParseDuration(vals[0])
			if err != nil || d < 0 {
				return c, errf("%s: %q is not a duration (e.g. 30s)", key, vals[0])
			}
			if d == 0 && key != "max_deadline" {
				return c, errf("%s: 0 would let a silent connection keep its place forever; give a positive duration (e.g. 3s)", key)
			}
			*dur = d
			continue
		case num != nil:
			n, err := strconv.Atoi(vals[0])
			if err != nil || n <= 0 {
				return c, errf("%s: %q is not a positive number", key, vals[0])
			}
			*num = n
			continue
		}
		switch key {
		case "allow_uid", "fd_uid", "allow_gid", "fd_gid":
			set, group := idSets[key], strings.HasSuffix(key, "_gid")
			for _, v := range vals {
				id, err := lookupID(v, group)
				if err != nil {
					return c, errf("%s: %v", key, err)
				}
				set[id] = true
			}
		case "export":
			r, err := parseExportLine(vals)
			if err != nil {
				return c, errf("%v", err)
			}
			r.Where = fmt.Sprintf("%s:%d", name, line)
			c.Exports = append(c.Exports, r)
		default:
			return c, errf("unknown key %q (want allow_uid, allow_gid, fd_uid, fd_gid, max_deadline, max_clients, reserved_clients, max_clients_per_uid, handshake_timeout, idle_timeout, max_marks, max_marks_per_uid, max_marks_unprivileged, max_held_fds, queue_limit, queue_limit_per_uid, queue_limit_unprivileged, export)", key)
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return c, fmt.Errorf("%s:%d: line longer than %d bytes", name, line+1, bufio.MaxScanTokenSize)
	} else if err != nil {
		return c, fmt.Errorf("%s: %w", name, err)
	}
	if err := c.check(); err != nil {
		return c, fmt.Errorf("%s: %v", name, err)
	}
	return c, nil
}

// quoteAll quotes each of vals, for an error.
func quoteAll(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, " ")
}

// lookupID resolves a uid (group: a gid) given as a number or a name.
func lookupID(v string, group bool) (uint32, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return uint32(n), nil
	}
	var id string
	if group {
		g, err := user.LookupGroup(v)
		if err != nil {
			return 0, fmt.Errorf("unknown group %q", v)
		}
		id = g.Gid
	} else {
		u, err := user.Lookup(v)
		if err != nil {
			return 0, fmt.Errorf("unknown user %q", v)
		}
		id = u.Uid
	}
	n, _ := strconv.ParseUint(id, 10, 32)
	return uint32(n), nil
}

// privileged reports whether a peer may place mount/filesystem marks and take permission
// events.
func (c *Config) privileged(uid uint32, gids []uint32) bool {
	if uid == 0 || c.AllowUIDs[uid] {
		return true
	}
	for _, g := range gids {
		if c.AllowGIDs[g] {
			return true
		}
	}
	return false
}

// mayReceiveFds reports whether a peer may receive permission events' descriptors.
func (c *Config) mayReceiveFds(uid uint32, gids []uint32) bool {
	if uid == 0 || c.FdUIDs[uid] {
		return true
	}
	for _, g := range gids {
		if c.FdGIDs[g] {
			return true
		}
	}
	return false
}

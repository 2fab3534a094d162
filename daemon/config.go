//go:build linux

package daemon

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// Config is the daemon's policy about its clients (fsnotifyd serve --config FILE). The file
// is line-based: a key and its values, "#" starts a comment. See docs/daemon.md.
//
//	allow_uid 1000 alice          # may place mount/filesystem marks and take permission events
//	allow_gid 10 wheel
//	fd_uid 1000                   # may receive permission events' file descriptors
//	fd_gid audit
//	max_deadline 30s              # caps every permission client's deadline (0: no cap)
//	max_clients 4096
//	max_marks 65536               # per client
//	queue_limit 16384             # per client, events waiting to be read
type Config struct {
	AllowUIDs, AllowGIDs map[uint32]bool
	FdUIDs, FdGIDs       map[uint32]bool
	MaxDeadline          time.Duration
	MaxClients           int
	MaxMarks             int
	QueueLimit           int
}

// DefaultConfig is the policy without a config file: only root may place mount and
// filesystem marks, take permission events or receive their descriptors; deadlines are capped
// at 30 s, so that no client can hold an access longer.
func DefaultConfig() Config {
	return Config{
		AllowUIDs: map[uint32]bool{}, AllowGIDs: map[uint32]bool{},
		FdUIDs: map[uint32]bool{}, FdGIDs: map[uint32]bool{},
		MaxDeadline: 30 * time.Second, MaxClients: 4096, MaxMarks: 65536, QueueLimit: 16384,
	}
}

// LoadConfig reads a config file over the defaults.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	return ParseConfig(path, f)
}

// ParseConfig parses a config; errors name the file and line.
func ParseConfig(name string, r io.Reader) (Config, error) {
	c := DefaultConfig()
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
		switch key {
		case "allow_uid", "fd_uid":
			set := c.AllowUIDs
			if key == "fd_uid" {
				set = c.FdUIDs
			}
			for _, v := range vals {
				uid, err := lookupUID(v)
				if err != nil {
					return c, errf("%s: %v", key, err)
				}
				set[uid] = true
			}
		case "allow_gid", "fd_gid":
			set := c.AllowGIDs
			if key == "fd_gid" {
				set = c.FdGIDs
			}
			for _, v := range vals {
				gid, err := lookupGID(v)
				if err != nil {
					return c, errf("%s: %v", key, err)
				}
				set[gid] = true
			}
		case "max_deadline":
			d, err := time.ParseDuration(vals[0])
			if err != nil || d < 0 {
				return c, errf("max_deadline: %q is not a duration (e.g. 30s)", vals[0])
			}
			c.MaxDeadline = d
		case "max_clients", "max_marks", "queue_limit":
			n, err := strconv.Atoi(vals[0])
			if err != nil || n <= 0 {
				return c, errf("%s: %q is not a positive number", key, vals[0])
			}
			switch key {
			case "max_clients":
				c.MaxClients = n
			case "max_marks":
				c.MaxMarks = n
			default:
				c.QueueLimit = n
			}
		default:
			return c, errf("unknown key %q (want allow_uid, allow_gid, fd_uid, fd_gid, max_deadline, max_clients, max_marks, queue_limit)", key)
		}
	}
	return c, sc.Err()
}

func lookupUID(v string) (uint32, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return uint32(n), nil
	}
	u, err := user.Lookup(v)
	if err != nil {
		return 0, fmt.Errorf("unknown user %q", v)
	}
	n, _ := strconv.ParseUint(u.Uid, 10, 32)
	return uint32(n), nil
}

func lookupGID(v string) (uint32, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return uint32(n), nil
	}
	g, err := user.LookupGroup(v)
	if err != nil {
		return 0, fmt.Errorf("unknown group %q", v)
	}
	n, _ := strconv.ParseUint(g.Gid, 10, 32)
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

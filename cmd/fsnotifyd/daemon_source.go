//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// openSource returns the embedded source, or the daemon's with --daemon.
func openSource(daemon daemonFlag, opts engine.Options) (source, error) {
	if daemon.on {
		return newDaemonSource(daemon, opts)
	}
	return newEmbedded(opts)
}

func (d daemonFlag) path() string {
	if d.socket == "" || d.socket == "true" {
		return client.DefaultSocket
	}
	return d.socket
}

// daemonSource runs a watch through the daemon.
type daemonSource struct {
	c *client.Client
}

func newDaemonSource(d daemonFlag, opts engine.Options) (*daemonSource, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Socket: d.path(), Name: "fsnotifyd-" + opts.Name,
		Class: opts.Class, WantComm: true, Reconnect: true, Buffer: 256})
	if err != nil {
		return nil, err
	}
	return &daemonSource{c: c}, nil
}

func (s *daemonSource) add(w watchSpec) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := engine.MarkSpec{Mask: w.mask}
	if w.kind == engine.KindInode {
		if st, err := os.Stat(w.abs); err == nil && !st.IsDir() {
			spec.Mask &^= engine.EventOnChild | engine.DirentEvents
		}
	}
	if _, err := s.c.AddMark(ctx, w.abs, w.kind, spec); err != nil {
		return explainPathError(w.path, err)
	}
	return nil
}

func (s *daemonSource) next(ctx context.Context, dst []event) ([]event, error) {
	select {
	case ev, ok := <-s.c.Events():
		if !ok {
			return dst, fmt.Errorf("the daemon closed the connection")
		}
		dst = append(dst, toEvent(ev))
		// Take whatever else is ready, without waiting.
		for len(dst) < 256 {
			select {
			case ev, ok := <-s.c.Events():
				if !ok {
					return dst, nil
				}
				dst = append(dst, toEvent(ev))
			default:
				return dst, nil
			}
		}
		return dst, nil
	case <-ctx.Done():
		return dst, ctx.Err()
	}
}

func toEvent(ev client.Event) event {
	if ev.Overflow || ev.Resync {
		return event{overflow: ev.Overflow, resync: ev.Resync,
			rec: format.Record{Time: time.Now(), Mask: engine.QueueOverflow}}
	}
	ev.FD.Close()
	return event{rec: format.Record{Time: ev.Time, Path: ev.Path, OldPath: ev.OldPath, Mask: ev.Mask,
		IsDir: ev.IsDir(), Pid: int(ev.Pid), Comm: ev.Comm}}
}

func (s *daemonSource) close() error { return s.c.Close() }

// guardViaDaemon runs guard as a permission client of the daemon: the daemon holds the kernel
// side and enforces the deadline; this process decides by the same rules (and scanner).
func guardViaDaemon(daemon daemonFlag, paths []string, mount bool, kinds notify.AccessKind, pol *policy.Policy,
	execCmd string, deadline time.Duration, onTimeout engine.Verdict, permissive bool, audit string, quiet bool) int {
	class := engine.ClassContent
	if kinds&notify.AccessPreAccess != 0 {
		class = engine.ClassPreContent
	}
	if permissive {
		onTimeout = engine.Allow
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := client.Dial(dctx, client.Options{Socket: daemon.path(), Name: "fsnotifyd-guard", Class: class,
		Deadline: deadline, DeadlineVerdict: onTimeout, CloseVerdict: engine.Allow, WantComm: true, WantUID: true,
		Reconnect: true, Buffer: 256})
	cancel()
	if err != nil {
		return fail("guard", err)
	}
	defer c.Close()
	if w := c.Welcome(); deadline > 0 && w.Deadline != deadline || deadline == 0 && w.Deadline != 0 {
		fmt.Fprintf(os.Stderr, "fsnotifyd guard: note: the daemon caps the deadline at %v\n", w.Deadline)
	}
	var mask engine.Mask
	for _, k := range []notify.AccessKind{notify.AccessOpen, notify.AccessRead, notify.AccessExec, notify.AccessPreAccess} {
		if kinds&k != 0 {
			mask |= eventMask(k)
		}
	}
	if mask&engine.PreAccess == 0 {
		mask |= engine.OnDir
	}
	for _, p := range paths {
		k := engine.KindSubtree
		if mount {
			k = engine.KindMount
		} else if st, err := os.Stat(p); err == nil && !st.IsDir() {
			k = engine.KindInode
		}
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := c.AddMark(actx, p, k, engine.MarkSpec{Mask: mask})
		cancel()
		if err != nil {
			return fail("guard", err)
		}
	}
	var auditW *auditWriter
	if audit != "" {
		if auditW, err = newAuditWriter(audit); err != nil {
			return fail("guard", fmt.Errorf("--audit: %w", err))
		}
		defer auditW.close()
	}
	if !quiet {
		fmt.Fprintln(os.Stderr, "Watches established.")
	}
	self := os.Getpid()
	var l *launcher
	if execCmd != "" {
		if l, err = startLauncher(); err != nil {
			return fail("guard", err)
		}
		defer l.close()
	}
	sem := make(chan struct{}, 64)
	for {
		select {
		case <-ctx.Done():
			return exitOK // closing the client answers what is pending (allow)
		case ev, ok := <-c.Events():
			if !ok {
				return fail("guard", fmt.Errorf("the daemon closed the connection"))
			}
			if ev.ID == 0 {
				if ev.Resync {
					fmt.Fprintln(os.Stderr, "fsnotifyd guard: the daemon restarted; watches re-established")
				}
				continue
			}
			if int(ev.Pid) == self || l != nil && (int(ev.Pid) == l.pid() || backend.Descends(int(ev.Pid), l.pid())) {
				// Our own and our scanners' accesses never wait on us.
				ev.FD.Close()
				c.Respond(ev.ID, engine.Response{})
				continue
			}
			sem <- struct{}{}
			go func(ev client.Event) {
				defer func() { <-sem }()
				defer ev.FD.Close()
				start := time.Now()
				req := policy.Request{Path: ev.Path, Event: ev.Mask & engine.PermissionEvents, Pid: ev.Pid,
					Proc: policy.KnownProcess{Name: ev.Comm, UserID: uidOf(ev)}}
				d := pol.Decide(&req)
				deny, rule := d.Verdict == engine.Deny, d.Source()
				if !deny && d.Rule == nil && execCmd != "" {
					deny = !runScanner(ctx, l, execCmd, ev, deadline)
					rule = "--exec"
				}
				verdict := "allow"
				resp := engine.Response{Cache: d.Cache && !deny}
				if deny {
					verdict = "deny"
					if permissive {
						verdict = "deny(permissive)"
					} else {
						resp = engine.Response{Verdict: engine.Deny, Errno: d.Errno}
					}
				}
				if err := c.RespondWait(ctx, ev.ID, resp); err != nil {
					verdict, rule = onTimeout.String(), "deadline"
				}
				if auditW != nil {
					auditW.write(auditRecord{Time: time.Now().Format(time.RFC3339Nano), Path: ev.Path, Pid: int(ev.Pid),
						Comm: ev.Comm, Event: kindName(ev.Mask), Verdict: verdict, Rule: rule,
						Latency: time.Since(start).String(), LatNS: time.Since(start).Nanoseconds()})
				}
			}(ev)
		}
	}
}

func uidOf(ev client.Event) int64 {
	if ev.HasUID {
		return int64(ev.UID)
	}
	return -1
}

func kindName(m engine.Mask) string {
	switch {
	case m&engine.AccessPerm != 0:
		return "access"
	case m&engine.OpenExecPerm != 0:
		return "exec"
	case m&engine.PreAccess != 0:
		return "pre_access"
	}
	return "open"
}

// runScanner runs --exec for a daemon event, through the launcher; it reports whether the
// scanner allowed.
func runScanner(ctx context.Context, l *launcher, execCmd string, ev client.Event, deadline time.Duration) bool {
	res, err := l.run(ctx, scanArgv(execCmd, ev.Path), scanEnv(ev.Path, int(ev.Pid), kindName(ev.Mask)), deadline)
	return err == nil && !res.Killed && res.Err == "" && res.Exit == 0
}

//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
)

// openSource returns the embedded source, or the daemon's with --daemon. withExe asks for
// each process's executable (embedded only: the daemon does not send it).
func openSource(daemon daemonFlag, opts engine.Options, withExe bool) (source, error) {
	if daemon.on {
		return newDaemonSource(daemon, opts)
	}
	return newEmbedded(opts, withExe)
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
	r := format.Record{Time: ev.Time, Path: ev.Path, OldPath: ev.OldPath, Mask: ev.Mask,
		IsDir: ev.IsDir(), Pid: int(ev.Pid), Comm: ev.Comm}
	if r.Path == "" { // unknown (PathUnknown), or not ours to know: either way not printed
		r.PathUnknown, r.Name = true, ev.Name
		r.HasObject, r.Dev, r.Ino = ev.HasObject, ev.Dev, ev.Ino
	}
	return event{rec: r}
}

func (s *daemonSource) close() error { return s.c.Close() }

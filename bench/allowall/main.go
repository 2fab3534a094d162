//go:build linux

// Command allowall is the system under test of bench/backend.sh: the Linux backend, the
// engine, and one in-process content group that allows every permission event, on the same
// marks as fanref's responder (FAN_OPEN_PERM on DIR's children, or on DIR's whole mount).
//
//	allowall [-queue] DIR [mount|subtree]
//
// By default the group answers through an engine Handler, on the goroutine that reads the
// kernel; -queue makes it answer from a reader goroutine through the group's queue instead
// (two goroutine hand-offs more per event). It prints "ready" once its marks are in place and
// runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
)

func main() {
	args := os.Args[1:]
	if prof := os.Getenv("ALLOWALL_CPUPROFILE"); prof != "" {
		f, err := os.Create(prof)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	queue := len(args) > 0 && args[0] == "-queue"
	if queue {
		args = args[1:]
	}
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: allowall [-queue] DIR [mount]")
		os.Exit(2)
	}
	dir, mode := args[0], ""
	if len(args) > 1 {
		mode = args[1]
	}
	b, err := backend.New(backend.Options{Mode: backend.ModeFanotify})
	if err != nil {
		fmt.Fprintln(os.Stderr, "allowall:", err)
		os.Exit(1)
	}
	defer b.Close()
	opts := engine.Options{Class: engine.ClassContent, QueueLimit: -1}
	if !queue {
		opts.Handler = func(engine.Delivery) (engine.Response, bool) { return engine.Response{}, true }
	}
	g, err := b.Engine().NewGroup(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "allowall:", err)
		os.Exit(1)
	}
	kind, mask := engine.KindInode, engine.OpenPerm|engine.EventOnChild
	switch mode {
	case "mount":
		kind, mask = engine.KindMount, engine.OpenPerm
	case "subtree":
		kind, mask = engine.KindSubtree, engine.OpenPerm
	}
	t, err := b.Resolve(dir, kind, false)
	if err == nil {
		err = b.AddMark(g, t, engine.MarkSpec{Mask: mask})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "allowall:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		buf := make([]engine.Delivery, 64)
		for {
			n, err := g.ReadBatch(ctx, buf)
			if err != nil {
				return
			}
			for _, d := range buf[:n] {
				if d.ID != 0 {
					g.Respond(d.ID, engine.Response{})
				}
				d.Release()
			}
		}
	}()
	fmt.Println("ready")
	<-ctx.Done()
	g.Close()
	st := b.Stats()
	fmt.Printf("events %d ignore-marks %d\n", st.PermissionEvents, st.IgnoreMarks)
}

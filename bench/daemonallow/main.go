//go:build linux

// Command daemonallow is the out-of-process client of bench/daemon.sh: a permission client of
// a running fsnotifyd daemon (fsnotifyd serve) that allows every event, on the same marks as
// fanref's responder (FAN_OPEN_PERM on DIR's children, or on DIR's whole mount).
//
//	daemonallow [-events|-wait] SOCKET DIR [mount]
//
// It asks for no paths (client.Options.NoPaths: it reads none, as fanref reads none), and
// for the permission ring (client.Options.Ring) unless DAEMONALLOW_RING=0. It
// answers from the client's Handler, on the goroutine that read the event, with Respond
// (no acknowledgement awaited); with -events it reads the Events channel instead (one
// goroutine hand-off more per event), and with -wait it also answers with RespondWait (one
// round trip more per event). It prints "ready" once its mark is in place and runs until
// SIGTERM or SIGINT, then prints how many events it answered.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
)

func main() {
	args := os.Args[1:]
	if prof := os.Getenv("DAEMONALLOW_CPUPROFILE"); prof != "" {
		if f, err := os.Create(prof); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	wait := len(args) > 0 && args[0] == "-wait"
	events := wait || len(args) > 0 && args[0] == "-events"
	if events {
		args = args[1:]
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: daemonallow [-events|-wait] SOCKET DIR [mount]")
		os.Exit(2)
	}
	sock, dir, mode := args[0], args[1], ""
	if len(args) > 2 {
		mode = args[2]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var n atomic.Uint64
	opts := client.Options{Socket: sock, Name: "daemonallow", Class: engine.ClassContent,
		Deadline: 10 * time.Second, QueueLimit: -1, Buffer: 1024, NoPaths: true,
		Ring: os.Getenv("DAEMONALLOW_RING") != "0"}
	var c *client.Client
	if !events {
		opts.Handler = func(ev client.Event) {
			if ev.ID != 0 {
				c.Respond(ev.ID, engine.Response{})
				n.Add(1)
			}
			ev.FD.Close()
		}
	}
	c, err := client.Dial(dctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemonallow:", err)
		os.Exit(1)
	}
	defer c.Close()
	kind, mask := engine.KindInode, engine.OpenPerm|engine.EventOnChild
	if mode == "mount" {
		kind, mask = engine.KindMount, engine.OpenPerm
	}
	if _, err := c.AddMark(dctx, dir, kind, engine.MarkSpec{Mask: mask}); err != nil {
		fmt.Fprintln(os.Stderr, "daemonallow:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	if !events {
		<-ctx.Done()
		fmt.Printf("events %d\n", n.Load())
		return
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Printf("events %d\n", n.Load())
			return
		case ev, ok := <-c.Events():
			if !ok {
				fmt.Fprintln(os.Stderr, "daemonallow: the daemon closed the connection")
				os.Exit(1)
			}
			if ev.ID != 0 {
				if wait {
					c.RespondWait(ctx, ev.ID, engine.Response{})
				} else {
					c.Respond(ev.ID, engine.Response{})
				}
				n.Add(1)
			}
			ev.FD.Close()
		}
	}
}

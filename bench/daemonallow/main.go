//go:build linux

// Command daemonallow is the out-of-process client of bench/daemon.sh: a permission client of
// a running fsnotifyd daemon (fsnotifyd serve) that allows every event, on the same marks as
// fanref's responder (FAN_OPEN_PERM on DIR's children, or on DIR's whole mount).
//
//	daemonallow [-wait] SOCKET DIR [mount]
//
// It answers with Respond (no acknowledgement awaited), or with -wait with RespondWait (one
// round trip more per event). It prints "ready" once its mark is in place and runs until
// SIGTERM or SIGINT, then prints how many events it answered.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
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
	if wait {
		args = args[1:]
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: daemonallow [-wait] SOCKET DIR [mount]")
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
	c, err := client.Dial(dctx, client.Options{Socket: sock, Name: "daemonallow", Class: engine.ClassContent,
		Deadline: 10 * time.Second, QueueLimit: -1, Buffer: 1024})
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
	var n uint64
	for {
		select {
		case <-ctx.Done():
			fmt.Printf("events %d\n", n)
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
				n++
			}
			ev.FD.Close()
		}
	}
}

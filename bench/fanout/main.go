//go:build linux

// Command fanout is the client side of bench/fanout.sh: N notification clients of a running
// fsnotifyd daemon (in this one process, each its own connection), each marking DIR's children
// for open, close and modify (what `fanref notify DIR` reads), counting what they receive.
//
//	fanout SOCKET DIR [N]
//
// It prints "ready" once every mark is in place; on SIGTERM or SIGINT it prints
// "events TOTAL min MIN max MAX overflows K merged M dropped D": what its clients received (in
// total, the per-client minimum and maximum), the overflows among them, how many events the
// daemon merged into events already queued for them, and how many their queues in the daemon
// dropped (the daemon's stats: overflows not counted there came from the kernel's queue or
// the client library's own).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: fanout SOCKET DIR [N]")
		os.Exit(2)
	}
	sock, dir, n := os.Args[1], os.Args[2], 10
	if len(os.Args) > 3 {
		n, _ = strconv.Atoi(os.Args[3])
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	counts := make([]atomic.Uint64, n)
	var overflows atomic.Uint64
	var wg sync.WaitGroup
	clients := make([]*client.Client, n)
	for i := range clients {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := client.Dial(dctx, client.Options{Socket: sock, Name: fmt.Sprintf("fanout%d", i), Buffer: 1024})
		if err == nil {
			_, err = c.AddMark(dctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Open | engine.Close | engine.Modify | engine.EventOnChild})
		}
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "fanout:", err)
			os.Exit(1)
		}
		clients[i] = c
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Counted in locals, stored once the channel closes: the ten counters share
			// a cache line, and an atomic add to it per event from goroutines on both
			// CPUs was 6% of the clients' samples (docs/design/performance.md, session
			// 10), a cost of this program, not of the client library.
			var got, lost uint64
			for ev := range c.Events() {
				if ev.Overflow {
					lost++
					continue
				}
				got++
			}
			counts[i].Store(got)
			overflows.Add(lost)
		}(i)
	}
	fmt.Println("ready")
	<-ctx.Done()
	var merged, dropped uint64
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if st, err := clients[0].Stats(sctx, true); err == nil {
		for _, cs := range st.Clients {
			if strings.HasPrefix(cs.Name, "fanout") {
				merged += cs.Merged
				dropped += cs.Dropped
			}
		}
	}
	cancel()
	for _, c := range clients {
		c.Close()
	}
	wg.Wait()
	var total, lo, hi uint64
	lo = ^uint64(0)
	for i := range counts {
		v := counts[i].Load()
		total += v
		lo, hi = min(lo, v), max(hi, v)
	}
	fmt.Printf("events %d min %d max %d overflows %d merged %d dropped %d\n", total, lo, hi, overflows.Load(), merged, dropped)
}

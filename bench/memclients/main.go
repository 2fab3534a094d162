//go:build linux

// Command memclients is the client side of bench/memory.sh: N clients of a running fsnotifyd
// daemon (in this one process, each its own connection), each holding a mark on each of the
// first M files of DIR (named 0, 1, ...), so that the daemon holds N×M engine marks.
//
//	memclients SOCKET DIR N M
//
// It prints "ready" once every mark is in place and holds them until SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: memclients SOCKET DIR N M")
		os.Exit(2)
	}
	sock, dir := os.Args[1], os.Args[2]
	n, err1 := strconv.Atoi(os.Args[3])
	m, err2 := strconv.Atoi(os.Args[4])
	if err1 != nil || err2 != nil || n <= 0 || m <= 0 {
		fmt.Fprintln(os.Stderr, "memclients: N and M must be positive numbers")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	clients := make([]*client.Client, 0, n)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, err := client.Dial(dctx, client.Options{Socket: sock, Name: fmt.Sprintf("mem%d", i), Buffer: 16})
		for j := 0; err == nil && j < m; j++ {
			_, err = c.AddMark(dctx, filepath.Join(dir, strconv.Itoa(j)), engine.KindInode, engine.MarkSpec{Mask: engine.Open})
		}
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "memclients: client %d: %v\n", i, err)
			os.Exit(1)
		}
		clients = append(clients, c)
	}
	fmt.Println("ready")
	<-ctx.Done()
}

//go:build linux

package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// runHelper runs one helper role (the test binary started with helperEnv set) and returns
// its exit status. Roles:
//
//	open    open(FSND_PATH) once: prints "start MONO", then "ok MONO" or "err ERRNO MONO"
//	client  a daemon client driven by commands on stdin (see clientHelper)
//	load    opens FSND_PATH (and creates files in its directory) in a loop until killed,
//	        printing "lat count=N max=NS cur=NS" every 50 ms
//	churn   FSND_N clients of every sort connect to the daemon and leave, FSND_CONC at once
//	flood   holds FSND_RAW idle connections and FSND_HELLO idle clients, churns (floodHelper)
//	opener  opens FSND_PATH every 20 ms until killed, printing "open ERRNO NS"
//	rawrm   says Hello and asks to remove the inode mark on FSND_PATH by target (a request the
//	        client library never makes), printing "rm-ok" or "rm-err CODE MSG"
//	rawadd  says Hello and asks for an open mark on FSND_PATH's inode, printing "add-ok" or
//	        "add-err CODE MSG": the protocol spoken without the client library, which refuses
//	        a daemon whose uid it cannot see (a client in a user namespace of its own)
func runHelper(role string) int {
	switch role {
	case "flood":
		return floodHelper()
	case "opener":
		return openerHelper()
	case "open":
		return openHelper()
	case "client":
		return clientHelper()
	case "load":
		return loadHelper()
	case "churn":
		return churnHelper()
	case "rawrm":
		return rawMarkHelper("rm", func(fd int) proto.Msg {
			return &proto.RemoveMark{Req: 2, By: proto.RemoveByTarget, Kind: engine.KindInode, Target: proto.NewFD(fd)}
		})
	case "rawadd":
		return rawMarkHelper("add", func(fd int) proto.Msg {
			return &proto.AddMark{Req: 2, Kind: engine.KindInode, Mask: fsevent.Open, Target: proto.NewFD(fd)}
		})
	}
	fmt.Fprintf(os.Stderr, "unknown helper role %q\n", role)
	return 2
}

var outMu sync.Mutex

func say(format string, args ...any) {
	outMu.Lock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
	outMu.Unlock()
}

func openHelper() int {
	path := os.Getenv("FSND_PATH")
	say("start %d", monoNow())
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	end := monoNow()
	// Report a moment later: the test measures when open() returned, and a crowd of
	// accessors writing to the test process at once would compete for the CPU with the
	// daemon (which runs in the test process) and the accessors still returning.
	time.Sleep(200 * time.Millisecond)
	if err != nil {
		var errno syscall.Errno
		errors.As(err, &errno)
		say("err %d %d", int(errno), end)
	} else {
		syscall.Close(fd)
		say("ok %d", end)
	}
	// Stay until told (stdin closes): a crowd of exiting processes would compete for the CPU
	// with the ones still returning from open(), and blur what the test measures.
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// errCode names an error of the client package for the test: the daemon's code, or
// "unavailable", "closed", "other".
func errCode(err error) string {
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		return ce.Code.String()
	case errors.Is(err, client.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, client.ErrClosed):
		return "closed"
	}
	return "other"
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// clientHelper is a daemon client driven by commands, one per line on stdin; its options come
// from FSND_CLIENT (comma-separated key=value: class, deadline, dverdict, cverdict, fds,
// reconnect, auto, errno, quiet, names, name, comm, uid).
//
//	dial                      → welcome fds=B deadline=NS uid=N   | dial-err CODE MSG
//	add KIND MASK PATH        → add-ok ID                        | add-err CODE MSG
//	rm ID                     → rm-ok                            | rm-err CODE MSG
//	stats                     → stats-ok clients=N pending=N events=N delivered=N
//	                            listed-delivered=N marks=N listed=UID:NAME,...  | stats-err CODE MSG
//	ping                      → pong                             | ping-err CODE MSG
//	count                     → count events=N resyncs=N overflows=N
//	close                     → closed (and exit)
//
// Events are printed as "event ID MASK fd=B path=PATH" (not with quiet), followed, for an
// event whose path is unknown, by "unknown-path pid=PID name=NAME comm=COMM"; Resync events as
// "resync", overflows as "overflow"; with names=1 each event line is followed by "names MASK
// path=PATH name=NAME newname=NEWNAME oldpath=OLDPATH" and "who MASK pid=PID tid=TID comm=COMM
// uid=UID hasuid=B". With auto=allow or auto=deny it
// answers every permission event at once (with errno=N, a deny carries errno N);
// auto=allow-cache allows and asks the kernel to cache the allow.
func clientHelper() int {
	opts := client.Options{Socket: os.Getenv("FSND_SOCKET"), Name: "helper"}
	var auto string
	var autoErrno syscall.Errno
	var quiet, names bool
	for _, kv := range strings.Split(os.Getenv("FSND_CLIENT"), ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "class":
			switch v {
			case "content":
				opts.Class = engine.ClassContent
			case "pre-content":
				opts.Class = engine.ClassPreContent
			}
		case "deadline":
			opts.Deadline, _ = time.ParseDuration(v)
		case "dverdict":
			opts.DeadlineVerdict, _ = engine.ParseVerdict(v)
		case "cverdict":
			opts.CloseVerdict, _ = engine.ParseVerdict(v)
		case "fds":
			opts.WantEventFDs = v == "1"
		case "ring":
			opts.Ring = v == "1"
		case "reconnect":
			opts.Reconnect = v == "1"
		case "auto":
			auto = v
		case "errno":
			n, _ := strconv.Atoi(v)
			autoErrno = syscall.Errno(n)
		case "quiet":
			quiet = v == "1"
		case "names":
			names = v == "1"
		case "name":
			opts.Name = v
		case "comm":
			opts.WantComm = v == "1"
		case "uid":
			opts.WantUID = v == "1"
		}
	}
	var c *client.Client
	var events, resyncs, overflows atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	sc := bufio.NewScanner(os.Stdin)
	say("up")
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "dial":
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			var err error
			c, err = client.Dial(dctx, opts)
			cancel()
			if err != nil {
				say("dial-err %s %s", errCode(err), oneLine(err))
				return 3
			}
			w := c.Welcome()
			say("welcome fds=%d deadline=%d uid=%d ring=%d", b2i(w.EventFDs), int64(w.Deadline), w.UID, b2i(w.Ring))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ev := range c.Events() {
					switch {
					case ev.Resync:
						resyncs.Add(1)
						say("resync")
						continue
					case ev.Overflow:
						overflows.Add(1)
						say("overflow")
						continue
					}
					events.Add(1)
					hasFD := ev.FD.Valid()
					if hasFD {
						// Prove it is a real open file of the accessed object.
						if _, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(ev.FD.Int())); err != nil {
							hasFD = false
						}
						ev.FD.Close()
					}
					if ev.ID != 0 && auto != "" {
						verdict, cache := strings.CutSuffix(auto, "-cache")
						v, _ := engine.ParseVerdict(verdict)
						if err := c.Respond(ev.ID, engine.Response{Verdict: v, Errno: autoErrno, Cache: cache}); err != nil {
							say("respond-err %s %s", errCode(err), oneLine(err))
						}
					}
					if !quiet {
						say("event %d %#x fd=%d path=%s", ev.ID, uint64(ev.Mask), b2i(hasFD), ev.Path)
						if ev.PathUnknown {
							say("unknown-path pid=%d name=%s comm=%s", ev.Pid, ev.Name, ev.Comm)
						}
						if names {
							say("names %#x path=%s name=%s newname=%s oldpath=%s", uint64(ev.Mask), ev.Path, ev.Name, ev.NewName, ev.OldPath)
							say("who %#x pid=%d tid=%d comm=%s uid=%d hasuid=%d", uint64(ev.Mask), ev.Pid, ev.Tid, ev.Comm, ev.UID, b2i(ev.HasUID))
						}
					}
				}
				say("events-closed")
			}()
		case "add":
			if len(f) < 4 {
				say("add-err usage add KIND MASK PATH")
				continue
			}
			kind, _ := strconv.ParseUint(f[1], 0, 8)
			mask, _ := strconv.ParseUint(f[2], 0, 64)
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			id, err := c.AddMark(actx, f[3], engine.Kind(kind), engine.MarkSpec{Mask: engine.Mask(mask)})
			cancel()
			if err != nil {
				say("add-err %s %s", errCode(err), oneLine(err))
			} else {
				say("add-ok %d", id)
			}
		case "rm":
			id, _ := strconv.ParseUint(f[1], 0, 64)
			if err := c.RemoveMark(ctx, client.MarkID(id)); err != nil {
				say("rm-err %s %s", errCode(err), oneLine(err))
			} else {
				say("rm-ok")
			}
		case "stats":
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			st, err := c.Stats(sctx, true)
			cancel()
			if err != nil {
				say("stats-err %s %s", errCode(err), oneLine(err))
			} else {
				var listed []string
				var sum uint64
				for _, e := range st.Clients {
					listed = append(listed, fmt.Sprintf("%d:%s", e.UID, e.Name))
					sum += e.Delivered
				}
				say("stats-ok clients=%d pending=%d events=%d delivered=%d listed-delivered=%d marks=%d listed=%s",
					st.Daemon.Clients, st.Daemon.Pending, st.Daemon.Events, st.Daemon.Delivered, sum, st.Daemon.Marks, strings.Join(listed, ","))
			}
		case "ping":
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				say("ping-err %s %s", errCode(err), oneLine(err))
			} else {
				say("pong")
			}
		case "flush":
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := c.FlushCache(fctx)
			cancel()
			if err != nil {
				say("flush-err %s %s", errCode(err), oneLine(err))
			} else {
				say("flushed")
			}
		case "count":
			say("count events=%d resyncs=%d overflows=%d", events.Load(), resyncs.Load(), overflows.Load())
		case "close":
			if c != nil {
				c.Close()
				wg.Wait()
			}
			say("closed")
			return 0
		}
	}
	if c != nil {
		c.Close()
		wg.Wait()
	}
	return 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// loadHelper opens FSND_PATH in a loop, and every 16th round creates, writes and removes a
// file next to it, until it is killed; a reporter prints progress every 50 ms: ops done, the
// longest op since the last report, and how long the op in progress has been waiting.
func loadHelper() int {
	path := os.Getenv("FSND_PATH")
	dir := filepath.Dir(path)
	var count, maxLat, cur atomic.Int64
	go func() {
		for {
			time.Sleep(50 * time.Millisecond)
			c := cur.Load()
			wait := int64(0)
			if c != 0 {
				wait = monoNow() - c
			}
			say("lat count=%d max=%d cur=%d", count.Load(), maxLat.Swap(0), wait)
		}
	}()
	scratch := filepath.Join(dir, fmt.Sprintf("load-%d", os.Getpid()))
	for i := 0; ; i++ {
		start := monoNow()
		cur.Store(start)
		if i%16 == 15 {
			if f, err := os.Create(scratch); err == nil {
				f.WriteString("x")
				f.Close()
				os.Remove(scratch)
			}
		} else {
			fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err == nil {
				syscall.Close(fd)
			}
		}
		d := monoNow() - start
		cur.Store(0)
		for {
			m := maxLat.Load()
			if d <= m || maxLat.CompareAndSwap(m, d) {
				break
			}
		}
		count.Add(1)
	}
}

// churnHelper makes FSND_N clients connect to the daemon at FSND_SOCKET and leave, FSND_CONC
// at a time, in four manners: a permission client of the client package that answers some
// events and leaves others pending; a notification client that asks for stats; a raw
// connection that adds a mark and hangs up without Bye; a raw connection that hangs up
// before (or right after) its Hello. Each marks FSND_DIR. It prints "churn-done ok=N err=N".
func churnHelper() int {
	sock, dir := os.Getenv("FSND_SOCKET"), os.Getenv("FSND_DIR")
	n, _ := strconv.Atoi(os.Getenv("FSND_N"))
	conc, _ := strconv.Atoi(os.Getenv("FSND_CONC"))
	if conc <= 0 {
		conc = 16
	}
	var ok, bad atomic.Int64
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var err error
			switch i % 4 {
			case 0:
				err = churnPermission(sock, dir, i)
			case 1:
				err = churnNotification(sock, dir, i)
			case 2:
				err = churnRaw(sock, dir, i, true)
			case 3:
				err = churnRaw(sock, dir, i, false)
			}
			if err != nil {
				bad.Add(1)
				say("churn-err %d %s", i, oneLine(err))
			} else {
				ok.Add(1)
			}
		}(i)
	}
	wg.Wait()
	say("churn-done ok=%d err=%d", ok.Load(), bad.Load())
	return 0
}

func churnPermission(sock, dir string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Socket: sock, Name: fmt.Sprintf("churn%d", i), Class: engine.ClassContent,
		Deadline: time.Second, WantEventFDs: i%8 == 0})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.AddMark(ctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild}); err != nil {
		return err
	}
	// Answer the first events, then leave with whatever comes next pending: the daemon
	// answers those with the close verdict.
	timeout := time.After(50 * time.Millisecond)
	for answered := 0; answered < 20; {
		select {
		case ev := <-c.Events():
			ev.FD.Close()
			if ev.ID != 0 {
				c.Respond(ev.ID, engine.Response{})
				answered++
			}
		case <-timeout:
			return nil
		}
	}
	return nil
}

func churnNotification(sock, dir string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Socket: sock, Name: fmt.Sprintf("churn%d", i), WantComm: true, WantUID: true})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.AddMark(ctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Open | engine.Close | engine.Create | engine.Delete | engine.EventOnChild}); err != nil {
		return err
	}
	timeout := time.After(20 * time.Millisecond)
	for got := 0; got < 5; got++ {
		select {
		case <-c.Events():
		case <-timeout:
			got = 5
		}
	}
	_, err = c.Stats(ctx, false)
	return err
}

func churnRaw(sock, dir string, i int, mark bool) error {
	conn, err := proto.Dial(sock)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if !mark && i%8 == 3 {
		return nil // hang up before Hello
	}
	if err := conn.WriteMsg(&proto.Hello{Req: 1, MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion,
		Name: fmt.Sprintf("raw%d", i)}); err != nil {
		return err
	}
	if !mark {
		return nil // hang up right after Hello, maybe before the Welcome
	}
	m, err := conn.ReadMsg()
	if err != nil {
		return err
	}
	if _, ok := m.(*proto.Welcome); !ok {
		return fmt.Errorf("got %T, want Welcome", m)
	}
	fd, err := sys.Open(dir, sys.O_PATH, 0)
	if err != nil {
		return err
	}
	err = conn.WriteMsg(&proto.AddMark{Req: 2, Kind: engine.KindInode, Mask: engine.Open | engine.EventOnChild, Target: proto.NewFD(fd)})
	syscall.Close(fd)
	if err != nil {
		return err
	}
	for {
		m, err := conn.ReadMsg()
		if err != nil {
			return err
		}
		proto.CloseFDs(m)
		if r, ok := m.(*proto.Result); ok && r.Req == 2 {
			if r.Err() != nil {
				return r.Err()
			}
			break
		}
	}
	// Read a little, then hang up without Bye, with events possibly in flight.
	conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	for {
		m, err := conn.ReadMsg()
		if err != nil {
			return nil
		}
		proto.CloseFDs(m)
	}
}

// rawMarkHelper says Hello, then sends req(fd of FSND_PATH, O_PATH) as request 2 and prints
// "OP-ok" or "OP-err CODE MSG" for its Result.
func rawMarkHelper(op string, req func(fd int) proto.Msg) int {
	conn, err := proto.Dial(os.Getenv("FSND_SOCKET"))
	if err != nil {
		say("%s-err dial %s", op, oneLine(err))
		return 1
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := conn.WriteMsg(&proto.Hello{Req: 1, MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Name: "raw" + op}); err != nil {
		say("%s-err hello %s", op, oneLine(err))
		return 1
	}
	fd, err := sys.Open(os.Getenv("FSND_PATH"), sys.O_PATH, 0)
	if err != nil {
		say("%s-err open %s", op, oneLine(err))
		return 1
	}
	err = conn.WriteMsg(req(fd))
	syscall.Close(fd)
	if err != nil {
		say("%s-err write %s", op, oneLine(err))
		return 1
	}
	for {
		m, err := conn.ReadMsg()
		if err != nil {
			say("%s-err read %s", op, oneLine(err))
			return 1
		}
		proto.CloseFDs(m)
		if r, ok := m.(*proto.Result); ok && r.Req == 2 {
			if err := r.Err(); err != nil {
				code := "other"
				var pe *proto.Error
				if errors.As(err, &pe) {
					code = pe.Code.String()
				}
				say("%s-err %s %s", op, code, oneLine(err))
			} else {
				say("%s-ok", op)
			}
			return 0
		}
	}
}

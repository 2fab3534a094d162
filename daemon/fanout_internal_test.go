//go:build linux

package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// fanServer runs a daemon in this process on a private socket. Events must come from child
// processes: the daemon exempts its own.
func fanServer(t testing.TB) (*Server, string) {
	t.Helper()
	s, err := New(Options{Config: DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	return s, sock
}

// fanClient is a raw connection with a Hello of its own and one inode mark on dir.
func fanClient(t testing.TB, sock, dir string, hello proto.Hello, mask engine.Mask) *proto.Conn {
	t.Helper()
	conn, err := proto.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(time.Minute))
	hello.Req = 1
	if hello.MinVersion == 0 {
		hello.MinVersion = proto.MinVersion
	}
	if hello.MaxVersion == 0 {
		hello.MaxVersion = proto.MaxVersion
	}
	if err := conn.WriteMsg(&hello); err != nil {
		t.Fatal(err)
	}
	if m, err := conn.ReadMsg(); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*proto.Welcome); !ok {
		t.Fatalf("got %T, want Welcome", m)
	}
	fd, err := sys.Open(dir, sys.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.WriteMsg(&proto.AddMark{Req: 2, Kind: engine.KindInode, Mask: mask | engine.EventOnChild, Target: proto.NewFD(fd)})
	sys.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	m, err := conn.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := m.(*proto.Result); !ok || r.Err() != nil {
		t.Fatalf("AddMark: %#v", m)
	}
	return conn
}

// readEvents reads until n events (or an overflow) arrived, or the deadline.
func readEvents(t *testing.T, conn *proto.Conn, n int) []*proto.Event {
	t.Helper()
	var got []*proto.Event
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for len(got) < n {
		m, err := conn.ReadMsg()
		if err != nil {
			t.Fatalf("after %d events of %d: %v", len(got), n, err)
		}
		switch m := m.(type) {
		case *proto.Event:
			got = append(got, m)
		case *proto.Overflow:
			t.Fatalf("overflow (%v) after %d events", m.Reason, len(got))
		}
	}
	return got
}

// onlySession returns the server's one client.
func onlySession(t *testing.T, s *Server) *session {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.clients) != 1 {
		t.Fatalf("%d clients, want 1", len(s.clients))
	}
	for _, c := range s.clients {
		return c
	}
	return nil
}

// TestDaemonQueueMergesOnlyExactRepeats (issue 11): events left unread in a client's queue
// in the daemon keep one operation each, in kernel order, as in the embedded Watcher's group:
// a write, a read and a write of one file by one process, 50 ms apart (so the kernel's own
// queue, read at once, does not merge them), held in the client's group until all three are
// queued, arrive as MODIFY, ACCESS, MODIFY. fanotify's rule would have merged the second
// write into the first (MODIFY|ACCESS, and one write fewer).
func TestDaemonQueueMergesOnlyExactRepeats(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, sock := fanServer(t)
	conn := fanClient(t, sock, dir, proto.Hello{Name: "held"}, engine.Modify|engine.Access)
	c := onlySession(t, s)

	// Nothing leaves the client's group while the test holds its sending lock (flushes
	// TryLock it and hand over to the writer, which waits for it).
	c.sendMu.Lock()
	sh := exec.Command("sh", "-c", `echo a >> "$1"; sleep 0.05; read x < "$1"; sleep 0.05; echo b >> "$1"`, "sh", f)
	out, err := sh.CombinedOutput()
	if err != nil {
		c.sendMu.Unlock()
		t.Fatalf("%v: %s", err, out)
	}
	if !eventuallyInternal(10*time.Second, func() bool { return c.g.Stats().Queued+int(c.g.Stats().Merged) >= 3 }) {
		c.sendMu.Unlock()
		t.Fatalf("the group holds %+v, want 3 events", c.g.Stats())
	}
	c.sendMu.Unlock()
	c.kickWriter()

	// Three events, or what came within a few seconds (fewer if they were merged).
	var got []*proto.Event
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < 3 {
		m, err := conn.ReadMsg()
		if err != nil {
			break
		}
		if ev, ok := m.(*proto.Event); ok {
			got = append(got, ev)
		} else {
			t.Fatalf("got %#v", m)
		}
	}
	var masks []string
	for _, ev := range got {
		if ev.Path != f || ev.Pid != int32(sh.Process.Pid) {
			t.Errorf("event %+v, want one of %s by pid %d", ev, f, sh.Process.Pid)
		}
		masks = append(masks, ev.Mask.String())
	}
	want := []string{engine.Modify.String(), engine.Access.String(), engine.Modify.String()}
	if strings.Join(masks, " ") != strings.Join(want, " ") {
		t.Errorf("masks %v, want %v", masks, want)
	}
}

// TestFanoutViews: clients that see the same events differently — with and without process
// names, protocol version 1 and the latest — each get their own view, byte for byte as the
// message they would have been sent alone, in kernel order; none gets another's (the
// encoding is shared only between clients that see an event alike).
func TestFanoutViews(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	_, sock := fanServer(t)
	hellos := map[string]proto.Hello{
		"comm":   {Name: "comm", WantComm: true},
		"plain":  {Name: "plain"},
		"plain2": {Name: "plain2"},
		"v1":     {Name: "v1", MaxVersion: 1, WantComm: true},
	}
	conns := map[string]*proto.Conn{}
	for name, h := range hellos {
		conns[name] = fanClient(t, sock, dir, h, engine.Create|engine.Modify|engine.CloseWrite)
	}
	const n = 50
	// The writer stays alive (in read, its name still sh) until every client has read its
	// events: a process's name is read from /proc when the daemon reads its events, and a
	// writer reaped before that has none left to read (CI 2026-12-05 03:38: every comm "").
	sh := exec.Command("sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo x > "$1/f$i"; i=$((i+1)); done; read x || :`, n), "sh", dir)
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sh.Stdout, sh.Stderr = &out, &out
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := sh.Wait(); err != nil {
			t.Errorf("the writer: %v: %s", err, out.String())
		}
	}()
	rank := map[engine.Mask]int{engine.Create: 1, engine.Modify: 2, engine.CloseWrite: 3}
	for name, conn := range conns {
		h := hellos[name]
		// Each file: CREATE, MODIFY, CLOSE_WRITE, each once, in that order, the files in
		// the order they were written (the kernel may have merged some of one file's
		// operations into one event when the daemon read late).
		seen := map[string]int{} // the latest operation's rank
		var order []string
		for closed := 0; closed < n; {
			ev := readEvents(t, conn, 1)[0]
			if ev.Pid != int32(sh.Process.Pid) {
				t.Fatalf("%s: event %+v by pid %d", name, ev, ev.Pid)
			}
			if h.WantComm != (ev.Comm == "sh") {
				t.Errorf("%s: comm %q (asked: %v)", name, ev.Comm, h.WantComm)
			}
			if v1 := h.MaxVersion == 1; v1 == ev.HasObject {
				t.Errorf("%s: HasObject %v on protocol version %d", name, ev.HasObject, conn.Version())
			}
			if _, ok := seen[ev.Name]; !ok {
				order = append(order, ev.Name)
			}
			for _, op := range []engine.Mask{engine.Create, engine.Modify, engine.CloseWrite} {
				if ev.Mask&op == 0 {
					continue
				}
				if rank[op] <= seen[ev.Name] {
					t.Errorf("%s: %s: %v after an operation ranked %d", name, ev.Name, op, seen[ev.Name])
				}
				seen[ev.Name] = rank[op]
			}
			if ev.Mask&engine.CloseWrite != 0 {
				closed++
			}
		}
		for i, f := range order {
			if want := fmt.Sprintf("f%d", i); f != want {
				t.Fatalf("%s: file %d is %s, want %s (kernel order)", name, i, f, want)
			}
			if seen[f] != rank[engine.CloseWrite] {
				t.Errorf("%s: %s ends with rank %d", name, f, seen[f])
			}
		}
	}
}

// TestFanoutSlowClient: a client that does not read while thousands of events are sent to it
// (its socket fills; the rest waits in its group in the daemon, then with its writer) gets
// every one of them, in order, once it reads — or an overflow in band; and a client
// reading meanwhile is not held up by it.
func TestFanoutSlowClient(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	_, sock := fanServer(t)
	slow := fanClient(t, sock, dir, proto.Hello{Name: "slow", QueueLimit: 1 << 16}, engine.Create)
	fast := fanClient(t, sock, dir, proto.Hello{Name: "fast", QueueLimit: 1 << 16}, engine.Create)
	const n = 5000
	sh := exec.Command("sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do : > "$1/f$i"; i=$((i+1)); done`, n), "sh", dir)
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	check := func(who string, got []*proto.Event) {
		for i, ev := range got {
			if want := fmt.Sprintf("f%d", i); ev.Name != want || ev.Mask&engine.Create == 0 {
				t.Fatalf("%s: event %d is %v %s, want CREATE %s", who, i, ev.Mask, ev.Name, want)
			}
		}
	}
	check("fast", readEvents(t, fast, n))
	if err := sh.Wait(); err != nil {
		t.Fatal(err)
	}
	check("slow", readEvents(t, slow, n))
}

func eventuallyInternal(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

// TestFanoutStoppedClientAmongTen: ten clients share each event's encoding; one of them
// stops reading (as a SIGSTOPped process would: its socket fills, then its queue). The nine
// others get every event, in order, while it is stopped; once it reads again it gets the
// events before the gap in order, then an overflow in band, and as many events as its
// group did not drop: none is lost silently.
func TestFanoutStoppedClientAmongTen(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.TmpfsSize(t, 64)
	s, sock := fanServer(t)
	// A queue of 1024: not flushed eagerly (eagerQueue), as the others.
	stopped := fanClient(t, sock, dir, proto.Hello{Name: "stopped", QueueLimit: eagerQueue}, engine.Create)
	var stoppedSession *session
	s.mu.Lock()
	for _, c := range s.clients {
		stoppedSession = c
	}
	s.mu.Unlock()
	var fast []*proto.Conn
	for i := 0; i < 9; i++ {
		fast = append(fast, fanClient(t, sock, dir, proto.Hello{Name: fmt.Sprintf("fast%d", i), QueueLimit: 1 << 16}, engine.Create))
	}
	const n = 8000
	sh := exec.Command("sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do : > "$1/f$i"; i=$((i+1)); done`, n), "sh", dir)
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, len(fast))
	for i, conn := range fast {
		go func() {
			conn.SetReadDeadline(time.Now().Add(time.Minute))
			for j := 0; j < n; j++ {
				m, err := conn.ReadMsg()
				if err != nil {
					errs <- fmt.Errorf("fast%d: after %d events: %v", i, j, err)
					return
				}
				ev, ok := m.(*proto.Event)
				if want := fmt.Sprintf("f%d", j); !ok || ev.Name != want || ev.Mask&engine.Create == 0 {
					errs <- fmt.Errorf("fast%d: message %d is %#v, want CREATE %s", i, j, m, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range fast {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if err := sh.Wait(); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}
	st := stoppedSession.g.Stats()
	if st.Dropped == 0 || st.Overflows == 0 {
		t.Fatalf("the stopped client's group dropped %d events in %d overflows: the test did not fill it", st.Dropped, st.Overflows)
	}
	// Now it reads: events in order, with gaps only right after an overflow, until it has
	// every event its group did not drop and an overflow (the last message, if the gap is
	// at the end).
	stopped.SetReadDeadline(time.Now().Add(time.Minute))
	got, overflows, prev, gap := 0, 0, -1, false // prev: the last event's file number
	for got < n-int(st.Dropped) || overflows == 0 {
		m, err := stopped.ReadMsg()
		if err != nil {
			t.Fatalf("stopped: after %d events and %d overflows: %v", got, overflows, err)
		}
		switch m := m.(type) {
		case *proto.Overflow:
			if m.Reason != proto.OverflowQueue {
				t.Fatalf("stopped: overflow %v, want its own queue's", m.Reason)
			}
			overflows++
			gap = true // a later file may follow
		case *proto.Event:
			var k int
			if _, err := fmt.Sscanf(m.Name, "f%d", &k); err != nil || m.Mask&engine.Create == 0 {
				t.Fatalf("stopped: event %v %s", m.Mask, m.Name)
			}
			if k <= prev || k != prev+1 && !gap {
				t.Fatalf("stopped: f%d after f%d (%d events, %d overflows): out of order, or lost without an overflow", k, prev, got, overflows)
			}
			got++
			prev, gap = k, false
		}
	}
	if overflows == 0 || uint64(overflows) > st.Overflows {
		t.Errorf("stopped: %d overflows in band, its group queued %d", overflows, st.Overflows)
	}
	t.Logf("stopped client: %d events, %d dropped, %d overflows in band", got, st.Dropped, overflows)
}

// TestFanoutMasksDiffer: clients whose marks select different operations of the same files
// get different subsequences of the kernel's events, each in kernel order and with only the
// operations it asked for, while those that see events alike share their encoding. Each
// client's next event is often not the next one encoded (the flush's memo cursor misses and
// finds it through the index).
func TestFanoutMasksDiffer(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	_, sock := fanServer(t)
	masks := []engine.Mask{
		engine.Create,
		engine.Create | engine.Modify | engine.CloseWrite,
		engine.Modify | engine.CloseWrite,
		engine.Create | engine.Modify | engine.CloseWrite,
		engine.CloseWrite,
		engine.Create,
	}
	var conns []*proto.Conn
	for i, m := range masks {
		conns = append(conns, fanClient(t, sock, dir, proto.Hello{Name: fmt.Sprintf("m%d", i)}, m))
	}
	const n = 300
	sh := exec.Command("sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo x > "$1/f$i"; i=$((i+1)); done`, n), "sh", dir)
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	ops := []engine.Mask{engine.Create, engine.Modify, engine.CloseWrite}
	for i, conn := range conns {
		want := masks[i]
		last := engine.CloseWrite // the last operation of a file this client sees
		if want&engine.CloseWrite == 0 {
			last = engine.Create
		}
		file, rank := 0, -1 // the file being reported, the rank of its latest operation
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for file < n {
			ev := readEvents(t, conn, 1)[0]
			if ev.Mask&^want&^engine.OnDir != 0 || ev.Mask&want == 0 {
				t.Fatalf("client %d (mask %v): event %v %s", i, want, ev.Mask, ev.Name)
			}
			if name := fmt.Sprintf("f%d", file); ev.Name != name {
				t.Fatalf("client %d (mask %v): %v %s, want an event of %s (kernel order)", i, want, ev.Mask, ev.Name, name)
			}
			for r, op := range ops {
				if ev.Mask&op == 0 {
					continue
				}
				if r <= rank {
					t.Fatalf("client %d: %s: %v after an operation ranked %d", i, ev.Name, op, rank)
				}
				rank = r
			}
			if ev.Mask&last != 0 {
				file, rank = file+1, -1
			}
		}
	}
}

// TestFlushInterval: the interval after a flush grows by flushPerClient per client written
// to, from flushEvery to maxFlushEvery, and never beyond what the smallest queue among them
// absorbs at one event a microsecond (a queue of 1,024 keeps it at about a millisecond).
func TestFlushInterval(t *testing.T) {
	clients := func(limits ...int) []*session {
		var ss []*session
		for _, l := range limits {
			ss = append(ss, &session{absorb: absorbFor(l)})
		}
		return ss
	}
	n := func(k, limit int) []int {
		l := make([]int, k)
		for i := range l {
			l[i] = limit
		}
		return l
	}
	for _, tc := range []struct {
		name   string
		limits []int
		want   time.Duration
	}{
		{"no client", nil, flushEvery},
		{"1 client", n(1, 16384), flushEvery},
		{"2 clients", n(2, 16384), flushEvery},
		{"4 clients", n(4, 16384), 4 * flushPerClient},
		{"10 clients", n(10, 16384), maxFlushEvery},
		{"1000 clients", n(1000, 16384), maxFlushEvery},
		{"10 unlimited queues", n(10, -1), maxFlushEvery},
		{"10 clients, one queue of 1024", append(n(9, 16384), 1024), 1024 * time.Microsecond},
		{"10 clients, one queue of 3000", append(n(9, -1), 3000), 3 * time.Millisecond},
		{"10 clients, one queue of 10", append(n(9, 16384), 10), flushEvery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := flushInterval(clients(tc.limits...)); got != tc.want {
				t.Errorf("flushInterval: %v, want %v", got, tc.want)
			}
		})
	}
	// What a flush may wait must fit in the queue at one event a microsecond.
	for _, limit := range []int{0, 1, 1023, 1024, 4999, 5000, 16384, 1 << 20} {
		if d := absorbFor(limit); d > time.Duration(limit)*time.Microsecond || d > maxFlushEvery {
			t.Errorf("absorbFor(%d) = %v: more than the queue absorbs, or than maxFlushEvery", limit, d)
		}
	}
}

// TestReaderHookFlushes: while the FID reader is awake, a flush that is not due yet is left
// to it — no timer armed, Idle says when, and flushes once it is — and when it is asleep, or
// ends (Idle's last), the timer flushes: no event waits without something that will flush it.
func TestReaderHookFlushes(t *testing.T) {
	_, f := testFan()
	defer f.close()
	h := readerHook{f}
	// Unprivileged sessions: a flush hands them to their writer (a kick), which is what the
	// test sees of it.
	c := &session{kick: make(chan struct{}, 1), absorb: absorbFor(16384)}
	kicked := func() bool {
		select {
		case <-c.kick:
			return true
		default:
			return false
		}
	}
	armed := func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.armed }

	// The first event after a quiet interval goes at once, on the goroutine that queued it.
	h.Awake()
	f.queued(c)
	if !kicked() {
		t.Fatal("the first event after a quiet interval was not flushed at once")
	}
	// The next is not due: left to the awake reader.
	f.queued(c)
	if kicked() || armed() {
		t.Fatalf("an event not due yet: timer armed %v; want no flush and no timer while the reader is awake", armed())
	}
	d := h.Idle(false)
	if d < 0 || d > flushEvery {
		t.Fatalf("Idle with an event waiting returned %v, want 0..%v", d, flushEvery)
	}
	if kicked() || armed() {
		t.Fatal("Idle flushed, or armed the timer, before the flush was due")
	}
	time.Sleep(d)
	h.Awake() // the reader's wait ended at the time Idle gave
	if d := h.Idle(false); d >= 0 {
		t.Errorf("Idle after flushing returned %v, want -1 (nothing waits)", d)
	}
	if !kicked() {
		t.Fatal("Idle at the time it gave did not flush")
	}
	if armed() {
		t.Error("the timer was armed though the reader flushed")
	}

	// The reader asleep: the timer flushes.
	f.queued(c)
	if !armed() {
		t.Fatal("an event queued while the reader sleeps did not arm the timer")
	}
	waitKick := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !kicked() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not flushed within 10 s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitKick("an event queued while the reader sleeps")

	// The reader ends while an event waits: its last Idle hands it to the timer.
	for armed() {
		time.Sleep(time.Millisecond)
	}
	h.Awake()
	f.queued(c)
	if kicked() {
		// Due already (the timer's flush was over an interval ago): queue another.
		f.queued(c)
	}
	if d := h.Idle(true); d < 0 {
		t.Fatalf("the last Idle with an event waiting returned %v", d)
	}
	if !armed() {
		t.Fatal("the reader's last Idle left an event waiting with no timer armed")
	}
	waitKick("an event waiting when the reader ended")
}

// releaseCount counts its event's payload releases.
type releaseCount struct{ n *atomic.Int32 }

func (p releaseCount) Release() { p.n.Add(1) }

// TestFlushReleasesDeliveries: a flush keeps the deliveries of an event it writes to several
// clients with the event's memo entry and releases them together when it ends (one atomic add
// per event): every client gets every event, and every payload is released exactly once,
// none before the flush (the groups held them) — with one client, with several alike, and
// with clients whose masks, so memo entries, differ.
func TestFlushReleasesDeliveries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		masks []engine.Mask
	}{
		{"1 client", []engine.Mask{engine.Open}},
		{"10 clients alike", []engine.Mask{engine.Open, engine.Open, engine.Open, engine.Open, engine.Open, engine.Open, engine.Open, engine.Open, engine.Open, engine.Open}},
		{"masks differ", []engine.Mask{engine.Open, engine.Open | engine.Close, engine.Close, engine.Open}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := testFan()
			defer f.close()
			e := engine.New(engine.Config{})
			dir := engine.ID{Hi: 1, Lo: 2}
			cs, readers := flushSessions(t, s, e, dir, tc.masks...)
			const n = 600 // more than a batch (fanoutBatch): runs go on across reads of the group
			var released [n]atomic.Int32
			for i := range n {
				ev := &engine.Event{Mask: engine.Open, Inode: engine.ID{Hi: 1, Lo: uint64(10 + i%3)}, Parent: dir,
					Name: fmt.Sprintf("f%d", i%3), Path: fmt.Sprintf("/d/f%d", i%3), Pid: int32(1000 + i),
					Payload: releaseCount{&released[i]}}
				if i%2 == 1 {
					ev.Mask = engine.Close
				}
				e.Notify(context.Background(), ev)
				ev.Release() // the source is done
			}
			want := make([][]int32, len(cs)) // the events each client's mask takes, by pid
			for i := range n {
				taken := false
				for j, m := range tc.masks {
					if i%2 == 0 && m&engine.Open != 0 || i%2 == 1 && m&engine.Close != 0 {
						want[j] = append(want[j], int32(1000+i))
						taken = true
					}
				}
				if got := released[i].Load(); got != 0 && taken {
					t.Fatalf("event %d released before the flush", i)
				} else if got != 1 && !taken {
					t.Fatalf("event %d, which no client takes, released %d times, want 1", i, got)
				}
			}
			flushAll(f, cs)
			for i := range n {
				if got := released[i].Load(); got != 1 {
					t.Errorf("event %d: payload released %d times after the flush, want 1", i, got)
				}
			}
			// Each client gets its events, in order, and nothing else.
			for j, cc := range readers {
				cc.SetReadDeadline(time.Now().Add(10 * time.Second))
				for k, pid := range want[j] {
					m, err := cc.ReadMsg()
					if err != nil {
						t.Fatalf("client %d: event %d of %d: %v", j, k, len(want[j]), err)
					}
					if ev, ok := m.(*proto.Event); !ok || ev.Pid != pid {
						t.Fatalf("client %d: message %d is %#v, want the event of pid %d", j, k, m, pid)
					}
				}
				cc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if m, err := cc.ReadMsg(); err == nil {
					t.Fatalf("client %d: a message beyond its events: %#v", j, m)
				}
			}
		})
	}
}

// TestFlushEncodingFailureIsEveryClientsOverflow: an event the flush cannot encode (a NUL in
// its name: the protocol's string rules refuse it) becomes an overflow for every client that
// shares its memo entry, not only for the first one that met it; the events around it arrive
// in order.
func TestFlushEncodingFailureIsEveryClientsOverflow(t *testing.T) {
	s, f := testFan()
	defer f.close()
	e := engine.New(engine.Config{})
	dir := engine.ID{Hi: 1, Lo: 2}
	cs, readers := flushSessions(t, s, e, dir, engine.Open, engine.Open, engine.Open)
	for i, name := range []string{"a", "b\x00c", "d"} {
		ev := &engine.Event{Mask: engine.Open, Inode: engine.ID{Hi: 1, Lo: uint64(10 + i)}, Parent: dir,
			Name: name, Path: "/d/" + name, Pid: int32(1000 + i)}
		e.Notify(context.Background(), ev)
		ev.Release()
	}
	flushAll(f, cs)
	for j, cc := range readers {
		cc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []string
		for range 3 {
			m, err := cc.ReadMsg()
			if err != nil {
				t.Fatalf("client %d after %v: %v", j, got, err)
			}
			switch m := m.(type) {
			case *proto.Event:
				got = append(got, m.Name)
			case *proto.Overflow:
				got = append(got, "overflow "+m.Reason.String())
			default:
				t.Fatalf("client %d: %T", j, m)
			}
		}
		if want := []string{"a", "overflow queue", "d"}; !slices.Equal(got, want) {
			t.Errorf("client %d got %q, want %q", j, got, want)
		}
	}
}

// testFan is a server's fanout, started (its caller closes it), for the tests of flushes.
func testFan() (*Server, *fanout) {
	s := &Server{start: time.Now().Add(-time.Hour)}
	s.fan.init(s)
	return s, &s.fan
}

// flushAll marks each of cs dirty, as an event queued to it does, and flushes.
func flushAll(f *fanout, cs []*session) {
	f.mu.Lock()
	for _, c := range cs {
		c.dirty.Store(true)
		f.dirty = append(f.dirty, c)
	}
	f.mu.Unlock()
	f.flush()
}

// flushSessions is a flushSession for each of masks (named by its index), and their client
// ends.
func flushSessions(t *testing.T, s *Server, e *engine.Engine, dir engine.ID, masks ...engine.Mask) ([]*session, []*proto.Conn) {
	t.Helper()
	var cs []*session
	var readers []*proto.Conn
	for i, m := range masks {
		c, cc := flushSession(t, s, e, i, dir, m)
		cs = append(cs, c)
		readers = append(readers, cc)
	}
	return cs, readers
}

// flushSession is a privileged session of server s on a new group of e (named i) that watches
// the children of dir for mask, over a pipe whose client end it returns (the Welcome read):
// the sessions a flush test fans out to. Closed when the test ends.
func flushSession(t *testing.T, s *Server, e *engine.Engine, i int, dir engine.ID, mask engine.Mask) (*session, *proto.Conn) {
	t.Helper()
	g, err := e.NewGroup(engine.Options{Name: fmt.Sprint(i)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if err := g.AddMark(engine.Object{Kind: engine.KindInode, ID: dir}, engine.MarkSpec{Mask: mask | engine.EventOnChild}); err != nil {
		t.Fatal(err)
	}
	dc, cc, err := proto.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close(); cc.Close() })
	if err := dc.WriteMsg(&proto.Welcome{Req: 1, Version: proto.MaxVersion, ClientID: 1, Instance: proto.InstanceID{1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	c := &session{s: s, g: g, conn: dc, privileged: true, kick: make(chan struct{}, 1)}
	c.initLocks()
	return c, cc
}

// TestMemoLookupLeavesOwnEntriesUnhashed: a send looks for an event's memo entry at the
// cursor, then among the entries earlier clients' sends made (seq[:theirs]) through the
// index; the entries the client being sent made itself are not looked for there (its group
// holds each delivery once), so they are never hashed: the first client of a flush, which
// encodes every event, costs no map insert or lookup per event. Fails if lookup indexes or
// finds the current send's own entries, or misses an earlier client's entry away from the
// cursor.
func TestMemoLookupLeavesOwnEntriesUnhashed(t *testing.T) {
	evs := make([]*engine.Event, 6)
	for i := range evs {
		evs[i] = &engine.Event{Pid: int32(i)}
	}
	key := func(i int) memoKey { return memoKey{ev: evs[i], mask: engine.Open, v: 1} }
	for _, tc := range []struct {
		name    string
		entries []int // the events of seq's entries, in order
		theirs  int   // how many of them earlier clients' sends made
		cur     int
		look    int // the event looked for
		want    int // its entry's index (-1: not found)
		indexed int // entries in the index afterwards
	}{
		{"first client: nothing to find, nothing hashed", []int{0, 1, 2}, 0, 3, 3, -1, 0},
		{"first client looks for its own event again", []int{0, 1, 2}, 0, 3, 1, -1, 0},
		{"earlier client's entry at the cursor", []int{0, 1, 2}, 3, 1, 1, 1, 0},
		{"earlier client's entry away from the cursor", []int{0, 1, 2}, 3, 0, 2, 2, 3},
		{"own entry after earlier ones: not hashed, not found", []int{0, 1, 2, 3, 4}, 3, 5, 4, -1, 3},
		{"earlier entry found after own ones were made", []int{0, 1, 2, 3, 4}, 3, 5, 0, 0, 3},
		{"absent event", []int{0, 1, 2, 3}, 2, 4, 5, -1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fanout{index: make(map[memoKey]int)}
			for _, e := range tc.entries {
				f.seq = append(f.seq, memoEntry{k: key(e)})
			}
			f.theirs, f.cur = tc.theirs, tc.cur
			i, ok := f.lookup(key(tc.look))
			if got := map[bool]int{true: i, false: -1}[ok]; got != tc.want {
				t.Errorf("lookup of event %d = %d, want %d", tc.look, got, tc.want)
			}
			if ok && f.cur != i+1 {
				t.Errorf("cursor %d after the hit at %d, want %d", f.cur, i, i+1)
			}
			if len(f.index) != tc.indexed || f.indexed != tc.indexed {
				t.Errorf("index holds %d entries (indexed %d), want %d: the send's own entries are never hashed", len(f.index), f.indexed, tc.indexed)
			}
			for k, j := range f.index {
				if j >= tc.theirs {
					t.Errorf("entry %d (event %d), made by the send under way, is in the index", j, k.ev.Pid)
				}
			}
		})
	}
}

package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	goleak.VerifyTestMain(m, leakIgnores()...)
}

// openBucket opens the policy bucket (DefaultBucket) through js, creating it if missing, as
// policy push does; the test fails if it cannot.
func openBucket(t testing.TB, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := OpenBucket(context.Background(), js, DefaultBucket, true)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// push pushes policy as DefaultKey's next revision in kv (checked by validatePolicy, whatever
// the revision there); the test fails if it is not pushed.
func push(t testing.TB, kv jetstream.KeyValue, policy string) PushResult {
	t.Helper()
	res, err := Push(context.Background(), kv, DefaultKey, []byte(policy), 0, validatePolicy)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// leakIgnores are goroutines of the in-process nats-server that outlive its Shutdown by a
// moment, and the test binary's own.
func leakIgnores() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).handleSignals.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startRateLimitLogExpiration.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*stree).run"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).monitorStream"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server/avl.(*SequenceSet).run"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).syncBlocks"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushLoop"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*msgBlock).flushLoop"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).runFileStoreTimerWheel"),
	}
}

// natsServer is an in-process nats-server with JetStream, which can be stopped and started
// again on the same port and store (an outage with the data kept).
type natsServer struct {
	t     testing.TB
	store string
	port  int
	conf  string // a config file, when not ""
	srv   *server.Server
}

func startNATS(t testing.TB) *natsServer {
	t.Helper()
	ns := &natsServer{t: t, store: t.TempDir(), port: freePort(t)}
	ns.start()
	t.Cleanup(ns.stop)
	return ns
}

// freePort finds a loopback port nobody listens on now.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (ns *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", ns.port) }

func (ns *natsServer) start() {
	ns.t.Helper()
	opts := &server.Options{JetStream: true, StoreDir: ns.store, Host: "127.0.0.1", Port: ns.port, NoLog: true, NoSigs: true}
	if ns.conf != "" {
		var err error
		if opts, err = server.ProcessConfigFile(ns.conf); err != nil {
			ns.t.Fatal(err)
		}
		opts.StoreDir, opts.Host, opts.Port, opts.NoLog, opts.NoSigs = ns.store, "127.0.0.1", ns.port, true, true
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		ns.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		ns.t.Fatal("nats-server not ready in 10s")
	}
	ns.srv = srv
}

func (ns *natsServer) stop() {
	if ns.srv != nil {
		ns.srv.Shutdown()
		ns.srv.WaitForShutdown()
		ns.srv = nil
	}
}

// snapshot stops the server, copies its store (a consistent copy: the server is stopped) and
// starts it again; it returns the copy, for restore.
func (ns *natsServer) snapshot() string {
	ns.t.Helper()
	ns.stop()
	dir := ns.t.TempDir()
	if out, err := exec.Command("cp", "-a", ns.store+"/.", dir).CombinedOutput(); err != nil {
		ns.t.Fatalf("copying the store: %v: %s", err, out)
	}
	ns.start()
	return dir
}

// restore stops the server and starts it again on a snapshot's copy of its store.
func (ns *natsServer) restore(dir string) {
	ns.t.Helper()
	ns.stop()
	ns.store = dir
	ns.start()
}

// reopen is a new connection to the (restarted) server and the policy bucket in it, opened
// as a follower opens it (not created).
func (ns *natsServer) reopen(ctx context.Context) (jetstream.JetStream, jetstream.KeyValue) {
	ns.t.Helper()
	_, js := ns.connect(ns.t)
	kv, err := OpenBucket(ctx, js, DefaultBucket, false)
	if err != nil {
		ns.t.Fatal(err)
	}
	return js, kv
}

// connect is a plain client connection for the test's own reading.
func (ns *natsServer) connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(ns.url(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// got is what a reader took from the stream for one host.
type got struct {
	seqs  []uint64          // records other than gaps, in stream order (duplicates dropped)
	data  map[uint64][]byte // by seq
	gaps  []Header
	dups  int
	order bool // seqs (records and gaps) came in increasing order
	// idKeys counts the records by the key in their Nats-Msg-Id (one spool: one key).
	idKeys map[string]int
}

// msgIDRe is a record's Nats-Msg-Id: TOKEN/KEY/SEQ, KEY the spool's 128-bit secret.
var msgIDRe = regexp.MustCompile(`^([A-Za-z0-9_=-]+)/([0-9a-f]{32})/([0-9]+)$`)

// readAll reads every message of the stream (from the start) until it has been idle for
// idle, and returns what host wrote.
func readAll(t testing.TB, js jetstream.JetStream, host string, idle time.Duration) *got {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, DefaultStream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	g := &got{data: map[uint64][]byte{}, order: true, idKeys: map[string]int{}}
	var d Deduper
	var last uint64
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(idle))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			h, err := ParseHeader(m.Data())
			if err != nil {
				t.Fatalf("stream message %q: %v", m.Data(), err)
			}
			if h.Host != host {
				continue
			}
			id := m.Headers().Get(jetstream.MsgIDHeader)
			if sm := msgIDRe.FindStringSubmatch(id); sm == nil || sm[1] != mustToken(t, host) || sm[3] != fmt.Sprint(h.Seq) {
				t.Fatalf("seq %d has Nats-Msg-Id %q (want %s/KEY/%d)", h.Seq, id, mustToken(t, host), h.Seq)
			} else if g.idKeys[sm[2]]++; len(g.idKeys) > 1 {
				t.Fatalf("the records of one spool have several id keys: %v", g.idKeys)
			}
			if d.Seen(h.Host, h.Seq) {
				g.dups++
				continue
			}
			if h.Seq <= last {
				g.order = false
			}
			last = h.Seq
			if h.Kind == "gap" {
				g.gaps = append(g.gaps, h)
				continue
			}
			g.seqs = append(g.seqs, h.Seq)
			g.data[h.Seq] = append([]byte(nil), m.Data()...)
		}
		if batch.Error() != nil && ctx.Err() != nil {
			t.Fatal(batch.Error())
		}
		if n == 0 {
			return g
		}
	}
}

func mustToken(t testing.TB, host string) string {
	tok, err := HostToken(host)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// accountFor checks exact loss accounting over 1..last: every seq is a delivered record, a
// delivered gap record, or inside exactly one gap's range, and nothing else.
func (g *got) accountFor(t testing.TB, last uint64) {
	t.Helper()
	owner := map[uint64]string{}
	claim := func(seq uint64, what string) {
		if prev, ok := owner[seq]; ok {
			t.Errorf("seq %d is both %s and %s", seq, prev, what)
		}
		owner[seq] = what
	}
	for _, s := range g.seqs {
		claim(s, "a record")
	}
	for _, h := range g.gaps {
		claim(h.Seq, "a gap record")
		if h.First > 0 {
			if h.Count != h.Last-h.First+1 {
				t.Errorf("gap %d: count %d for %d-%d", h.Seq, h.Count, h.First, h.Last)
			}
			for s := h.First; s <= h.Last; s++ {
				claim(s, fmt.Sprintf("lost in gap %d (%s)", h.Seq, h.Reason))
			}
		}
	}
	var missing []uint64
	for s := uint64(1); s <= last; s++ {
		if _, ok := owner[s]; !ok {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d seqs neither delivered nor in a gap, e.g. %v", len(missing), missing[:min(10, len(missing))])
	}
	for s := range owner {
		if s > last {
			t.Errorf("seq %d beyond the last used (%d)", s, last)
		}
	}
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLog collects an exporter's or follower's log lines.
type testLog struct {
	mu    sync.Mutex
	lines []string
	t     testing.TB
}

func (l *testLog) log(msg string) {
	l.mu.Lock()
	l.lines = append(l.lines, msg)
	l.mu.Unlock()
}

func (l *testLog) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// payload is a record payload carrying its index.
func payload(i int) []byte {
	return fmt.Appendf(nil, `{"time":%q,"path":"/srv/f%d","events":["CLOSE_WRITE"],"isdir":false,"i":%d}`,
		time.Now().Format(time.RFC3339Nano), i, i)
}

func payloadIndex(t testing.TB, data []byte) int {
	var v struct {
		I *int `json:"i"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.I == nil {
		t.Fatalf("record %q has no index: %v", data, err)
	}
	return *v.I
}

func sortedCopy(s []uint64) []uint64 {
	c := append([]uint64(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c
}

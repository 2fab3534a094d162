package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newTestExporter(t testing.TB, ns *natsServer, host, spoolDir string, mod func(*ExporterConfig)) (*Exporter, *testLog) {
	t.Helper()
	lg := &testLog{t: t}
	cfg := ExporterConfig{Conn: ConnOptions{URLs: ns.url(), Timeout: 2 * time.Second}, Host: host, BootID: "boot-1",
		SpoolDir: spoolDir, Log: lg.log}
	if mod != nil {
		mod(&cfg)
	}
	e, err := NewExporter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, lg
}

func closeExporter(t testing.TB, e *Exporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if n := e.Close(ctx); n != 0 {
		t.Errorf("Close left %d seqs unacknowledged", n)
	}
}

func TestRecordLayout(t *testing.T) {
	ns := startNATS(t)
	e, _ := newTestExporter(t, ns, "web-1.example.com", t.TempDir(), nil)
	if err := e.Append(Event, []byte(`{"time":"2024-05-01T12:00:00Z","path":"/etc/passwd","events":["OPEN"],"isdir":false}`)); err != nil {
		t.Fatal(err)
	}
	if err := e.Append(Decision, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{`} {
		if err := e.Append(Event, []byte(bad)); err == nil {
			t.Errorf("Append(%q) accepted", bad)
		}
	}
	if err := e.Append(Gap, []byte(`{}`)); err == nil {
		t.Error("Append of kind Gap accepted")
	}
	waitFor(t, 10*time.Second, "2 records acked", func() bool { return e.Stats().AckedThrough == 2 })
	closeExporter(t, e)
	_, js := ns.connect(t)
	ctx := context.Background()
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "fsnotifyd.events.web-1_example_com" {
		t.Errorf("subject %q", m.Subject)
	}
	want := `{"host":"web-1.example.com","boot_id":"boot-1","seq":1,"kind":"event","time":"2024-05-01T12:00:00Z","path":"/etc/passwd","events":["OPEN"],"isdir":false}`
	if string(m.Data) != want {
		t.Errorf("record\n%s\nwant\n%s", m.Data, want)
	}
	if id := m.Header.Get("Nats-Msg-Id"); !msgIDRe.MatchString(id) || !strings.HasPrefix(id, "web-1_example_com/") || !strings.HasSuffix(id, "/1") {
		t.Errorf("Nats-Msg-Id %q (want web-1_example_com/<32 hex digits>/1)", id)
	}
	m, err = s.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"host":"web-1.example.com","boot_id":"boot-1","seq":2,"kind":"decision"}`; string(m.Data) != want || m.Subject != "fsnotifyd.decisions.web-1_example_com" {
		t.Errorf("record %s on %s, want %s", m.Data, m.Subject, want)
	}
	info := s.CachedInfo()
	if info.Config.Duplicates != 2*time.Minute || info.Config.MaxAge != 7*24*time.Hour || info.Config.MaxBytes != 1<<30 {
		t.Errorf("stream config: duplicates %v, max age %v, max bytes %d", info.Config.Duplicates, info.Config.MaxAge, info.Config.MaxBytes)
	}
	if st := e.Stats(); st.Rejected != 5 || st.Appended != 2 {
		t.Errorf("stats %+v", st)
	}
}

// (a) 10,000 records, the server stopped for 5 s in the middle and started again on the same
// store: every seq arrives exactly once after dedupe, in order, and nothing is reported lost.
func TestExporterServerOutage(t *testing.T) {
	ns := startNATS(t)
	e, lg := newTestExporter(t, ns, "h1", t.TempDir(), nil)
	const n = 10000
	appendRange := func(from, to int) {
		for i := from; i < to; i++ {
			if err := e.Append(Event, payload(i)); err != nil {
				t.Fatal(err)
			}
			if i%500 == 0 {
				time.Sleep(5 * time.Millisecond) // a stream, not one burst
			}
		}
	}
	appendRange(0, 4000)
	waitFor(t, 20*time.Second, "some records acked before the outage", func() bool { return e.Stats().AckedThrough >= 1000 })
	ns.stop()
	appendRange(4000, 7000)
	waitFor(t, 10*time.Second, "the outage to be noticed", func() bool { return !e.Stats().Connected })
	time.Sleep(5 * time.Second)
	if st := e.Stats(); st.AckedThrough >= n {
		t.Fatalf("everything acked during the outage? %+v", st)
	}
	ns.start()
	appendRange(7000, n)
	waitFor(t, 60*time.Second, "every record acked after the outage", func() bool { return e.Stats().AckedThrough == n })
	st := e.Stats()
	closeExporter(t, e)
	_, js := ns.connect(t)
	g := readAll(t, js, "h1", time.Second)
	if len(g.seqs) != n || len(g.gaps) != 0 {
		t.Fatalf("got %d records and %d gaps (%+v), want %d and none; stats %+v\nlog:\n%s", len(g.seqs), len(g.gaps), g.gaps, n, st, lg)
	}
	if !g.order {
		t.Error("records out of seq order in the stream")
	}
	for i, s := range g.seqs {
		if s != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, s)
		}
		if idx := payloadIndex(t, g.data[s]); idx != i {
			t.Fatalf("seq %d carries payload %d", s, idx)
		}
	}
	g.accountFor(t, n)
	t.Logf("duplicates dropped by the reader: %d; resends %d; log:\n%s", g.dups, st.Resends, lg)
	if !lg.has("disconnected") || !lg.has("reconnected") {
		t.Errorf("the log does not tell the outage:\n%s", lg)
	}
}

// (c) A spool too small for an outage: the records that did not fit are named, exactly, by
// a gap record, and every seq is accounted for.
func TestExporterSpoolFullGap(t *testing.T) {
	ns := startNATS(t)
	ns.stop() // down from the start
	spoolDir := t.TempDir()
	e, lg := newTestExporter(t, ns, "h1", spoolDir, func(c *ExporterConfig) {
		c.SpoolMaxBytes = 64 << 10
		c.SegmentBytes = 8 << 10
	})
	const n = 3000
	for i := 0; i < n; i++ {
		e.Append(Event, payload(i))
	}
	waitFor(t, 10*time.Second, "the writer to take everything", func() bool { return e.Stats().LastSeq >= n })
	st := e.Stats()
	if st.DroppedSpool == 0 || st.SpoolBytes > 64<<10 {
		t.Fatalf("spool limit not reached or exceeded: %+v", st)
	}
	ns.start()
	for i := n; i < n+100; i++ {
		e.Append(Event, payload(i))
	}
	waitFor(t, 30*time.Second, "everything acked", func() bool {
		s := e.Stats()
		return s.AckedThrough == s.LastSeq
	})
	st = e.Stats()
	closeExporter(t, e)
	_, js := ns.connect(t)
	g := readAll(t, js, "h1", time.Second)
	g.accountFor(t, st.LastSeq)
	if len(g.gaps) != 1 {
		t.Fatalf("want one gap record, got %+v\nlog:\n%s", g.gaps, lg)
	}
	gp := g.gaps[0]
	if gp.Reason != ReasonSpoolFull || gp.Count != st.DroppedSpool {
		t.Errorf("gap %+v, want reason %s and count %d", gp, ReasonSpoolFull, st.DroppedSpool)
	}
	// The gap names exactly the payloads that are missing: the delivered indexes are 0..k-1
	// and k+count..n+99, in seq order.
	var idx []int
	for _, s := range g.seqs {
		idx = append(idx, payloadIndex(t, g.data[s]))
	}
	k := int(gp.First - 1)
	for j, v := range idx {
		want := j
		if j >= k {
			want = j + int(gp.Count)
		}
		if v != want {
			t.Fatalf("delivered record %d is payload %d, want %d (gap %+v)", j, v, want, gp)
		}
	}
	if len(idx)+int(gp.Count) != n+100 {
		t.Errorf("%d delivered + %d lost != %d appended", len(idx), gp.Count, n+100)
	}
	if gp.Seq != gp.Last+1 {
		t.Errorf("the gap record has seq %d, want %d (right after the range it names)", gp.Seq, gp.Last+1)
	}
}

// A full memory buffer and a kernel overflow become gap records in their place in the order.
func TestExporterBufferFullAndOverflowGaps(t *testing.T) {
	ns := startNATS(t)
	gate := make(chan struct{})
	writerGate = func() { <-gate } // the writer waits at its next batch until gate is closed
	e, _ := newTestExporter(t, ns, "h1", t.TempDir(), func(c *ExporterConfig) { c.BufferRecords = 10 })
	for i := 0; i < 25; i++ {
		e.Append(Event, payload(i)) // 0-9 queued, 10-24 dropped
	}
	e.Overflow()
	close(gate)
	waitFor(t, 10*time.Second, "the writer's batch", func() bool { return e.Stats().LastSeq == 27 })
	e.Append(Event, payload(25))
	e.Overflow() // after the last record: a trailing gap
	waitFor(t, 10*time.Second, "all acked", func() bool { s := e.Stats(); return s.LastSeq == 29 && s.AckedThrough == 29 })
	st := e.Stats()
	closeExporter(t, e)
	writerGate = nil
	if st.DroppedBuffer != 15 || st.Overflows != 2 {
		t.Errorf("stats %+v", st)
	}
	_, js := ns.connect(t)
	g := readAll(t, js, "h1", time.Second)
	g.accountFor(t, st.LastSeq)
	// seqs: 1-10 records 0-9; 11-25 lost (buffer_full); 26 its gap; 27 overflow; 28 record 25
	// ... and the trailing overflow; count them by kind.
	var reasons []string
	for _, h := range g.gaps {
		reasons = append(reasons, fmt.Sprintf("%d:%s:%d-%d", h.Seq, h.Reason, h.First, h.Last))
	}
	want := "26:buffer_full:11-25 27:overflow:0-0 29:overflow:0-0"
	if strings.Join(reasons, " ") != want {
		t.Errorf("gaps %v, want %s", reasons, want)
	}
	if len(g.seqs) != 11 || g.seqs[10] != 28 || payloadIndex(t, g.data[28]) != 25 {
		t.Errorf("records %v", g.seqs)
	}
}

const crashChildEnv = "FLEET_CRASH_CHILD"

// crashChild is the exporting process of TestExporterKill9: it appends records i = 0, 1, ...
// and prints "written SEQ" as the spool takes them, until it is killed.
func crashChild() int {
	e, err := NewExporter(ExporterConfig{Conn: ConnOptions{URLs: os.Getenv("FLEET_URL"), Timeout: time.Second},
		Host: "h1", BootID: "boot-1", SpoolDir: os.Getenv("FLEET_SPOOL"), Log: func(s string) { fmt.Fprintln(os.Stderr, s) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		e.Append(Event, payload(i))
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
			fmt.Fprintf(w, "written %d\n", e.written.Load())
			w.Flush()
		}
	}
}

// (b) kill -9 of the exporting process mid-stream, with records in the spool that never
// reached the server: a new exporter on the same spool sends them, seq goes on above the
// last used, and nothing that reached the spool is lost.
func TestExporterKill9(t *testing.T) {
	ns := startNATS(t)
	spoolDir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", "FLEET_URL="+ns.url(), "FLEET_SPOOL="+spoolDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan uint64, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "written "); ok {
				n, _ := strconv.ParseUint(v, 10, 64)
				select {
				case lines <- n:
				default:
				}
			}
		}
		close(lines)
	}()
	var written uint64
	waitW := func(min uint64) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for written < min {
			select {
			case v, ok := <-lines:
				if !ok {
					t.Fatalf("child exited: %s", stderr.String())
				}
				written = max(written, v)
			case <-deadline:
				t.Fatalf("child wrote only %d: %s", written, stderr.String())
			}
		}
	}
	waitW(3000) // published while the server is up...
	ns.stop()
	waitW(written + 5000) // ...and spooled while it is down
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for v := range lines {
		written = max(written, v)
	}
	ns.start()

	e, lg := newTestExporter(t, ns, "h1", spoolDir, nil)
	const more = 1000
	for i := 0; i < more; i++ {
		e.Append(Event, payload(1_000_000+i))
	}
	waitFor(t, 60*time.Second, "the spool and the new records acked", func() bool {
		s := e.Stats()
		return s.LastSeq > written && s.AckedThrough == s.LastSeq
	})
	st := e.Stats()
	closeExporter(t, e)
	_, js := ns.connect(t)
	g := readAll(t, js, "h1", time.Second)
	g.accountFor(t, st.LastSeq)
	if !g.order {
		t.Error("out of order")
	}
	// The child's records: payloads 0..k-1 in seq order 1..k, k >= everything it reported
	// written. Then one crash gap, then the new run's records above.
	k := 0
	for _, s := range g.seqs {
		i := payloadIndex(t, g.data[s])
		if i >= 1_000_000 {
			break
		}
		if i != k || s != uint64(k+1) {
			t.Fatalf("child record seq %d is payload %d, want %d", s, i, k)
		}
		k++
	}
	if uint64(k) < written {
		t.Fatalf("only %d child records delivered, but %d were in the spool at the kill\nlog:\n%s", k, written, lg)
	}
	var crash *Header
	for i := range g.gaps {
		if g.gaps[i].Reason == ReasonCrash {
			crash = &g.gaps[i]
		}
	}
	if crash == nil || crash.Seq != uint64(k+1) || crash.First != 0 {
		t.Fatalf("want a crash gap without range at seq %d, got %+v", k+1, g.gaps)
	}
	if len(g.seqs) != k+more || g.seqs[k] != uint64(k+2) {
		t.Errorf("new run: %d records, first seq %d; want %d from seq %d", len(g.seqs)-k, g.seqs[k], more, k+2)
	}
	t.Logf("child: %d records in the spool at the kill, %d delivered; %d duplicates dropped", written, k, g.dups)
}

// After a reboot (another boot id) with an unclean stop, seqs go on above the durable
// reservation and the gap names the skipped range.
func TestExporterRebootSkipsReservedSeqs(t *testing.T) {
	ns := startNATS(t)
	dir := t.TempDir()
	e, _ := newTestExporter(t, ns, "h1", dir, nil)
	for i := 0; i < 10; i++ {
		e.Append(Event, payload(i))
	}
	waitFor(t, 10*time.Second, "acked", func() bool { return e.Stats().AckedThrough == 10 })
	// Stop without Close, as a crash would: the writer and publisher are stopped by hand,
	// leaving the state "running".
	e.abandon()
	e2, _ := newTestExporter(t, ns, "h1", dir, func(c *ExporterConfig) { c.BootID = "boot-2" })
	e2.Append(Event, payload(10))
	want := uint64(seqBlock + 2) // e reserved 1..seqBlock at its start; then the gap, the record
	waitFor(t, 10*time.Second, "acked", func() bool { return e2.Stats().AckedThrough == want })
	closeExporter(t, e2)
	_, js := ns.connect(t)
	g := readAll(t, js, "h1", time.Second)
	if len(g.gaps) != 1 || g.gaps[0].Reason != ReasonCrash || g.gaps[0].First != 11 || g.gaps[0].Last != seqBlock {
		t.Fatalf("gaps %+v", g.gaps)
	}
	g.accountFor(t, want)
}

// A host name with characters that are not in subjects still gets its own subject.
func TestHostToken(t *testing.T) {
	for _, tc := range []struct{ host, token string }{
		{"web-1", "web-1"},
		{"web-1.example.com", "web-1_example_com"},
		{"a_b", "a=5Fb"},
		{"a=b", "a=3Db"},
		{"x y*>/\x00é", "x=20y=2A=3E=2F=00=C3=A9"},
	} {
		got, err := HostToken(tc.host)
		if err != nil || got != tc.token {
			t.Errorf("HostToken(%q) = %q, %v; want %q", tc.host, got, err, tc.token)
		}
		back, err := HostFromToken(got)
		if err != nil || back != tc.host {
			t.Errorf("HostFromToken(%q) = %q, %v", got, back, err)
		}
	}
	if _, err := HostToken(""); err == nil {
		t.Error("empty host accepted")
	}
	// A token decodes to a host only if it is that host's token: "w=65b1" is not web1's, and a
	// record published on it is not shown as web1's (CheckHeader).
	for _, bad := range []string{"a=5", "a=zz", "a.b", "a=5f", "", "w=65b1", "web=2D1", "a=2Eb", "=30"} {
		if _, err := HostFromToken(bad); err == nil {
			t.Errorf("HostFromToken(%q) accepted", bad)
		}
	}
}

func FuzzHostToken(f *testing.F) {
	f.Add("web-1.example.com")
	f.Add("a_b=c")
	f.Fuzz(func(t *testing.T, host string) {
		tok, err := HostToken(host)
		if host == "" {
			if err == nil {
				t.Fatal("empty accepted")
			}
			return
		}
		for _, c := range []byte(tok) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
				t.Fatalf("token %q has %q", tok, c)
			}
		}
		back, err := HostFromToken(tok)
		if err != nil || back != host {
			t.Fatalf("round trip %q -> %q -> %q, %v", host, tok, back, err)
		}
	})
}

// FuzzHostFromToken: a token decodes to at most one host and each host has one token: a
// token accepted is the token of the host it decodes to, so no subject but a host's own says
// it sent a record (SubjectHost, CheckHeader).
func FuzzHostFromToken(f *testing.F) {
	for _, s := range []string{"web-1_example_com", "a=5Fb", "w=65b1", "a=2Eb", "=5f", "=", "a=", "_", "=00", "=C3=A9", "x=2A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		host, err := HostFromToken(tok)
		if err != nil {
			return
		}
		if back, err := HostToken(host); err != nil || back != tok {
			t.Fatalf("HostFromToken(%q) = %q, whose token is %q, %v", tok, host, back, err)
		}
		if got, err := SubjectHost(Subject(Event, tok)); err != nil || got != host {
			t.Fatalf("SubjectHost(%q) = %q, %v; want %q", Subject(Event, tok), got, err, host)
		}
	})
}

// TestDeduperAgainstAHostileHost: a host chooses its records' Nats-Msg-Id. Its spool keys
// (one per record) cannot make a reader keep seq state without bound (a window's bitmap, 8 KiB,
// each), and its name cannot make its dedupe keys another host's ("a" with key "b/c" and "a/b"
// with key "c"), which would drop that host's records as second copies.
func TestDeduperAgainstAHostileHost(t *testing.T) {
	if DedupeKey("a", "a/b/c/5") == DedupeKey("a/b", "a=2Fb/c/5") {
		t.Errorf("hosts a and a/b share the dedupe key %q", DedupeKey("a", "a/b/c/5"))
	}
	var d Deduper
	if d.Seen(DedupeKey("web-1", "web-1/k1/1"), 1) {
		t.Fatal("first record seen")
	}
	for i := 0; i < 20000; i++ {
		d.Seen(DedupeKey("evil", fmt.Sprintf("evil/k%d/%d", i, i+1)), uint64(i+1))
	}
	if n := len(d.hosts); n > 2*maxDedupeKeysPerHost {
		t.Errorf("%d dedupe keys kept after 20000 keys of one host (%d KiB of bitmaps)", n, n*int(d.Window)/8/1024)
	}
	if !d.Seen(DedupeKey("web-1", "web-1/k1/1"), 1) {
		t.Error("another host's keys evicted web-1's: its resent record is shown twice")
	}
}

func TestDeduper(t *testing.T) {
	d := Deduper{Window: 128}
	for _, tc := range []struct {
		host string
		seq  uint64
		seen bool
	}{
		{"a", 1, false}, {"a", 2, false}, {"a", 1, true}, {"b", 1, false}, {"a", 5, false},
		{"a", 4, false}, {"a", 4, true}, {"a", 3, false}, {"a", 200, false}, {"a", 73, false},
		{"a", 72, true}, // older than the window below 200: taken as seen
		{"a", 200, true}, {"a", 329, false}, {"a", 201, true}, {"a", 202, false}, {"a", 202, true},
	} {
		if got := d.Seen(tc.host, tc.seq); got != tc.seen {
			t.Errorf("Seen(%s, %d) = %v, want %v", tc.host, tc.seq, got, tc.seen)
		}
	}
}

func TestParsePolicyURL(t *testing.T) {
	for _, tc := range []struct{ in, urls, bucket, key string }{
		{"nats://h:4222", "nats://h:4222", DefaultBucket, DefaultKey},
		{"nats://h:4222/b", "nats://h:4222", "b", DefaultKey},
		{"nats://h:4222/b/k", "nats://h:4222", "b", "k"},
		{"tls://a:1,b:2/b/k", "tls://a:1,tls://b:2", "b", "k"},
	} {
		u, b, k, err := ParsePolicyURL(tc.in)
		if err != nil || u != tc.urls || b != tc.bucket || k != tc.key {
			t.Errorf("ParsePolicyURL(%q) = %q %q %q %v", tc.in, u, b, k, err)
		}
	}
	// A bucket or key that cannot be read is an error, never the default bucket (a guard
	// would follow another policy): a bad escape, an empty part.
	for _, bad := range []string{"h:4222", "nats:///b/k", "nats://h/b/k/x", "nats://h/prod%zz/web", "nats://h//web", "nats://h/b//", "nats://h/%/k",
		"nats://h/a%2F..%2F..%2Ftmp%2Fx/k", "nats://h/..%2Fx/k", "nats://h/b.c/k", "nats://h/b%20c/k"} { // names NATS refuses, and a saved copy outside --policy-state
		if _, _, _, err := ParsePolicyURL(bad); err == nil {
			t.Errorf("ParsePolicyURL(%q) accepted", bad)
		}
	}
}

// FuzzParsePolicyURL: the bucket and key a guard follows are the ones the URL names: written
// back as a URL they parse to themselves, and a URL with a first path part names its bucket
// (never the default in its place); nothing panics.
func FuzzParsePolicyURL(f *testing.F) {
	for _, s := range []string{"nats://h:4222", "nats://h:4222/b", "nats://h:4222/b/k", "tls://a:1,b:2/b/k", "nats://h/prod%zz/web",
		"nats://h//web", "nats://h/b/", "nats://h/b%2Fc/k", "nats://h/%62/k", "://h/b", "nats://,/b", "nats://h/b/k/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		urls, bucket, key, err := ParsePolicyURL(s)
		if err != nil {
			return
		}
		if urls == "" || bucket == "" || key == "" {
			t.Fatalf("ParsePolicyURL(%q) = %q %q %q", s, urls, bucket, key)
		}
		scheme, rest, _ := strings.Cut(s, "://")
		hosts, path, _ := strings.Cut(rest, "/")
		if first, _, _ := strings.Cut(path, "/"); first != "" {
			if b, err := url.PathUnescape(first); err != nil || b != bucket {
				t.Fatalf("ParsePolicyURL(%q): bucket %q, but the URL names %q (%v)", s, bucket, first, err)
			}
		}
		again := scheme + "://" + hosts + "/" + url.PathEscape(bucket) + "/" + key
		u2, b2, k2, err := ParsePolicyURL(again)
		if err != nil || u2 != urls || b2 != bucket || k2 != key {
			t.Fatalf("ParsePolicyURL(%q) = %q %q %q; written back as %q: %q %q %q %v", s, urls, bucket, key, again, u2, b2, k2, err)
		}
	})
}

func TestConnectErrorsSayWhatToDo(t *testing.T) {
	port := freePort(t)
	o := ConnOptions{URLs: fmt.Sprintf("nats://127.0.0.1:%d", port), Timeout: time.Second}
	start := time.Now()
	_, err := o.Connect()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(port)) || !strings.Contains(err.Error(), "-js") {
		t.Errorf("err %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect took %v", d)
	}
	for _, tc := range []struct {
		o    ConnOptions
		want string
	}{
		{ConnOptions{}, "no NATS URL"},
		{ConnOptions{URLs: "http://x:1"}, "scheme"},
		{ConnOptions{URLs: "nats://x:1/b"}, "path"},
		{ConnOptions{URLs: "x:1", Creds: "/nonexistent/creds"}, "--nats-creds"},
		{ConnOptions{URLs: "x:1", TLSCert: os.Args[0]}, "go together"},
	} {
		if err := tc.o.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}

// The records are valid JSON whatever the host name.
func TestRecordJSONWithOddHost(t *testing.T) {
	ns := startNATS(t)
	e, _ := newTestExporter(t, ns, "we\"ird\nhost", t.TempDir(), nil)
	e.Append(Event, payload(0))
	waitFor(t, 10*time.Second, "acked", func() bool { return e.Stats().AckedThrough == 1 })
	closeExporter(t, e)
	_, js := ns.connect(t)
	g := readAll(t, js, "we\"ird\nhost", time.Second)
	if len(g.seqs) != 1 {
		t.Fatalf("got %+v", g)
	}
	var v map[string]any
	if err := json.Unmarshal(g.data[1], &v); err != nil || v["host"] != "we\"ird\nhost" {
		t.Errorf("%s: %v", g.data[1], err)
	}
}

// TestExporterAppendBatch: AppendBatch is Append of each payload in turn: refused payloads
// (not a JSON object) take no seq and are counted, the first one's error is returned; the
// buffer filling up in the middle of a batch drops the rest with a buffer_full gap in their
// place; a batch after Close is refused whole. Every seq is accounted for.
func TestExporterAppendBatch(t *testing.T) {
	ns := startNATS(t)
	gate := make(chan struct{})
	writerGate = func() { <-gate } // hold the writer so that the buffer fills
	defer func() { writerGate = nil }()
	e, _ := newTestExporter(t, ns, "h1", t.TempDir(), func(c *ExporterConfig) { c.BufferRecords = 6 })
	for _, c := range []struct {
		name      string
		payloads  [][]byte
		taken     int
		wantErr   bool
		appended  uint64 // Stats after the call
		rejected  uint64
		droppedBf uint64
	}{
		{"all good", [][]byte{payload(0), payload(1), payload(2)}, 3, false, 3, 0, 0},
		{"empty", nil, 0, false, 3, 0, 0},
		{"one refused in the middle", [][]byte{payload(3), []byte(`not json`), payload(4)}, 2, true, 5, 1, 0},
		{"buffer fills in the middle", [][]byte{payload(5), payload(6), payload(7)}, 3, false, 6, 1, 2},
	} {
		taken, err := e.AppendBatch(Event, c.payloads)
		st := e.Stats()
		if taken != c.taken || (err != nil) != c.wantErr || st.Appended != c.appended || st.Rejected != c.rejected || st.DroppedBuffer != c.droppedBf {
			t.Errorf("%s: taken %d, err %v, stats appended %d rejected %d dropped %d; want %d, error %v, %d %d %d",
				c.name, taken, err, st.Appended, st.Rejected, st.DroppedBuffer, c.taken, c.wantErr, c.appended, c.rejected, c.droppedBf)
		}
	}
	if _, err := e.AppendBatch(Gap, [][]byte{payload(8)}); err == nil {
		t.Error("AppendBatch of kind gap: no error")
	}
	close(gate)
	// seqs: 1-6 records 0-5, 7-8 lost (records 6 and 7), 9 their gap.
	waitFor(t, 10*time.Second, "all acked", func() bool { s := e.Stats(); return s.LastSeq == 9 && s.AckedThrough == 9 })
	st := e.Stats()
	closeExporter(t, e)
	if taken, err := e.AppendBatch(Event, [][]byte{payload(9), payload(10)}); taken != 0 || !errors.Is(err, ErrClosed) {
		t.Errorf("AppendBatch after Close: taken %d, err %v; want 0, ErrClosed", taken, err)
	}
	_, js := ns.connect(t)
	g := readAll(t, js, "h1", time.Second)
	g.accountFor(t, st.LastSeq)
	if len(g.seqs) != 6 || len(g.gaps) != 1 || g.gaps[0].Reason != ReasonBufferFull || g.gaps[0].First != 7 || g.gaps[0].Last != 8 {
		t.Fatalf("records %v, gaps %+v; want 6 records and a buffer_full gap of 7-8", g.seqs, g.gaps)
	}
	for i, seq := range g.seqs {
		if p := payloadIndex(t, g.data[seq]); p != i {
			t.Errorf("seq %d holds payload %d, want %d (batch order)", seq, p, i)
		}
	}
}

// TestExporterSpoolFullIsSaid: NATS is down and the spool fills (any user can make many
// events). The spool stays within its bound, and the log says so at once — once, not per
// record — naming the spool and the limit; once there is room again (NATS back), it says how
// many records were lost, and the gap names them. Before, nothing was said while it was full:
// the loss showed only in the stream's gap record after the outage and in the metrics.
func TestExporterSpoolFullIsSaid(t *testing.T) {
	ns := startNATS(t)
	ns.stop()
	spoolDir := t.TempDir()
	e, lg := newTestExporter(t, ns, "h1", spoolDir, func(c *ExporterConfig) {
		c.SpoolMaxBytes = 64 << 10
		c.SegmentBytes = 8 << 10
	})
	const n = 3000
	for i := 0; i < n; i++ {
		e.Append(Event, payload(i))
	}
	waitFor(t, 10*time.Second, "the writer to take everything", func() bool { return e.Stats().LastSeq >= n })
	if st := e.Stats(); st.DroppedSpool == 0 || st.SpoolBytes > 64<<10 {
		t.Fatalf("spool limit not reached or exceeded: %+v", st)
	}
	// The bound is the disk's: every file in the spool directory, not only the spool's count.
	var onDisk int64
	filepath.WalkDir(spoolDir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				onDisk += fi.Size()
			}
		}
		return nil
	})
	if onDisk > 64<<10+4<<10 {
		t.Errorf("the spool's files hold %d bytes, over its 64 KiB bound (and 4 KiB for its lock and seq files)", onDisk)
	}
	waitFor(t, 5*time.Second, "the log to say the spool is full", func() bool { return lg.has("spool " + spoolDir + " is full") })
	full := 0
	for _, l := range strings.Split(lg.String(), "\n") {
		if strings.Contains(l, "is full") {
			full++
		}
	}
	if full != 1 {
		t.Errorf("%d lines say the spool is full, want 1 (not one per record)", full)
	}
	ns.start()
	e.Append(Event, payload(n))
	waitFor(t, 30*time.Second, "the log to say the spool has room again", func() bool { return lg.has("has room again") })
	st := e.Stats()
	if want := fmt.Sprintf("has room again: %d records were dropped", st.DroppedSpool); !lg.has(want) {
		t.Errorf("the log does not say %q:\n%s", want, lg)
	}
	closeExporter(t, e)
}

//go:build linux

package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/internal/testnats"
)

// tailStrings reads the stream from its start and returns what line says of each record,
// until n records (or 10 s).
func tailStrings(t *testing.T, url string, n int, line func(rec map[string]any) string) []string {
	t.Helper()
	o := fleet.ConnOptions{URLs: url}
	nc, err := o.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := o.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fleet.Tail(ctx, js, fleet.TailOptions{StartSeq: 1}, func(r *fleet.Received) error {
		var m map[string]any
		if err := json.Unmarshal(r.Data, &m); err != nil {
			t.Errorf("record %q: %v", r.Data, err)
		}
		if got = append(got, line(m)); len(got) == n {
			return fleet.ErrStopTail
		}
		return nil
	})
	return got
}

// TestExportOverflowBecomesGap: an overflow of the export group's queue (the kernel's reaches
// it the same way: the backend queues one to every group) becomes a gap record of reason
// overflow in its place in the stream, between the events before and after it.
func TestExportOverflowBecomesGap(t *testing.T) {
	etc := exportDir(t)
	url, exp, s := startExportServer(t, "export close_write "+etc+"/**\n")
	write := func(name string) {
		os.WriteFile(filepath.Join(etc, name), []byte("x"), 0o644)
	}
	waitExported := func(n uint64) {
		for deadline := time.Now().Add(10 * time.Second); s.export.events.Load() < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d events exported, want %d", s.export.events.Load(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	write("before")
	waitExported(1)
	s.export.g.Overflow()
	for deadline := time.Now().Add(10 * time.Second); exp.Stats().Overflows == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the group's overflow did not reach the exporter")
		}
		time.Sleep(5 * time.Millisecond)
	}
	write("after")
	waitExported(2)
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if unsent := exp.Close(ctx); unsent != 0 {
		t.Fatalf("%d records unsent", unsent)
	}

	got := tailStrings(t, url, 3, func(m map[string]any) string {
		return fmt.Sprintf("%v:%v:%v", m["seq"], m["kind"], m["path"]) + fmt.Sprint(m["reason"])
	})
	want := []string{
		"1:event:" + etc + "/before<nil>",
		"2:gap:<nil>overflow",
		"3:event:" + etc + "/after<nil>",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records %v, want %v", got, want)
	}
}

func TestMarkRoot(t *testing.T) {
	for _, c := range []struct {
		glob, root string
		literal    bool
	}{
		{"/etc/**", "/etc", false}, {"/srv/*/conf/*.yaml", "/srv", false}, {"/**", "/", false},
		{"/etc/passwd", "/etc/passwd", true}, {"/etc", "/etc", true}, {"/a/b[c]/d", "/a", false}, {`/a/\*`, "/a", false},
	} {
		if root, literal := markRoot(c.glob); root != c.root || literal != c.literal {
			t.Errorf("markRoot(%q) = %q, %v; want %q, %v", c.glob, root, literal, c.root, c.literal)
		}
	}
}

// TestExportLinesShareAMark: lines whose globs start in one directory share its mark with the
// union of their events, each line still selecting only its own events and paths; a literal
// file glob marks its directory and exports that file's events only.
func TestExportLinesShareAMark(t *testing.T) {
	etc := exportDir(t)
	os.WriteFile(filepath.Join(etc, "passwd"), nil, 0o644)
	url, exp, s := startExportServer(t,
		"export delete "+etc+"/*.conf\nexport close_write "+etc+"/**/*.yaml\nexport open "+etc+"/passwd\n")
	os.WriteFile(filepath.Join(etc, "a.conf"), nil, 0o644) // close_write of a .conf: not exported
	os.Remove(filepath.Join(etc, "a.conf"))                // exported
	os.WriteFile(filepath.Join(etc, "b.yaml"), nil, 0o644) // exported
	os.Remove(filepath.Join(etc, "b.yaml"))                // delete of a .yaml: not exported
	os.ReadFile(filepath.Join(etc, "passwd"))              // exported
	os.ReadFile(filepath.Join(etc, "other"))               // absent: nothing
	for deadline := time.Now().Add(10 * time.Second); s.export.events.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d events exported, want 3", s.export.events.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a wrong fourth
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exp.Close(ctx)
	if n := s.export.events.Load(); n != 3 {
		t.Fatalf("%d events exported, want 3", n)
	}
	got := tailStrings(t, url, 3, func(m map[string]any) string {
		var evs []string
		for _, e := range m["events"].([]any) {
			evs = append(evs, e.(string))
		}
		return strings.TrimPrefix(m["path"].(string), etc+"/") + ":" + strings.Join(evs, ",")
	})
	if want := "[a.conf:DELETE b.yaml:CLOSE_WRITE passwd:OPEN]"; fmt.Sprint(got) != want {
		t.Fatalf("records %v, want %s", got, want)
	}
}

// eventSets reads n records from the stream and returns, per path, the union of the events
// of its records and how many records it had; it fails on a gap or a seq out of order.
func eventSets(t *testing.T, url string, n int) (map[string]map[string]bool, map[string]int) {
	t.Helper()
	sets, counts := map[string]map[string]bool{}, map[string]int{}
	got := tailStrings(t, url, n, func(m map[string]any) string {
		if m["kind"] != "event" {
			t.Errorf("record %v: want only events", m)
			return ""
		}
		p, _ := m["path"].(string)
		if sets[p] == nil {
			sets[p] = map[string]bool{}
		}
		counts[p]++
		for _, e := range m["events"].([]any) {
			sets[p][e.(string)] = true
		}
		return fmt.Sprint(m["seq"])
	})
	if len(got) != n {
		t.Fatalf("%d records in the stream, want %d", len(got), n)
	}
	for i, seq := range got {
		if seq != fmt.Sprint(i+1) {
			t.Fatalf("record %d has seq %s, want %d", i, seq, i+1)
		}
	}
	return sets, counts
}

// TestExportBatchedReadsLoseNothing tries to lose or mix up events through the export loop's
// batched reads (one read per exportInterval, a read's records in one AppendBatch): a burst
// of writes to 300 distinct files and, interleaved, 200 opens and writes of one file. Every
// distinct file must have records whose events include its open, modify and close_write;
// the repeated file's records must include open and modify (repeats merge only into a record
// of the same file, with the union of the events), and there must be no more records than
// operations; seqs have no gap.
func TestExportBatchedReadsLoseNothing(t *testing.T) {
	etc := exportDir(t)
	hot := filepath.Join(etc, "hot")
	os.WriteFile(hot, nil, 0o644)
	url, exp, s := startExportServer(t, "export open,modify,close_write "+etc+"/**\n")
	const files, repeats = 300, 200
	for i := 0; i < files; i++ {
		if err := os.WriteFile(filepath.Join(etc, fmt.Sprintf("f%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if i < repeats {
			f, err := os.OpenFile(hot, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("y"))
			f.Close()
		}
	}
	// Quiet: nothing more exported for 300 ms (60 intervals).
	for last, deadline := uint64(0), time.Now().Add(20*time.Second); ; {
		time.Sleep(300 * time.Millisecond)
		n := s.export.events.Load()
		if n == last && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export did not settle (%d events)", n)
		}
		last = n
	}
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if unsent := exp.Close(ctx); unsent != 0 {
		t.Fatalf("%d records unsent", unsent)
	}
	if st := exp.Stats(); st.DroppedBuffer+st.DroppedSpool+st.Overflows != 0 {
		t.Fatalf("losses %+v", st)
	}
	n := int(s.export.events.Load())
	if max := files*3 + repeats*3; n > max {
		t.Fatalf("%d records for %d operations", n, max)
	}
	sets, counts := eventSets(t, url, n)
	for i := 0; i < files; i++ {
		p := filepath.Join(etc, fmt.Sprintf("f%d", i))
		for _, e := range []string{"OPEN", "MODIFY", "CLOSE_WRITE"} {
			if !sets[p][e] {
				t.Errorf("%s: no record has %s (records %d, events %v)", p, e, counts[p], sets[p])
			}
		}
	}
	for _, e := range []string{"OPEN", "MODIFY", "CLOSE_WRITE"} {
		if !sets[hot][e] {
			t.Errorf("%s: no record has %s (records %d, events %v)", hot, e, counts[hot], sets[hot])
		}
	}
	if len(sets) != files+1 {
		t.Errorf("records for %d paths, want %d", len(sets), files+1)
	}
	t.Logf("%d records: %d for the %d distinct files, %d for %d rounds on one file", n, n-counts[hot], files, counts[hot], repeats)
}

// TestExportStopAppendsQueued: events the export group holds when the daemon stops are
// exported, not dropped with the group. The loop waits an hour between reads here, so the
// burst after the first event is still queued at Close.
func TestExportStopAppendsQueued(t *testing.T) {
	etc := exportDir(t)
	holdExportLoop(t)
	url, exp, s := startExportServer(t, "export close_write "+etc+"/**\n")
	write := func(i int) { os.WriteFile(filepath.Join(etc, fmt.Sprintf("f%d", i)), []byte("x"), 0o644) }
	write(0)
	for deadline := time.Now().Add(10 * time.Second); s.export.events.Load() < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the first event was not exported at once")
		}
		time.Sleep(5 * time.Millisecond)
	}
	const burst = 500
	for i := 1; i <= burst; i++ {
		write(i)
	}
	for deadline := time.Now().Add(10 * time.Second); s.export.g.Stats().Delivered < burst+1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d events reached the export group, want %d", s.export.g.Stats().Delivered, burst+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := s.export.events.Load(); n != 1 {
		t.Fatalf("%d events exported before Close, want 1 (the loop should be waiting)", n)
	}
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if unsent := exp.Close(ctx); unsent != 0 {
		t.Fatalf("%d records unsent", unsent)
	}
	if n := s.export.events.Load(); n != burst+1 {
		t.Fatalf("%d events exported, want %d", n, burst+1)
	}
	sets, _ := eventSets(t, url, burst+1)
	for i := 0; i <= burst; i++ {
		if p := filepath.Join(etc, fmt.Sprintf("f%d", i)); !sets[p]["CLOSE_WRITE"] {
			t.Errorf("%s: no record", p)
		}
	}
}

// TestExportOverflowInABatchKeepsItsPlace: an overflow read in the middle of a batch is a gap
// record between the events queued before and after it, not after the batch's records. The
// loop waits an hour between reads here, so b, the overflow and c are read in one batch (by
// the stop's drain).
func TestExportOverflowInABatchKeepsItsPlace(t *testing.T) {
	etc := exportDir(t)
	holdExportLoop(t)
	url, exp, s := startExportServer(t, "export close_write "+etc+"/**\n")
	g := s.export.g
	write := func(name string, queued uint64) {
		os.WriteFile(filepath.Join(etc, name), []byte("x"), 0o644)
		for deadline := time.Now().Add(10 * time.Second); g.Stats().Delivered < queued; {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not reach the export group", name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	write("a", 1)
	for deadline := time.Now().Add(10 * time.Second); s.export.events.Load() < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the first event was not exported at once")
		}
		time.Sleep(5 * time.Millisecond)
	}
	write("b", 2)
	g.Overflow()
	write("c", 3)
	if n := s.export.events.Load(); n != 1 {
		t.Fatalf("%d events exported before Close, want 1 (the loop should be waiting)", n)
	}
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if unsent := exp.Close(ctx); unsent != 0 {
		t.Fatalf("%d records unsent", unsent)
	}
	got := tailStrings(t, url, 4, func(m map[string]any) string {
		p, _ := m["path"].(string)
		return fmt.Sprintf("%v:%v:%s", m["seq"], m["kind"], strings.TrimPrefix(p, etc+"/")) + fmt.Sprint(m["reason"])
	})
	want := "[1:event:a<nil> 2:event:b<nil> 3:gap:overflow 4:event:c<nil>]"
	if fmt.Sprint(got) != want {
		t.Fatalf("records %v, want %s", got, want)
	}
}

// TestExportReadsOnWhileEventsWait: a read that fills the loop's buffer is followed by
// another at once, not after the interval: else a flood of more than a buffer's worth per
// interval would overflow the group while the loop sleeps. The loop is held before its first
// read until 1,000 events wait, with an interval of an hour: all must be exported.
func TestExportReadsOnWhileEventsWait(t *testing.T) {
	etc := exportDir(t)
	holdExportLoop(t)
	url := testnats.URL(t)
	release := make(chan struct{})
	exportReadGate = func() { <-release }
	defer func() { exportReadGate = nil }()
	exp, err := fleet.NewExporter(fleet.ExporterConfig{Conn: fleet.ConnOptions{URLs: url}, Host: "h1", SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("test.conf", strings.NewReader("export close_write "+etc+"/**\n"))
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	s, err := New(Options{Config: cfg, Export: exp})
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	const n = 1000
	for i := 0; i < n; i++ {
		os.WriteFile(filepath.Join(etc, fmt.Sprintf("f%d", i)), []byte("x"), 0o644)
	}
	for deadline := time.Now().Add(10 * time.Second); s.export.g.Stats().Delivered < n; {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("%d events reached the export group, want %d", s.export.g.Stats().Delivered, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for s.export.events.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := s.export.events.Load() // before Close, whose drain would append the rest anyway
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exp.Close(ctx)
	if got != n {
		t.Fatalf("%d events exported while the loop ran, want %d (it slept after a full read)", got, n)
	}
}

// TestExportNextInterval: the wait between reads doubles after each read of fewer than
// exportSmallRead records, up to the maximum; it is the base again after a large read, and
// starts over from the base after a quiet spell; it is never below the base (the tests' hour).
func TestExportNextInterval(t *testing.T) {
	ms := time.Millisecond
	x := &exporter{interval: 5 * ms, maxInterval: 50 * ms}
	hold := &exporter{interval: time.Hour, maxInterval: 50 * ms}
	for _, c := range []struct {
		name       string
		x          *exporter
		cur, since time.Duration
		records    int
		want       time.Duration
	}{
		{"small read doubles", x, 5 * ms, 5 * ms, 1, 10 * ms},
		{"no record doubles", x, 10 * ms, 10 * ms, 0, 20 * ms},
		{"up to the maximum", x, 40 * ms, 41 * ms, exportSmallRead - 1, 50 * ms},
		{"stays at the maximum", x, 50 * ms, 50 * ms, 1, 50 * ms},
		{"large read: the base", x, 50 * ms, 50 * ms, exportSmallRead, 5 * ms},
		{"full read: the base", x, 20 * ms, 20 * ms, 256, 5 * ms},
		{"quiet spell: from the base", x, 50 * ms, 101 * ms, 1, 10 * ms},
		{"a late read is no quiet spell", x, 20 * ms, 40 * ms, 1, 40 * ms},
		{"first read (since the zero time)", x, 5 * ms, 1<<63 - 1, 1, 10 * ms},
		{"never below the base", hold, time.Hour, time.Hour, 1, time.Hour},
		{"never below the base, large", hold, time.Hour, time.Hour, 100, time.Hour},
	} {
		if got := c.x.nextInterval(c.cur, c.since, c.records); got != c.want {
			t.Errorf("%s: nextInterval(%v, %v, %d) = %v, want %v", c.name, c.cur, c.since, c.records, got, c.want)
		}
	}
}

// TestExportRepeatsGrowTheInterval: one file opened over and over for 600 ms (one record per
// read: its opens merge in the group) is read ever less often, up to once per
// exportMaxInterval: at most about 600/50 records plus the doubling's first few, where reads
// every 5 ms would give about 120. Every record is that file's, with OPEN, and seqs have no
// gap (eventSets).
func TestExportRepeatsGrowTheInterval(t *testing.T) {
	etc := exportDir(t)
	hot := filepath.Join(etc, "hot")
	os.WriteFile(hot, nil, 0o644)
	url, exp, s := startExportServer(t, "export open "+etc+"/**\n")
	opens := 0
	for start := time.Now(); time.Since(start) < 600*time.Millisecond; opens++ {
		f, err := os.Open(hot)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if unsent := exp.Close(ctx); unsent != 0 {
		t.Fatalf("%d records unsent", unsent)
	}
	n := int(s.export.events.Load())
	// 5+10+20+40 ms, then one per 50 ms: 15 reads, and room for a few quiet spells (the opener
	// descheduled on a shared machine) that start the doubling over.
	if n < 1 || n > 30 {
		t.Fatalf("%d records for %d opens of one file in 600 ms, want 1..30", n, opens)
	}
	sets, counts := eventSets(t, url, n)
	if len(sets) != 1 || !sets[hot]["OPEN"] || counts[hot] != n {
		t.Fatalf("records %v (counts %v), want %d of %s with OPEN", sets, counts, n, hot)
	}
	t.Logf("%d records for %d opens", n, opens)
}

// exportDir makes the etc directory of a fresh tmpfs, where an export test's files go.
// Needs root.
func exportDir(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	etc := filepath.Join(testenv.Tmpfs(t), "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	return etc
}

// holdExportLoop makes the export loop wait an hour between reads for the rest of the test,
// so that events stay queued in its group until something drains it (a stop).
func holdExportLoop(t *testing.T) {
	old := exportInterval
	t.Cleanup(func() { exportInterval = old })
	exportInterval = time.Hour
}

// startExportServer starts a daemon with the configuration conf (its export lines),
// exporting to a real in-process nats-server; it returns the server's URL, the exporter and
// the daemon.
func startExportServer(t *testing.T, conf string) (string, *fleet.Exporter, *Server) {
	t.Helper()
	url := testnats.URL(t)
	exp, err := fleet.NewExporter(fleet.ExporterConfig{Conn: fleet.ConnOptions{URLs: url}, Host: "h1", SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("test.conf", strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Config: cfg, Export: exp})
	if err != nil {
		t.Fatal(err)
	}
	return url, exp, s
}

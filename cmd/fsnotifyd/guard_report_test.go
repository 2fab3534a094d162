package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"

	"github.com/fsnotifyd/fsnotifyd/notify"
)

// TestDecisionIsKeptOrQueuedUntilReported: the shutdown flush (runGuard) waits for the
// decisions still in outcomes, then for the reporter's queue, so while decided runs a decision
// must always be in one or the other. It used to leave outcomes before its report was queued;
// a guard stopped in that window closed its connection under the report.
func TestDecisionIsKeptOrQueuedUntilReported(t *testing.T) {
	// No run goroutine: what is queued stays pending, as for a reporter still sending.
	rep := &reporter{ch: make(chan auditRecord, 1<<14), done: make(chan struct{})}
	g := &guardRun{report: true, reporter: rep}
	const decisions = 5000
	for i := range decisions {
		r := &notify.Request{}
		before := rep.pending.Load()
		g.keep(r, &outcome{source: "rule 1", deny: true})
		done := make(chan struct{})
		go func() {
			defer close(done)
			g.decided(notify.Decision{Request: r, Verdict: notify.Deny, By: "inline"})
		}()
		for running := true; running; {
			select {
			case <-done:
				running = false
			default:
			}
			if _, kept := g.outcomes.Load(r); !kept && rep.pending.Load() == before {
				t.Fatalf("decision %d: neither kept in outcomes nor queued for the reporter", i)
			}
		}
		if got := rep.pending.Load(); got != before+1 {
			t.Fatalf("decision %d: %d reports pending, want %d", i, got, before+1)
		}
	}
}

// TestReporterSaysDropsAndCarriesTheCount: any user's flood of decisions can outrun the
// daemon's socket, and the reporter's queue drops reports (they never reach the daemon, so no
// seq and no gap record names them). The first drop of a burst is said on stderr (once, not
// per report), and the next report sent carries the count ("reports_dropped"), so the fleet's
// readers see the hole in its place in the order; after a report is sent, a new burst is said
// again. An audit line never has the field. Before, the drops were said only at the guard's
// exit and nothing in the stream showed them.
func TestReporterSaysDropsAndCarriesTheCount(t *testing.T) {
	var say bytes.Buffer
	// No run goroutine: the test takes the queue's records as run would.
	rep := &reporter{say: &say, ch: make(chan auditRecord, 4), done: make(chan struct{})}
	burst := func(n int) {
		for i := range n {
			rep.report(&auditRecord{Decision: fsevent.Decision{Path: fmt.Sprintf("/f%d", i), Verdict: "deny"}})
		}
	}
	next := func() map[string]any {
		t.Helper()
		rec := <-rep.ch
		b, err := rep.marshal(&rec)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	burst(10) // 4 queued, 6 dropped
	if n := strings.Count(say.String(), "decision reports are dropped"); n != 1 {
		t.Errorf("a burst of 6 drops said %d times on stderr, want once:\n%s", n, say.String())
	}
	if m := next(); m["reports_dropped"] != float64(6) {
		t.Errorf("the first report after 6 drops: reports_dropped %v, want 6", m["reports_dropped"])
	}
	if m := next(); m["reports_dropped"] != nil {
		t.Errorf("the second report: reports_dropped %v, want none", m["reports_dropped"])
	}
	burst(10) // 2 queued (behind the first burst's 2), 8 dropped
	if n := strings.Count(say.String(), "decision reports are dropped"); n != 2 {
		t.Errorf("a second burst after a report was sent: said %d times in all, want 2", n)
	}
	// The count goes with the next report sent, whichever it is.
	if m := next(); m["reports_dropped"] != float64(8) {
		t.Errorf("the first report sent after the second burst: reports_dropped %v, want 8", m["reports_dropped"])
	}
	for range 3 {
		if m := next(); m["reports_dropped"] != nil {
			t.Errorf("a later report: reports_dropped %v, want none", m["reports_dropped"])
		}
	}
	if b, _ := json.Marshal(auditRecord{}); strings.Contains(string(b), "reports_dropped") {
		t.Errorf("an audit line has reports_dropped: %s", b)
	}
}

// TestFleetTailShowsReportsDropped: a decision record that carries reports_dropped (the
// guard's queue dropped reports before it) says so in fleet tail's text line, and also when
// --path filters it out (the line is then the loss alone), so the hole is not hidden.
func TestFleetTailShowsReportsDropped(t *testing.T) {
	data := `{"host":"web-1","boot_id":"b","seq":7,"kind":"decision","path":"/srv/a","pid":42,"comm":"cat","event":"open","verdict":"deny","reports_dropped":6}`
	r := &fleet.Received{StreamSeq: 1, Subject: "fsnotifyd.decisions.web-1", Data: []byte(data)}
	h, err := fleet.CheckHeader(r.Subject, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := "*** LOST 6 decision reports: the guard dropped them before this record (its queue was full) ***"
	if line, ok := tailLine(nil, r, &h, false, nil); !ok || !strings.Contains(string(line), want) || !strings.Contains(string(line), "DENY open /srv/a") {
		t.Errorf("fleet tail printed %q, want the decision and %q", line, want)
	}
	other, _ := policy.CompileGlob("/other/**")
	if line, ok := tailLine(nil, r, &h, false, other); !ok || !strings.Contains(string(line), want) || strings.Contains(string(line), "/srv/a") {
		t.Errorf("fleet tail --path /other/** printed %q (shown %v), want the loss alone", line, ok)
	}
}

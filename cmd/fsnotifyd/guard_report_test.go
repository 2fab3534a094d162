package main

import (
	"testing"

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

//go:build linux

package notify

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestWatcherNoGapBeforeTheOverflow: lost events are reported, in their place. 2,000 files
// are created with nobody reading (queues of 64 events: the engine group's, the daemon's and
// the client's), then the Watcher is read. Counted exactly: each file's Create at most once
// and in creation order, and none missing before the first Overflow — a file missing with no
// Overflow before it is a silent loss. (An Overflow may come before some events still held
// when the drop happened — the daemon's client delivers it ahead of those — so only the
// first missing file is placed: after an Overflow.) Then the stream goes on: a file made
// afterwards is reported.
func TestWatcherNoGapBeforeTheOverflow(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher(WithQueueLimit(64))
		must(t, w.AddWith(e.dir, WithOps(Create)))
		const n = 2000
		for i := range n {
			f, err := os.Create(e.path(fmt.Sprintf("f%04d", i)))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		next, overflows, reported := 0, 0, 0
		var trail []string // the stream, for a failure's message
		for i := 0; ; i++ {
			end := e.path(fmt.Sprintf("end%d", i))
			must(t, os.WriteFile(end, nil, 0o644))
			// The sentinel may be lost too (a backlog overflows the small queues again): up to
			// an Overflow, then another sentinel.
			evs := until(t, w, func(ev Event) bool { return ev.Name == end || ev.Op == Overflow })
			for _, ev := range evs {
				trail = append(trail, ev.String())
				if ev.Op == Overflow {
					overflows++
					continue
				}
				var k int
				base := strings.TrimPrefix(ev.Name, e.dir+"/")
				if _, err := fmt.Sscanf(base, "f%04d", &k); err != nil || len(base) != 5 {
					continue // a sentinel
				}
				if k < next {
					t.Fatalf("f%04d reported again or out of order (after f%04d):\n%s", k, next-1, tail(trail))
				}
				if k > next && overflows == 0 {
					t.Fatalf("f%04d..f%04d missing, and no Overflow before them:\n%s", next, k-1, tail(trail))
				}
				next, reported = k+1, reported+1
			}
			if evs[len(evs)-1].Name == end {
				break // the stream goes on
			}
		}
		if reported < n && overflows == 0 {
			t.Fatalf("%d of %d files reported, no Overflow:\n%s", reported, n, tail(trail))
		}
		t.Logf("%d of %d files reported, %d overflows", reported, n, overflows)
	})
}

func tail(s []string) string {
	if len(s) > 40 {
		s = s[len(s)-40:]
	}
	return strings.Join(s, "\n")
}

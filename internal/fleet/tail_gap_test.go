package fleet

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// The stream drops records a reader has not read yet: its own limits (max_msgs, max_bytes,
// max_age with discard old) while the reader is behind or stopped, or an admin's purge.
// The reader must say which stream sequences it missed and how many, never show a
// continuous stream: every stream sequence up to the last is either a record read or inside
// a Missed range, once, and every missed one is gone from the stream.
func TestTailSaysWhatTheStreamDroppedBeforeItWasRead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		durable string
		maxMsgs int64 // the stream's max_msgs (discard old); 0: none, an admin purges instead
		more    int   // records written while the reader is behind or stopped
	}{
		// The ordered consumer buffers up to 1000 records client-side: be behind by more.
		{"ordered/max_msgs", "", 10, 3000},
		{"ordered/purge", "", 0, 3000},
		{"durable/max_msgs", "siem", 10, 300},
		{"durable/purge", "siem", 0, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := startNATS(t)
			_, js := ns.connect(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			sc := StreamConfig{}.jetstream()
			if tc.maxMsgs > 0 {
				sc.MaxMsgs = tc.maxMsgs
			}
			if _, err := js.CreateStream(ctx, sc); err != nil {
				t.Fatal(err)
			}
			subj := Subject(Event, "web-1")
			publish := func(n int) {
				t.Helper()
				for i := 0; i < n; i++ {
					if _, err := js.PublishAsync(subj, []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
						t.Fatal(err)
					}
				}
				select {
				case <-js.PublishAsyncComplete():
				case <-ctx.Done():
					t.Fatal("publishing: no acks")
				}
			}
			var mu sync.Mutex
			read := map[uint64]int{}
			var missed []Missed
			record := func(r *Received) {
				mu.Lock()
				defer mu.Unlock()
				if r.Missed != nil {
					missed = append(missed, *r.Missed)
				} else {
					read[r.StreamSeq]++
				}
			}
			count := func() int { mu.Lock(); defer mu.Unlock(); return len(read) }
			const first = 5
			publish(first)
			drop := func() {
				publish(tc.more)
				if tc.maxMsgs == 0 {
					s, err := js.Stream(ctx, DefaultStream)
					if err == nil {
						err = s.Purge(ctx)
					}
					if err != nil {
						t.Fatal(err)
					}
					publish(3)
				}
			}
			o := TailOptions{StartSeq: 1, Durable: tc.durable}
			if tc.durable != "" {
				// Read the first records, stop; the stream drops records; resume.
				if err := Tail(ctx, js, o, func(r *Received) error {
					record(r)
					if r.StreamSeq == first {
						return ErrStopTail
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				drop()
			}
			s, _ := js.Stream(ctx, DefaultStream)
			info, _ := s.Info(ctx)
			lastSeq := info.State.LastSeq
			if tc.durable == "" {
				lastSeq += uint64(tc.more)
				if tc.maxMsgs == 0 {
					lastSeq += 3
				}
			}
			release := make(chan struct{})
			tctx, tcancel := context.WithCancel(ctx)
			defer tcancel()
			done := make(chan error, 1)
			go func() {
				done <- Tail(tctx, js, o, func(r *Received) error {
					if r.StreamSeq == 1 && r.Missed == nil {
						<-release // behind: the stream goes on without this reader
					}
					record(r)
					if r.Missed == nil && r.StreamSeq == lastSeq {
						return ErrStopTail
					}
					return nil
				})
			}()
			if tc.durable == "" {
				waitFor(t, 10*time.Second, "the reader at its first record", func() bool { return true })
				time.Sleep(200 * time.Millisecond)
				drop()
			}
			close(release)
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the reader did not reach stream sequence %d in 30s (read %d records, missed %v)", lastSeq, count(), missed)
			}
			info, _ = s.Info(ctx)
			mu.Lock()
			defer mu.Unlock()
			seen := map[uint64]int{}
			for q, n := range read {
				seen[q] += n
			}
			var nMissed uint64
			for _, m := range missed {
				if m.First == 0 || m.Last < m.First || m.Count != m.Last-m.First+1 {
					t.Errorf("missed %+v: not a range and its count", m)
					continue
				}
				nMissed += m.Count
				for q := m.First; q <= m.Last; q++ {
					seen[q]++
					if q >= info.State.FirstSeq {
						t.Errorf("missed %+v names stream sequence %d, which the stream still holds (first %d)", m, q, info.State.FirstSeq)
					}
				}
			}
			if len(missed) == 0 {
				t.Errorf("the stream dropped records this reader never read (its first sequence now %d, the reader stopped at %d), and the reader said nothing: it read %d records of %d, as if the stream were continuous", info.State.FirstSeq, first, len(read), lastSeq)
			}
			for q := uint64(1); q <= lastSeq; q++ {
				if seen[q] != 1 {
					t.Errorf("stream sequence %d: read or named missed %d times, want once (missed: %v)", q, seen[q], missed)
					break
				}
			}
			t.Logf("read %d, missed %d in %v", len(read), nMissed, missed)
		})
	}
}

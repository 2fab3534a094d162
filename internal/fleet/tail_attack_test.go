package fleet

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// The stream is deleted (an admin's mistake, or a host allowed to) and made anew while a
// reader follows it: the new stream's sequence numbers start again at 1. A reader either goes
// on with the new stream's records or stops saying why; it never waits silently for the old
// stream's sequence numbers to come round again (with an ordered consumer, nats.go resumes
// at the last stream sequence it saw plus one, which the new stream reaches only after as
// many records).
func TestTailStreamDeletedAndMadeAnew(t *testing.T) {
	for _, durable := range []string{"", "siem"} {
		name := "ordered"
		if durable != "" {
			name = "durable"
		}
		t.Run(name, func(t *testing.T) {
			ns := startNATS(t)
			_, js := ns.connect(t)
			e, _ := newTestExporter(t, ns, "h1", t.TempDir(), nil)
			defer closeExporter(t, e)
			const n = 200
			for i := 0; i < n; i++ {
				e.Append(Event, payload(i))
			}
			waitFor(t, 10*time.Second, "the first records acked", func() bool { return e.Stats().AckedThrough == n })
			var mu sync.Mutex
			var got []int
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- Tail(ctx, js, TailOptions{StartSeq: 1, Durable: durable}, func(r *Received) error {
					mu.Lock()
					got = append(got, payloadIndex(t, r.Data))
					mu.Unlock()
					return nil
				})
			}()
			count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
			waitFor(t, 10*time.Second, "the first records read", func() bool { return count() == n })

			if err := js.DeleteStream(context.Background(), DefaultStream); err != nil {
				t.Fatal(err)
			}
			for i := n; i < n+5; i++ {
				e.Append(Event, payload(i))
			}
			waitFor(t, 20*time.Second, "the exporter making the stream anew and sending", func() bool { return e.Stats().AckedThrough == n+5 })
			deadline := time.Now().Add(15 * time.Second)
			for count() < n+5 {
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), DefaultStream) || !strings.Contains(err.Error(), "deleted") {
						t.Fatalf("Tail ended with %v: want the new records or an error saying the stream was deleted", err)
					}
					t.Logf("Tail stopped: %v", err)
					return
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the stream was made anew, Tail neither read its %d records nor stopped (read %d in all)", 5, count()-n)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

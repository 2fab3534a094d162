package engine

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// TestOverflowMarksEachGap: a reader that resumes while its queue's overflow is still queued
// and lets the queue fill again meets the second gap with an overflow of its own in place,
// never a silent one; a loss right behind an overflow (nothing queued after it) adds none.
// Events are named by Pid (distinct: none merges).
func TestOverflowMarksEachGap(t *testing.T) {
	for _, last := range []bool{false, true} {
		t.Run(fmt.Sprintf("MergeLast=%v", last), func(t *testing.T) {
			ctx := context.Background()
			e := New(Config{})
			g := newGroup(t, e, Options{QueueLimit: 4, MergeLast: last})
			mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open})
			notify := func(pids ...int32) {
				for _, p := range pids {
					ev := fileEvent(Open)
					ev.Pid = p
					e.Notify(ctx, ev)
					ev.Release()
				}
			}
			// read reads n events (n < 0: all there are), each as its Pid, -1 for an overflow.
			read := func(n int) (got []int32) {
				for i := 0; i != n; i++ {
					d, err := g.TryRead()
					if err != nil {
						if n < 0 {
							return got
						}
						t.Fatalf("read %d of %d: %v", i, n, err)
					}
					if d.Event == nil {
						got = append(got, -1)
					} else {
						got = append(got, d.Event.Pid)
					}
					d.Release()
				}
				return got
			}
			notify(1, 2, 3, 4, 5, 6) // 5 and 6 lost: one overflow behind 4
			got := read(2)           // 1, 2: the overflow is still queued
			notify(7, 8, 9)          // 7 fits (3 live entries: 3, 4, the overflow), 8 and 9 lost
			got = append(got, read(5)...)
			notify(10) // room again
			got = append(got, read(1)...)
			want := []int32{1, 2, 3, 4, -1, 7, -1, 10}
			if !slices.Equal(got, want) {
				t.Errorf("read %v, want %v (-1: overflow)", got, want)
			}
			st := g.Stats()
			if st.Dropped != 4 || st.Overflows != 2 || st.Queued != 0 {
				t.Errorf("stats: dropped %d, overflows %d, queued %d; want 4, 2, 0", st.Dropped, st.Overflows, st.Queued)
			}
			// A source's overflow behind a queue's: none more while it is the newest entry.
			notify(11, 12, 13, 14, 15)
			g.Overflow()
			notify(16)
			g.Overflow()
			got = read(-1)
			if want := []int32{11, 12, 13, 14, -1}; !slices.Equal(got, want) {
				t.Errorf("read %v, want %v", got, want)
			}
		})
	}
}

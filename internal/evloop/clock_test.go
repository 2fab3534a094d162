//go:build linux

package evloop

import (
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/schedtick"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// The loop's yield check takes the clock a callback read (AwakeAt) instead of its own: clock
// readings a callback reports yieldEvery apart make the loop yield once per callback however
// little time really passes, and readings that stand still make it yield no more however much
// time passes. (A loop that read its own clock would yield in neither or both cases.)
func TestAwakeAtClockDrivesYields(t *testing.T) {
	for _, tc := range []struct {
		name      string
		step      time.Duration // between the clock readings the callback reports
		pause     time.Duration // really waited between events
		minYields uint64
		maxYields uint64
	}{
		{"readings apart, no time", 2 * yieldEvery, 0, 18, 21},
		{"readings still, time passes", 0, yieldEvery + 2*time.Millisecond, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLoop(t)
			r, w := testenv.SocketPair(t)
			fake := schedtick.Now() + time.Hour // ahead of the real clock: never confused with it
			done := make(chan struct{}, 1)
			reg, err := l.Register(r, func() {
				var buf [8]byte
				if n, _ := syscall.Read(r, buf[:]); n <= 0 {
					return
				}
				fake += tc.step // the loop's own: no lock
				l.AwakeAt(fake)
				done <- struct{}{}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Unregister()
			// A first event, so that the loop has taken a reported reading: the yields are
			// counted from after the first check against it.
			syscall.Write(w, []byte("x"))
			<-done
			time.Sleep(10 * time.Millisecond) // the loop goes round, and waits
			before := l.yields.Load()
			for range 20 {
				if tc.pause > 0 {
					time.Sleep(tc.pause)
				}
				syscall.Write(w, []byte("x"))
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("the callback did not run")
				}
			}
			time.Sleep(10 * time.Millisecond)
			if got := l.yields.Load() - before; got < tc.minYields || got > tc.maxYields {
				t.Errorf("%d yields over 20 events, want %d-%d", got, tc.minYields, tc.maxYields)
			}
		})
	}
}

// Work posted by many goroutines at once, while the loop sleeps, wakes or runs (it looks at
// its queues without its lock when they are empty: queued), all runs, on the loop, each
// poster's in its order.
func TestPostFromManyGoroutinesNoneLost(t *testing.T) {
	l := newLoop(t)
	const posters, each = 8, 2000
	var ran, off atomic.Int64
	last := make([]int, posters) // the loop's only
	var bad atomic.Int64
	var wg sync.WaitGroup
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				l.Post(func() {
					if !l.OnLoop() {
						off.Add(1)
					}
					if last[p] != i {
						bad.Add(1)
					}
					last[p] = i + 1
					ran.Add(1)
				})
				if i%64 == 0 {
					time.Sleep(50 * time.Microsecond) // let the loop fall asleep now and then
				}
			}
		}()
	}
	wg.Wait()
	for end := time.Now().Add(10 * time.Second); ran.Load() < posters*each && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if got := ran.Load(); got != posters*each {
		t.Fatalf("%d of %d posted functions ran", got, posters*each)
	}
	if off.Load() != 0 || bad.Load() != 0 {
		t.Errorf("%d ran off the loop, %d out of their poster's order", off.Load(), bad.Load())
	}
}

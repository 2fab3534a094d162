//go:build linux

package evloop

import (
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/schedtick"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// batchTime keeps BenchmarkBlockingRound's batch time from being optimised away.
var batchTime time.Time

// BenchmarkBlockingRound is the loop's own part of a blocking-mode round, the embedded
// guard's per-batch path: one registration alone on the loop, whose callback stands for the
// blocking read (it reads nothing, and calls AwakeAt with a clock reading as the FD group's
// does), round after round. It reports the loop thread's CPU time per round (cpu-ns/op,
// CLOCK_THREAD_CPUTIME_ID, which waiting for a CPU does not move) beside ns/op.
func BenchmarkBlockingRound(bm *testing.B) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		bm.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	fd := p[0] // never read: the callback stands for the read
	l := New("bench")
	defer l.Close()
	n := bm.N
	// The thread CPU time is read every segment rounds and counted only for segments that
	// ran on one thread (the loop's yield may move it to another).
	const segment = 1024
	var i, lastI, lastTid, counted int
	var last, cpu time.Duration
	done := make(chan struct{})
	base := time.Now()
	baseMono := schedtick.Mono(base)
	_, err := l.RegisterBlocking(fd, func() {
		if !l.Blocking() {
			return // the first call may come before the mode is set
		}
		// As the FD group's batch clock: one monotonic reading, for the batch's time (a
		// time.Time: its last full reading plus the time since) and the loop's yield check.
		now := schedtick.Now()
		batchTime = base.Add(now - baseMono)
		l.AwakeAt(now)
		if i%segment == 0 || i == n-1 {
			now, tid := sys.ThreadCPUTime(), syscall.Gettid()
			if i > 0 && tid == lastTid {
				cpu += now - last
				counted += i - lastI
			}
			last, lastTid, lastI = now, tid, i
		}
		if i++; i == n {
			close(done)
			l.Close() // on the loop: it ends after this callback
		}
	}, Blocking{SetBlocking: func(bool) error { return nil }, Wake: func() {}})
	if err != nil {
		bm.Fatal(err)
	}
	bm.ResetTimer()
	<-done
	bm.StopTimer()
	if counted > 0 {
		bm.ReportMetric(float64(cpu.Nanoseconds())/float64(counted), "cpu-ns/op")
	}
}

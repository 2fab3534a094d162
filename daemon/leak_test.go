//go:build linux

package daemon_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestChurnLeaksNothing: 1,000 clients (100 with -short) connect to the daemon and leave —
// permission clients that answer some events and leave others pending, notification clients,
// raw connections that hang up without Bye, before or right after their Hello — while a load
// opens and creates files in the directory they all mark. Afterwards the daemon (this
// process) has as many goroutines and descriptors as before, and its heap after GC has not
// grown by more than 2 KiB per client. The figures are logged.
func TestChurnLeaksNothing(t *testing.T) {
	testenv.RequireRoot(t)
	n := 1000
	if testing.Short() {
		n = 100
	}
	dir, file, sock := loadFiles(t)
	d := startDaemon(t, testConfig(), sock)

	phase := func(n int) (opens int64, maxOp time.Duration, took time.Duration) {
		t.Helper()
		load := spawn(t, "load", spawnOpts{env: []string{"FSND_PATH=" + file}})
		load.mustLine("lat ", hang)
		start := time.Now()
		churn := spawn(t, "churn", spawnOpts{env: []string{"FSND_SOCKET=" + sock, "FSND_DIR=" + dir,
			fmt.Sprintf("FSND_N=%d", n), "FSND_CONC=16"}})
		l := churn.mustLine("churn-done", 5*time.Minute)
		took = time.Since(start)
		if !strings.HasSuffix(l, fmt.Sprintf("ok=%d err=0", n)) {
			t.Errorf("churn: %s%s", l, churn.tail())
		}
		if !churn.exited(hang) {
			t.Fatalf("churn helper did not exit")
		}
		// The load kept going: no open waited for a client that had left.
		for _, l := range load.allLines("lat ") {
			var c, m, cur int64
			fmt.Sscanf(l, "lat count=%d max=%d cur=%d", &c, &m, &cur)
			opens = max(opens, c)
			maxOp = max(maxOp, time.Duration(m), time.Duration(cur))
		}
		load.kill()
		if !eventually(hang, func() bool { return d.srv.Stats(false, 0).Daemon.Clients == 0 }) {
			t.Fatalf("the daemon still has %d clients after they all left", d.srv.Stats(false, 0).Daemon.Clients)
		}
		return opens, maxOp, took
	}

	// Warm up: the backend starts its kernel groups and caches on first use.
	phase(40)
	settle := func() (g, fds int, heap uint64) {
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine(), testenv.OpenFDs(t), heapAfterGC()
	}
	g0, fd0, h0 := settle()

	opens, maxOp, took := phase(n)

	var g1, fd1 int
	var h1 uint64
	eventually(hang, func() bool {
		g1, fd1, h1 = settle()
		return g1 <= g0 && fd1 <= fd0
	})
	st := d.srv.Stats(false, 0).Daemon
	t.Logf("%d clients in %v (%d of the load's opens and creates meanwhile, the slowest %v); daemon totals: %d events (%d permission), %d delivered, %d close verdicts, %d deadline verdicts",
		n, took.Round(time.Millisecond), opens, maxOp.Round(time.Microsecond), st.Events, st.PermissionEvents, st.Delivered, st.CloseAnswered, st.DeadlineExpired)
	t.Logf("before → after: goroutines %d → %d, fds %d → %d, heap after GC %d → %d bytes (%+d)",
		g0, g1, fd0, fd1, h0, h1, int64(h1)-int64(h0))
	if g1 > g0 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after\n%s", g0, g1, buf[:runtime.Stack(buf, true)])
	}
	if fd1 > fd0 {
		ents, _ := os.ReadDir("/proc/self/fd")
		kinds := map[string]int{}
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			if i := strings.IndexByte(l, ':'); i > 0 && !strings.HasPrefix(l, "/") {
				l = l[:i]
			}
			kinds[l]++
		}
		t.Errorf("descriptors: %d before, %d after; now open: %v", fd0, fd1, kinds)
	}
	if grow := int64(h1) - int64(h0); grow > int64(n)*2048 {
		t.Errorf("heap after GC grew by %d bytes over %d clients", grow, n)
	}
	if maxOp > 900*time.Millisecond {
		// The permission clients have a 1 s deadline: an open that took that long waited for a
		// client that was gone or never answered.
		t.Errorf("an open of the load took %v", maxOp)
	}
}

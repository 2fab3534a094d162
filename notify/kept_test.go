//go:build linux

package notify

import (
	"context"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestRequestFileAfterAnswerIsNil: a Handler, Inline or OnDecision that keeps its *Request and
// calls File once the decision is over gets nil — never a file this process opened since under
// the number of the event's descriptor, which was closed after the answer and is the next one
// an open(2) gets. Embedded and through the daemon (whose descriptor the client received).
func TestRequestFileAfterAnswerIsNil(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		for _, by := range []string{"handler", "inline"} {
			t.Run(by, func(t *testing.T) {
				dir := testenv.Tmpfs(t)
				if err := os.WriteFile(dir+"/guarded", []byte("guarded"), 0o644); err != nil {
					t.Fatal(err)
				}
				decoy := t.TempDir() + "/decoy" // not guarded
				if err := os.WriteFile(decoy, []byte("decoy"), 0o644); err != nil {
					t.Fatal(err)
				}
				kept := make(chan *Request, 1)
				keep := func(r *Request) Verdict {
					if strings.HasSuffix(r.Path(), "/guarded") {
						select {
						case kept <- r:
						default:
						}
					}
					return Allow
				}
				cfg := GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 10 * time.Second}
				var h Handler
				if by == "inline" {
					cfg.Inline = func(r *Request) (Verdict, bool) { return keep(r), true }
				} else {
					h = func(_ context.Context, r *Request) Verdict { return keep(r) }
				}
				g, err := NewGuard(cfg, h)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				if out, err := catFile(dir+"/guarded", nil); err != nil || out != "guarded" {
					t.Fatalf("cat: %v %q", err, out)
				}
				var r *Request
				select {
				case r = <-kept:
				case <-time.After(10 * time.Second):
					t.Fatal("no request for the guarded file")
				}
				// Opens of the decoy take the lowest free numbers: the event's once it is closed.
				var decoys []*os.File
				defer func() {
					for _, d := range decoys {
						d.Close()
					}
				}()
				// The answer goes out a moment after the handler returns; what File gives then
				// is watched for 300 ms, while 64 decoys take the numbers freed.
				for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
					if len(decoys) < 64 {
						d, err := os.Open(decoy)
						if err != nil {
							t.Fatal(err)
						}
						decoys = append(decoys, d)
					}
					if f := r.File(); f != nil {
						b, _ := io.ReadAll(io.NewSectionReader(f, 0, 64))
						f.Close()
						if string(b) != "guarded" {
							t.Fatalf("File of a Request kept past its answer reads %q, another file opened since under the event's descriptor number; want nil", b)
						}
					}
				}
				if f := r.File(); f != nil {
					f.Close()
					t.Fatal("File of a Request kept past its answer gives a file 300 ms after the answer; want nil")
				}
			})
		}
	})
}

// TestFileGateWaitsForFilesAtWork: once settle's close of the gate has returned, no File is
// at work with the event's descriptor and none starts — however many goroutines (a handler's,
// kept Requests') call it meanwhile.
func TestFileGateWaitsForFilesAtWork(t *testing.T) {
	for range 200 {
		var (
			g        fileGate
			released atomic.Bool // the descriptor is gone
			misuse   atomic.Int32
			wg       sync.WaitGroup
		)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 100 {
					if g.enter() {
						if released.Load() {
							misuse.Add(1)
						}
						runtime.Gosched()
						if released.Load() {
							misuse.Add(1)
						}
						g.leave()
					}
				}
			}()
		}
		runtime.Gosched()
		g.close()
		released.Store(true)
		wg.Wait()
		if n := misuse.Load(); n != 0 {
			t.Fatalf("%d uses of the descriptor after the gate closed", n)
		}
		if g.enter() {
			t.Fatal("the gate let a File in after it closed")
		}
	}
}

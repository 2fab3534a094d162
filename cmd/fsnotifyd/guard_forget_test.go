//go:build linux

package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// The guard's forgetter drops a file's cached digests when the file is closed after being
// opened for writing, even when nothing changed its size or times (which the cache key alone
// would not notice), and only that file's.
func TestGuardForgetsWrittenFiles(t *testing.T) {
	mnt := testenv.Tmpfs(t)
	b, err := backend.New(backend.Options{Mode: backend.ModeAuto})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, w := filepath.Join(mnt, "a"), filepath.Join(mnt, "w")
	writeFile(t, a, "kept") // before the forgetter starts: no event of these writes reaches it
	writeFile(t, w, "written")
	g := &guardRun{backend: b, paths: []string{mnt}, verifier: trust.NewVerifier(trust.VerifierConfig{Settle: time.Nanosecond})}
	g.applyMu.Lock()
	g.startForgetLocked()
	g.applyMu.Unlock()
	if g.forgetErr != nil {
		t.Fatal(g.forgetErr)
	}
	defer g.forget.stop()
	sums := func(path string) {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := g.verifier.Sums(context.Background(), int(f.Fd()), trust.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	before := g.forgets.Load()
	sums(a)
	sums(w)
	if st := g.verifier.Stats(); st.Cached != 2 || st.Hashes != 2 {
		t.Fatalf("after hashing both: %+v", st)
	}
	f, err := os.OpenFile(w, os.O_WRONLY, 0) // opened for writing, closed, nothing written
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !waitFor(5*time.Second, func() bool { return g.verifier.Stats().Cached == 1 }) {
		t.Fatalf("w's digests not dropped: %+v, %d forgets", g.verifier.Stats(), g.forgets.Load()-before)
	}
	sums(a) // still cached
	sums(w) // hashed again
	if st := g.verifier.Stats(); st.Hashes != 3 || st.Hits != 1 {
		t.Fatalf("after the write: %+v; want a from the cache, w hashed again", st)
	}
}

package trust

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestLoadMachineDpkg loads this machine's package database (skipped where there is none),
// logs the figures, and checks that /usr/bin/ls is found under its canonical path (dpkg lists
// /bin/ls on Debian 12) and verifies as trusted from its descriptor.
func TestLoadMachineDpkg(t *testing.T) {
	if _, err := os.Stat(DefaultDpkgDir + "/status"); err != nil {
		t.Skipf("no dpkg database: %v", err)
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	db, err := Load(Config{Packages: true})
	took := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	st := db.Stats().Packages
	t.Logf("loaded %d packages, %d files + %d conffiles (%d MB of info files) in %v; index %.1f MB, heap +%.1f MB; "+
		"diverted %d, aliased %d, not listed %d, without checksums %d, not installed %d",
		st.Packages, st.Files, st.Conffiles, st.InfoBytes>>20, took, float64(st.IndexBytes)/1e6,
		float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/1e6, st.Diverted, st.Aliased, st.NotListed, st.WithoutChecksums, st.NotInstalled)
	if st.Packages == 0 || st.Files == 0 {
		t.Fatalf("no packages or files: %+v", st)
	}
	f, err := os.Open("/usr/bin/ls")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	res, err := v.Verify(context.Background(), db, "/usr/bin/ls", int(f.Fd()))
	if err != nil || !res.Trusted() || res.Entry.Source.Package != "coreutils" {
		t.Fatalf("/usr/bin/ls: %v, %v", res, err)
	}
	runtime.KeepAlive(db)
}

func BenchmarkLoadMachineDpkg(b *testing.B) {
	if _, err := os.Stat(DefaultDpkgDir + "/status"); err != nil {
		b.Skipf("no dpkg database: %v", err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := Load(Config{Packages: true}); err != nil {
			b.Fatal(err)
		}
	}
}

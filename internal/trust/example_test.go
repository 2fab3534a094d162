package trust_test

import (
	"context"
	"log"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// A guard's use of the package: load before marking, verify each access from its descriptor
// under the decision's deadline, forget a file when it is modified, reload and swap. (Compiled,
// not run: it reads this machine's package database.)
func Example() {
	var db atomic.Pointer[trust.DB]
	first, err := trust.Load(trust.Config{Packages: true, Dir: trust.DefaultDir})
	if err != nil {
		log.Fatal(err)
	}
	db.Store(first) // then place the marks
	v := trust.NewVerifier(trust.VerifierConfig{})

	// For each permission event: its path and descriptor, under its deadline.
	decide := func(path string, fd int, deadline time.Time) bool {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		res, err := v.Verify(ctx, db.Load(), path, fd) // one DB for the whole decision
		if err != nil {
			log.Printf("%s: %v: %v", path, res, err) // untrusted; a deadline is the guard's on-timeout
		}
		return res.Trusted() // the audit line gets res.Entry.Source and res.Actual
	}
	_ = decide

	// On MODIFY or CLOSE_WRITE of inode (dev, ino):
	forget := func(dev, ino uint64) { v.Forget(dev, ino) }
	_ = forget

	// Every few seconds, or on SIGHUP:
	if changed, what := db.Load().Changed(); changed {
		next, err := trust.Load(db.Load().Config())
		if err != nil {
			log.Printf("trust: %s changed but does not load, keeping the old database: %v", what, err)
		} else {
			db.Store(next)
			v.ForgetAll()
		}
	}
}

// Package workslot lets a goroutine that holds a place in a bounded pool of workers (a
// guard's handlers) give it back before a wait that may be long and needs no worker: a wait
// for one of the few hash slots, or for another's hash of the same file. The pool then goes
// on serving what needs no hash while the waiters wait, instead of being held by them.
//
// The package starts no goroutine and takes no lock.
package workslot

import "context"

type key struct{}

// WithRelease returns ctx carrying release, which gives the caller's place back. release
// must be safe to call more than once and from any goroutine: only the first call counts.
func WithRelease(ctx context.Context, release func()) context.Context {
	return context.WithValue(ctx, key{}, release)
}

// Release gives back the place that ctx's WithRelease carries, if any: call it before a wait
// that needs no worker. Once given back, the place is not taken again: the work goes on
// outside the pool's bound (bounded by what it waited for).
func Release(ctx context.Context) {
	if f, ok := ctx.Value(key{}).(func()); ok {
		f()
	}
}

package workslot

import (
	"context"
	"testing"
)

func TestRelease(t *testing.T) {
	Release(context.Background()) // nothing to give back: no effect
	n := 0
	ctx := WithRelease(context.Background(), func() { n++ })
	Release(ctx)
	if n != 1 {
		t.Fatalf("release called %d times, want 1", n)
	}
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	Release(child) // a derived ctx carries it too
	if n != 2 {
		t.Fatalf("release through a derived ctx: called %d times, want 2 (the caller's func dedups)", n)
	}
}

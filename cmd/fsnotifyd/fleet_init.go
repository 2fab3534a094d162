//go:build linux

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
)

func init() {
	registerFleetSubcommand(subcommand{"init", "create the fleet stream and the policy bucket (the admin's, once)", runFleetInit})
}

const fleetInitHelp = `
Create, as the admin, the fleet stream (--stream, default FSNOTIFYD) with the
subjects and settings "serve --export" would give it, and the policy bucket
(--bucket, default fsnotifyd-policy) without rollups. Something already there
is left as it is, but checked: a stream or bucket whose settings would let one
host's message count as another host's, or as the policy, or erase others'
records, is an error saying which setting. Run it before the hosts export: they
need no permission to create a stream (docs/fleet.md, "Security").

Exit status: 0 created or already right; 1 NATS failed or what is there is
wrong; 2 a usage error.

Examples:
  fsnotifyd fleet init --nats nats://admin:PASSWORD@nats1:4222
  fsnotifyd fleet init --stream-max-age 720h --stream-max-bytes 10737418240
`

func runFleetInit(args []string) int {
	var (
		nf        natsFlags
		sc        fleet.StreamConfig
		bucket    = fleet.DefaultBucket
		maxBytes  int
		maxAge    time.Duration
		streamArg = fleet.DefaultStream
	)
	fs := newFlagSet("fleet init", "[--nats URL] [--stream NAME] [--stream-max-age DUR] [--stream-max-bytes N] [--bucket B]", fleetInitHelp)
	nf.register(fs)
	fs.stringVar(&streamArg, "stream", "the fleet stream's name")
	fs.durationVar(&maxAge, "stream-max-age", "drop records older than DUR (default 168h)")
	fs.intVar(&maxBytes, "stream-max-bytes", "bound the stream's size (default 1 GiB)")
	fs.stringVar(&bucket, "bucket", "the key-value bucket of the policies")
	if status, ok := fs.parseNoArgs(args); !ok {
		return status
	}
	if err := negativeFlag(intFlag{"--stream-max-bytes", maxBytes}); err != nil { // --stream-max-age: durationValue refuses one
		return fs.usageError(err)
	}
	sc.Name, sc.MaxAge, sc.MaxBytes = streamArg, maxAge, int64(maxBytes)
	c, status, ok := nf.connect(fs, "fsnotifyd-fleet-init")
	if !ok {
		return status
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*nf.o.Timeout)
	defer cancel()
	if err := fleet.EnsureStream(ctx, c.js, sc); err != nil {
		return fail(fs.cmd, err)
	}
	if _, err := fleet.OpenBucket(ctx, c.js, bucket, true); err != nil {
		return fail(fs.cmd, err)
	}
	fmt.Printf("stream %s and bucket %s are there and right\n", streamArg, bucket)
	return exitOK
}

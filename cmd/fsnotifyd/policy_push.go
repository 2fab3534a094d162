//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
)

func init() {
	registerPolicySubcommand(subcommand{"push", "check a rules file and make it the fleet's policy (NATS)", runPolicyPush})
}

const policyPushHelp = `
Check FILE as "guard --policy" would read it, then store it as the new
revision of KEY in the NATS JetStream key-value bucket BUCKET, which every
"guard --policy-from" host follows (docs/fleet.md). The update is a
compare-and-set on the revision read just before: if someone else pushed in
between, nothing is written and the push fails (exit 1) with a message saying
so; --if-revision N pushes only if the bucket still holds revision N (the one
you looked at before editing). Pushing the bytes already there writes nothing.
The bucket is created when missing. "fsnotifyd policy status" shows which
revision each host enforces.

Exit status: 0 pushed (or unchanged); 1 the file is invalid, the push lost a
race, or NATS failed; 2 a usage error.

Examples:
  fsnotifyd policy push /etc/fsnotifyd/guard.rules --nats nats://nats1:4222
  fsnotifyd policy push web.rules --key web --nats tls://nats1:4222 --nats-creds admin.creds --nats-tls-ca ca.pem
  fsnotifyd policy push guard.rules --if-revision 7
`

func runPolicyPush(args []string) int {
	var (
		bf         bucketFlags
		ifRevision int
	)
	fs := newFlagSet("policy push", "FILE [--nats URL] [--bucket B] [--key K] [--if-revision N]", policyPushHelp)
	bf.register(fs, "the policy's key in the bucket")
	fs.intVar(&ifRevision, "if-revision", "push only if the bucket holds revision N now")
	rest, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	if len(rest) != 1 {
		return fs.usageError(errors.New("name one rules FILE to push"))
	}
	if err := negativeFlag(intFlag{"--if-revision", ifRevision}); err != nil {
		return fs.usageError(err)
	}
	if status, ok := bf.checkKey(fs); !ok {
		return status
	}
	file := rest[0]
	// As guard --policy reads it: a regular file, never waited on (a FIFO). Who may change
	// it is the guards' business (each checks the copy it keeps), not the admin's push.
	data, _, err := readPolicySource(file)
	if err != nil {
		return fail(fs.cmd, err)
	}
	validate := func(b []byte) error {
		_, err := policy.Parse(file, bytes.NewReader(b))
		return err // names file:line:col
	}
	if err := validate(data); err != nil {
		return fail(fs.cmd, fmt.Errorf("%v (nothing was pushed)", err))
	}
	c, status, ok := bf.connect(fs, "fsnotifyd-policy-push")
	if !ok {
		return status
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*bf.o.Timeout)
	defer cancel()
	kv, err := fleet.OpenBucket(ctx, c.js, bf.bucket, true)
	if err != nil {
		return fail(fs.cmd, err)
	}
	res, err := fleet.Push(ctx, kv, bf.key, data, uint64(ifRevision), validate)
	if err != nil {
		return fail(fs.cmd, err)
	}
	switch {
	case res.Unchanged:
		fmt.Printf("%s/%s: unchanged, revision %d already holds %s\n", bf.bucket, bf.key, res.Revision, file)
	case res.Previous == 0:
		fmt.Printf("%s/%s: revision %d pushed (the first)\n", bf.bucket, bf.key, res.Revision)
	default:
		fmt.Printf("%s/%s: revision %d pushed (replacing revision %d)\n", bf.bucket, bf.key, res.Revision, res.Previous)
	}
	return exitOK
}

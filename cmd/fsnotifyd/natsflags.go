//go:build linux

package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
)

// natsFlags are the connection flags of every command that talks to NATS.
type natsFlags struct {
	o fleet.ConnOptions
}

// bucketFlags are the flags of the commands on the fleet's policy bucket (policy push,
// policy status): --nats and its --nats-* flags, --bucket and --key.
type bucketFlags struct {
	natsFlags
	bucket, key string
}

// register registers them; keyUsage says what --key names to this command.
func (b *bucketFlags) register(fs *flagSet, keyUsage string) {
	b.natsFlags.register(fs)
	b.bucket, b.key = fleet.DefaultBucket, fleet.DefaultKey
	fs.stringVar(&b.bucket, "bucket", "the key-value bucket of the policies")
	fs.stringVar(&b.key, "key", keyUsage)
}

// checkKey refuses a --key no host could follow: before NATS, a usage error, as guard
// --policy-from's.
func (b *bucketFlags) checkKey(fs *flagSet) (int, bool) {
	if err := fleet.CheckPolicyKey(b.key); err != nil {
		return fs.usageError(fmt.Errorf("--key: %w", err)), false
	}
	return 0, true
}

func (n *natsFlags) register(fs *flagSet) {
	n.o.URLs = fleet.DefaultURL
	fs.stringVar(&n.o.URLs, "nats", "NATS server URL(s), a comma list (nats://HOST:PORT, tls://...)")
	registerConnFlags(fs, &n.o, "")
}

// registerConnFlags registers the --nats-* flags of o (all but the URLs, which each command
// names its own way: --nats, serve --export, guard --policy-from); with says what they go
// with, for the usage lines ("" for nothing), and timeoutAlso adds to --nats-timeout's.
func registerConnFlags(fs *flagSet, o *fleet.ConnOptions, with string, timeoutAlso ...string) {
	o.Timeout = 5 * time.Second
	fs.stringVar(&o.Creds, "nats-creds", "NATS credentials FILE (user JWT and nkey seed)"+with)
	fs.stringVar(&o.TLSCA, "nats-tls-ca", "PEM FILE of the CAs that sign the NATS server's certificate"+with)
	fs.stringVar(&o.TLSCert, "nats-tls-cert", "client certificate FILE, for servers that verify clients (with --nats-tls-key)")
	fs.stringVar(&o.TLSKey, "nats-tls-key", "client key FILE (with --nats-tls-cert)")
	fs.durationVar(&o.Timeout, "nats-timeout", "bound connecting and each NATS request by DUR"+strings.Join(timeoutAlso, ""))
}

// connFlagsWithout is the usage error for a --nats-* flag (or another) given without the flag
// that makes a connection (need): nil if none was.
func connFlagsWithout(o *fleet.ConnOptions, need string, more ...[2]string) error {
	flags := append([][2]string{{"--nats-creds", o.Creds}, {"--nats-tls-ca", o.TLSCA}, {"--nats-tls-cert", o.TLSCert}, {"--nats-tls-key", o.TLSKey}}, more...)
	for _, f := range flags {
		if f[1] != "" {
			return fmt.Errorf("%s is for %s; give %s", f[0], strings.Fields(need)[0], need)
		}
	}
	return nil
}

// givenFlags is, for connFlagsWithout, each flag of names given on the command line: a
// flag whose value has a default (--spool, --nats-timeout) counts when given, even as that.
func (fs *flagSet) givenFlags(names ...string) [][2]string {
	var pairs [][2]string
	for _, n := range names {
		if fs.given(n) {
			pairs = append(pairs, [2]string{"--" + n, "given"})
		}
	}
	return pairs
}

// refuseConn is the exit of a command whose NATS options (fleet.ConnOptions.Check) or the
// flags around them are refused with err: a file a flag names that is missing or that others
// could change (*fleet.FileError) is a runtime error (exit 1), as every command's FILE flags
// are; anything else a usage error (exit 2).
func refuseConn(fs *flagSet, err error) int {
	if errors.As(err, new(*fleet.FileError)) {
		return fail(fs.cmd, err)
	}
	return fs.usageError(err)
}

// connect checks the options (refuseConn) and dials (a runtime error).
func (n *natsFlags) connect(fs *flagSet, name string) (*fleetConn, int, bool) {
	if err := n.o.Check(); err != nil {
		return nil, refuseConn(fs, err), false
	}
	n.o.Name = name
	nc, err := n.o.Connect()
	if err != nil {
		return nil, fail(fs.cmd, err), false
	}
	js, err := n.o.JetStream(nc)
	if err != nil {
		nc.Close()
		return nil, fail(fs.cmd, err), false
	}
	return &fleetConn{nc: nc, js: js}, 0, true
}

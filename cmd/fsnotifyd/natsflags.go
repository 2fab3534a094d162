//go:build linux

package main

import (
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
)

// natsFlags are the connection flags of every command that talks to NATS.
type natsFlags struct {
	o fleet.ConnOptions
}

func (n *natsFlags) register(fs *flagSet) {
	n.o.URLs = fleet.DefaultURL
	n.o.Timeout = 5 * time.Second
	fs.stringVar(&n.o.URLs, "nats", "NATS server URL(s), a comma list (nats://HOST:PORT, tls://...)")
	fs.stringVar(&n.o.Creds, "nats-creds", "NATS credentials FILE (user JWT and nkey seed)")
	fs.stringVar(&n.o.TLSCA, "nats-tls-ca", "PEM FILE of the CAs that sign the NATS server's certificate")
	fs.stringVar(&n.o.TLSCert, "nats-tls-cert", "client certificate FILE, for servers that verify clients (with --nats-tls-key)")
	fs.stringVar(&n.o.TLSKey, "nats-tls-key", "client key FILE (with --nats-tls-cert)")
	fs.durationVar(&n.o.Timeout, "nats-timeout", "bound connecting and each NATS request by DUR")
}

// connect checks the options (a usage error) and dials (a runtime error).
func (n *natsFlags) connect(fs *flagSet, name string) (*fleetConn, int, bool) {
	if err := n.o.Check(); err != nil {
		return nil, fs.usageError(err), false
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

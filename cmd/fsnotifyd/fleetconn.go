//go:build linux

package main

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fleetConn is a command's NATS connection.
type fleetConn struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func (c *fleetConn) close() { c.nc.Close() }

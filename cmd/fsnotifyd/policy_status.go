//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	registerPolicySubcommand(subcommand{"status", "print which policy revision each host enforces (NATS)", runPolicyStatus})
}

const policyStatusHelp = `
Print the revision of the fleet policy in the bucket, then one line per host
(from the status.HOST entries the hosts write): the revision it enforces,
since when, and the error if it refused a revision (it keeps the previous
one) — "behind" marks a host on another revision than KEY's current one.
A host that cannot reach NATS cannot update its line: UPDATED tells how old
a line is.

Examples:
  fsnotifyd policy status --nats nats://nats1:4222
  fsnotifyd policy status --bucket fsnotifyd-policy --key web --json
`

func runPolicyStatus(args []string) int {
	var (
		bf      bucketFlags
		jsonOut bool
	)
	fs := newFlagSet("policy status", "[--nats URL] [--bucket B] [--key K] [--json]", policyStatusHelp)
	bf.register(fs, "the policy key to compare the hosts with")
	fs.boolVar(&jsonOut, "json,j", "print one JSON object per host")
	if status, ok := fs.parseNoArgs(args); !ok {
		return status
	}
	if status, ok := bf.checkKey(fs); !ok {
		return status
	}
	c, status, ok := bf.connect(fs, "fsnotifyd-policy-status")
	if !ok {
		return status
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*bf.o.Timeout)
	defer cancel()
	kv, err := fleet.OpenBucket(ctx, c.js, bf.bucket, false)
	if err != nil {
		return fail(fs.cmd, err)
	}
	var current uint64
	var pushed time.Time
	if e, err := kv.Get(ctx, bf.key); err == nil {
		current, pushed = e.Revision(), e.Created()
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fail(fs.cmd, err)
	}
	hosts, err := fleet.ReadStatuses(ctx, kv)
	if err != nil {
		return fail(fs.cmd, err)
	}
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		for _, h := range hosts {
			if h.Err != nil {
				enc.Encode(map[string]string{"host_token": h.Token, "error": h.Err.Error()})
				continue
			}
			enc.Encode(h.Status)
		}
		return exitOK
	}
	if current == 0 {
		fmt.Printf("policy %s/%s: none pushed yet\n", bf.bucket, bf.key)
	} else {
		fmt.Printf("policy %s/%s: revision %d, pushed %s\n", bf.bucket, bf.key, current, pushed.Local().Format(time.DateTime))
	}
	if len(hosts) == 0 {
		fmt.Println("no host has reported yet")
		return exitOK
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "HOST\tREVISION\tAPPLIED\tUPDATED\tERROR")
	esc := format.Escaped // hosts write these
	for _, h := range hosts {
		if h.Err != nil {
			fmt.Fprintf(w, "%s\t?\t?\t?\t%s\n", esc(h.Token), esc(h.Err.Error()))
			continue
		}
		s := h.Status
		rev := fmt.Sprint(s.Revision)
		if s.Key == bf.key && s.Revision != current {
			rev += " (behind)"
		} else if s.Key != bf.key {
			rev += " (key " + esc(s.Key) + ")"
		}
		applied := "-"
		if !s.AppliedAt.IsZero() {
			applied = s.AppliedAt.Local().Format(time.DateTime)
		}
		errText := s.Error
		if errText == "" {
			errText = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", esc(s.Host), rev, applied, s.UpdatedAt.Local().Format(time.DateTime), esc(errText))
	}
	w.Flush()
	return exitOK
}

//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
)

const statsHelp = `
Print the figures of a running daemon: uptime, clients, events read from the
kernel, events delivered and dropped, overflows, pending permission events,
deadline expiries, close verdicts, marks, and the verdict latency, and one
line per client. Root and the uids the daemon's config allows see the whole
daemon; any other user sees the figures of its own clients only (those of its
uid): daemon-wide figures would tell of activity in directories it cannot read.

Examples:
  fsnotifyd stats
  fsnotifyd stats --json
  fsnotifyd stats --socket /tmp/fsn.sock
`

func runStats(args []string) int {
	var (
		socket  = client.DefaultSocket
		jsonOut bool
	)
	fs := newFlagSet("stats", "[--socket PATH] [--json]", statsHelp)
	fs.stringVar(&socket, "socket,s", "the daemon's unix socket")
	fs.boolVar(&jsonOut, "json,j", "print the figures as one JSON object")
	if status, ok := fs.parseNoArgs(args); !ok {
		return status
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Socket: socket, Name: "fsnotifyd-stats"})
	if err != nil {
		return fail("stats", err)
	}
	defer c.Close()
	st, err := c.Stats(ctx, true)
	if err != nil {
		return fail("stats", err)
	}
	// The daemon gives the privileged (who may place mount marks) its own figures; others
	// their clients' only.
	w0 := c.Welcome()
	scope := statsScope{own: !w0.MountMarks, uid: w0.UID}
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(statsJSON(st, scope))
		return exitOK
	}
	d := st.Daemon
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if scope.own {
		fmt.Fprintf(w, "scope\tthe clients of uid %d only (the daemon's own figures are for root and allowed uids)\n", scope.uid)
	}
	fmt.Fprintf(w, "uptime\t%s\n", d.Uptime.Round(time.Second))
	fmt.Fprintf(w, "clients\t%d\n", d.Clients)
	fmt.Fprintf(w, "marks\t%d\n", d.Marks)
	if scope.own {
		fmt.Fprintf(w, "events\t-\t(daemon-wide)\n")
	} else {
		fmt.Fprintf(w, "events\t%d\t(permission %d)\n", d.Events, d.PermissionEvents)
	}
	fmt.Fprintf(w, "delivered\t%d\n", d.Delivered)
	fmt.Fprintf(w, "drops\t%d\n", d.Dropped)
	fmt.Fprintf(w, "overflows\t%d\t(kernel %d)\n", d.Overflows, d.KernelOverflows)
	fmt.Fprintf(w, "pending permission events\t%d\n", d.Pending)
	fmt.Fprintf(w, "deadline expiries\t%d\n", d.DeadlineExpired)
	fmt.Fprintf(w, "close verdicts\t%d\n", d.CloseAnswered)
	if d.Latency.Count > 0 {
		fmt.Fprintf(w, "verdict latency\tmean %s\tmax %s\t(%d answers)\n",
			(d.Latency.Sum / time.Duration(d.Latency.Count)).Round(time.Microsecond), d.Latency.Max.Round(time.Microsecond), d.Latency.Count)
	} else {
		fmt.Fprintf(w, "verdict latency\t-\t(no answers yet)\n")
	}
	w.Flush()
	if len(st.Clients) > 0 {
		fmt.Println()
		w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tPID\tUID\tCLASS\tMARKS\tQUEUED\tPENDING\tDELIVERED\tDROPPED\tOVERFLOWS\tANSWERED\tDEADLINE")
		for _, c := range st.Clients {
			// A client names itself (any text): escaped as trace escapes names, so that it
			// cannot forge a row nor send escape sequences to the terminal.
			fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", c.ID, format.Escaped(c.Name), c.PID, c.UID, c.Class,
				c.Marks, c.Queued, c.Pending, c.Delivered, c.Dropped, c.Overflows, c.Answered, c.DeadlineExpired)
		}
		w.Flush()
	}
	if st.Truncated {
		fmt.Println("(more clients than listed)")
	}
	return exitOK
}

// statsScope is whose figures the daemon gave: its own, or (own) those of uid's clients.
type statsScope struct {
	own bool
	uid uint32
}

func statsJSON(st *fsevent.Stats, scope statsScope) any {
	d := st.Daemon
	type client struct {
		ID        uint64 `json:"id"`
		Name      string `json:"name"`
		PID       int32  `json:"pid"`
		UID       uint32 `json:"uid"`
		Class     string `json:"class"`
		Marks     uint32 `json:"marks"`
		Queued    uint32 `json:"queued"`
		Pending   uint32 `json:"pending"`
		Delivered uint64 `json:"delivered"`
		Dropped   uint64 `json:"dropped"`
		Overflows uint64 `json:"overflows"`
		Answered  uint64 `json:"answered"`
		Deadline  uint64 `json:"deadline_expiries"`
	}
	out := struct {
		Scope           string   `json:"scope"` // "daemon", or "uid": the clients of uid only
		UID             *uint32  `json:"uid,omitempty"`
		Uptime          float64  `json:"uptime_seconds"`
		Clients         uint32   `json:"clients"`
		Marks           uint64   `json:"marks"`
		Events          uint64   `json:"events"`
		PermEvents      uint64   `json:"permission_events"`
		Delivered       uint64   `json:"delivered"`
		Dropped         uint64   `json:"drops"`
		Overflows       uint64   `json:"overflows"`
		KernelOverflows uint64   `json:"kernel_overflows"`
		Pending         uint64   `json:"pending_permission_events"`
		Deadline        uint64   `json:"deadline_expiries"`
		Closed          uint64   `json:"close_verdicts"`
		LatencyCount    uint64   `json:"verdict_latency_count"`
		LatencyMean     float64  `json:"verdict_latency_mean_seconds"`
		LatencyMax      float64  `json:"verdict_latency_max_seconds"`
		List            []client `json:"client_list,omitempty"`
	}{Uptime: d.Uptime.Seconds(), Clients: d.Clients, Marks: d.Marks, Events: d.Events, PermEvents: d.PermissionEvents,
		Delivered: d.Delivered, Dropped: d.Dropped, Overflows: d.Overflows, KernelOverflows: d.KernelOverflows,
		Pending: d.Pending, Deadline: d.DeadlineExpired, Closed: d.CloseAnswered, LatencyCount: d.Latency.Count,
		LatencyMax: d.Latency.Max.Seconds(), Scope: "daemon"}
	if scope.own {
		out.Scope, out.UID = "uid", &scope.uid
	}
	if d.Latency.Count > 0 {
		out.LatencyMean = (d.Latency.Sum / time.Duration(d.Latency.Count)).Seconds()
	}
	for _, c := range st.Clients {
		out.List = append(out.List, client{c.ID, c.Name, c.PID, c.UID, c.Class.String(), c.Marks, c.Queued, c.Pending,
			c.Delivered, c.Dropped, c.Overflows, c.Answered, c.DeadlineExpired})
	}
	return out
}

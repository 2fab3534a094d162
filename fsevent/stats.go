package fsevent

import "time"

// Stats are a daemon's figures: daemon-wide ones and one entry per client (only the asking
// client's unless it asked for all, which needs privilege).
type Stats struct {
	Daemon DaemonStats
	// Clients has at most 2048 entries (the protocol's MaxStatsClients), ordered by client id.
	Clients []ClientStats
	// Truncated says the daemon had more clients than it could list.
	Truncated bool
}

// DaemonStats are the daemon-wide figures (counters since the daemon started).
type DaemonStats struct {
	Uptime time.Duration
	// Clients connected now.
	Clients uint32
	// Events received from the kernel; PermissionEvents of them were permission events.
	Events, PermissionEvents uint64
	// Delivered to client queues; Dropped because a client's queue was full; Overflows
	// reported to clients; KernelOverflows of the kernel's own queue.
	Delivered, Dropped, Overflows, KernelOverflows uint64
	// Pending permission events not answered yet, now.
	Pending uint64
	// DeadlineExpired: permission events answered by a deadline verdict; CloseAnswered: by a
	// close verdict (the client disconnected).
	DeadlineExpired, CloseAnswered uint64
	// Marks held by all clients, now.
	Marks uint64
	// Latency is the verdict latency of permission events answered by clients (from the
	// daemon queueing the event to the client's answer).
	Latency Latency
	// Buckets is the latency histogram: at most 32, Le strictly increasing, counts not
	// cumulative (an answer counts in the first bucket whose Le is ≥ its latency; slower
	// ones count only in Latency).
	Buckets []Bucket
}

// Latency summarises durations.
type Latency struct {
	Count    uint64
	Sum, Max time.Duration
}

// Bucket is one histogram bucket.
type Bucket struct {
	Le    time.Duration // upper bound, inclusive; positive
	Count uint64
}

// ClientStats are one client's figures.
type ClientStats struct {
	ID   uint64
	Name string // at most 255 bytes of UTF-8
	PID  int32
	UID  uint32
	// Class is the client's class.
	Class Class
	// Queued events not read yet, Pending permission events not answered yet, Marks held:
	// now.
	Queued, Pending, Marks uint32
	// Counters: Delivered, Merged into an unread event, Dropped on a full queue, Overflows
	// reported, Answered by the client, DeadlineExpired, CloseAnswered, QueueFull verdicts.
	Delivered, Merged, Dropped, Overflows               uint64
	Answered, DeadlineExpired, CloseAnswered, QueueFull uint64
	Latency                                             Latency
}

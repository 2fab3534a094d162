package proto

import (
	"math"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// Stats answers a StatsRequest (daemon → client): daemon-wide figures and one entry per
// client (only the caller's unless StatsRequest.AllClients).
type Stats struct {
	noFDs
	Req    uint64 // the StatsRequest's
	Daemon DaemonStats
	// Clients has at most MaxStatsClients entries, ordered by client id.
	Clients []ClientStats
	// Truncated says the daemon had more clients than it could list.
	Truncated bool
}

// DaemonStats, Latency, Bucket and ClientStats are fsevent's, which package client returns.
type (
	DaemonStats = fsevent.DaemonStats
	Latency     = fsevent.Latency
	Bucket      = fsevent.Bucket
	ClientStats = fsevent.ClientStats
)

func (*Stats) Type() Type          { return TypeStats }
func (m *Stats) RequestID() uint64 { return m.Req }

const statsTruncated = 1

// Fixed sizes, for decoding bounds.
const (
	statsFixed  = 128
	bucketSize  = 16
	clientFixed = 120
)

func checkLatency(field string, l Latency) *Error {
	if l.Sum < 0 || l.Max < 0 {
		return errorf(CodeBadField, "Stats: %s latency is negative", field)
	}
	return nil
}

func (m *Stats) check() *Error {
	t := m.Type()
	if err := checkReq(t, m.Req, true); err != nil {
		return err
	}
	if m.Daemon.Uptime < 0 {
		return errorf(CodeBadField, "Stats: negative uptime")
	}
	if err := checkLatency("daemon", m.Daemon.Latency); err != nil {
		return err
	}
	if len(m.Daemon.Buckets) > MaxBuckets {
		return errorf(CodeBadField, "Stats: %d latency buckets; the limit is %d", len(m.Daemon.Buckets), MaxBuckets)
	}
	var prev time.Duration
	for i, b := range m.Daemon.Buckets {
		if b.Le <= prev {
			return errorf(CodeBadField, "Stats: bucket %d bound %v is not above the previous one (%v)", i, b.Le, prev)
		}
		prev = b.Le
	}
	if len(m.Clients) > MaxStatsClients {
		return errorf(CodeBadField, "Stats: %d clients; the limit is %d (set Truncated)", len(m.Clients), MaxStatsClients)
	}
	for i := range m.Clients {
		c := &m.Clients[i]
		if c.Class > fsevent.ClassPreContent {
			return errorf(CodeBadField, "Stats: client %d: class %d", c.ID, c.Class)
		}
		if err := checkLatency("client", c.Latency); err != nil {
			return err
		}
		if err := checkText(t, "client name", c.Name, MaxName); err != nil {
			return err
		}
	}
	return nil
}

func appendLatency(b []byte, l Latency) []byte {
	b = appendU64(b, l.Count)
	b = appendU64(b, uint64(l.Sum))
	return appendU64(b, uint64(l.Max))
}

func (m *Stats) appendPayload(b []byte) []byte {
	s := &m.Daemon
	b = appendU64(b, uint64(s.Uptime))
	b = appendU32(b, s.Clients)
	b = appendU32(b, uint32(b2i(m.Truncated)))
	for _, v := range [...]uint64{s.Events, s.PermissionEvents, s.Delivered, s.Dropped, s.Overflows,
		s.KernelOverflows, s.Pending, s.DeadlineExpired, s.CloseAnswered, s.Marks} {
		b = appendU64(b, v)
	}
	b = appendLatency(b, s.Latency)
	b = appendU16(b, uint16(len(s.Buckets)))
	b = appendU16(b, uint16(len(m.Clients)))
	b = appendU32(b, 0)
	for _, k := range s.Buckets {
		b = appendU64(b, uint64(k.Le))
		b = appendU64(b, k.Count)
	}
	for i := range m.Clients {
		c := &m.Clients[i]
		b = appendU64(b, c.ID)
		b = appendU32(b, uint32(c.PID))
		b = appendU32(b, c.UID)
		b = append(b, byte(c.Class), 0, 0, 0)
		b = appendU32(b, c.Queued)
		b = appendU32(b, c.Pending)
		b = appendU32(b, c.Marks)
		for _, v := range [...]uint64{c.Delivered, c.Merged, c.Dropped, c.Overflows, c.Answered,
			c.DeadlineExpired, c.CloseAnswered, c.QueueFull} {
			b = appendU64(b, v)
		}
		b = appendLatency(b, c.Latency)
		b = appendStr(b, c.Name)
	}
	return b
}

func (d *decoder) duration(field string) time.Duration {
	v := d.u64(field)
	if v > math.MaxInt64 {
		d.fail(CodeBadField, "%s is negative", field)
	}
	return time.Duration(v)
}

func (d *decoder) latency(field string) Latency {
	return Latency{Count: d.u64(field), Sum: d.duration(field), Max: d.duration(field)}
}

func (m *Stats) decode(d *decoder, req uint64) {
	m.Req = req
	s := &m.Daemon
	s.Uptime = d.duration("uptime")
	s.Clients = d.u32("clients")
	m.Truncated = d.flags(4, statsTruncated, "flags") != 0
	for _, p := range [...]*uint64{&s.Events, &s.PermissionEvents, &s.Delivered, &s.Dropped, &s.Overflows,
		&s.KernelOverflows, &s.Pending, &s.DeadlineExpired, &s.CloseAnswered, &s.Marks} {
		*p = d.u64("counters")
	}
	s.Latency = d.latency("latency")
	nb := int(d.u16("bucket count"))
	nc := int(d.u16("client count"))
	d.reserved(4, "reserved")
	if d.err != nil {
		return
	}
	// Check the counts against the limits and the bytes left before allocating, so a small
	// frame cannot make us allocate much.
	if nb > MaxBuckets || nc > MaxStatsClients {
		d.fail(CodeBadField, "%d buckets and %d clients; the limits are %d and %d", nb, nc, MaxBuckets, MaxStatsClients)
		return
	}
	if need := nb*bucketSize + nc*(clientFixed+2); need > len(d.b)-d.off {
		d.fail(CodeTruncated, "%d buckets and %d clients need at least %d bytes, %d left", nb, nc, need, len(d.b)-d.off)
		return
	}
	if nb > 0 {
		s.Buckets = make([]Bucket, nb)
		for i := range s.Buckets {
			s.Buckets[i] = Bucket{Le: d.duration("bucket bound"), Count: d.u64("bucket count")}
		}
	}
	if nc > 0 {
		m.Clients = make([]ClientStats, nc)
		for i := range m.Clients {
			c := &m.Clients[i]
			c.ID = d.u64("client id")
			c.PID = int32(d.u32("client pid"))
			c.UID = d.u32("client uid")
			c.Class = fsevent.Class(d.u8("client class"))
			d.reserved(3, "client reserved")
			c.Queued = d.u32("client queued")
			c.Pending = d.u32("client pending")
			c.Marks = d.u32("client marks")
			for _, p := range [...]*uint64{&c.Delivered, &c.Merged, &c.Dropped, &c.Overflows, &c.Answered,
				&c.DeadlineExpired, &c.CloseAnswered, &c.QueueFull} {
				*p = d.u64("client counters")
			}
			c.Latency = d.latency("client latency")
			c.Name = d.str("client name")
		}
	}
}

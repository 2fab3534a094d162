//go:build linux

package daemon

import (
	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// The conversions between the engine and the wire protocol: the protocol carries fsevent's
// plain values, and only the daemon knows the engine behind them.

// groupOptions returns the engine group options a Hello asks for (Name, Class, QueueLimit,
// Deadline and the verdicts), before the daemon applies its caps and limits.
func groupOptions(h *proto.Hello) engine.Options {
	return engine.Options{Name: h.Name, Class: h.Class, QueueLimit: h.QueueLimit, Deadline: h.Deadline,
		DeadlineVerdict: h.DeadlineVerdict, CloseVerdict: h.CloseVerdict, QueueFullVerdict: h.QueueFullVerdict}
}

// markSpec returns an AddMark's masks and flags.
func markSpec(m *proto.AddMark) engine.MarkSpec {
	return engine.MarkSpec{Mask: m.Mask, Ignore: m.Ignore, Flags: m.Flags}
}

// response returns a Respond's answer, for engine.Group.Respond.
func response(m *proto.Respond) engine.Response {
	return engine.Response{Verdict: m.Verdict, Errno: m.Errno, Cache: m.Cache}
}

// wireEvent returns the Event for a delivery read from a client's group: the delivery's
// record (backend.Record; with resolve, its path resolved — a permission event's path is
// read on demand, a readlink and a statx) without what the daemon sends only to clients that
// ask (Comm) or never (Exe). The client's view (session.event) trims it further. It returns
// nil for an overflow delivery: send an Overflow instead.
func wireEvent(d engine.Delivery, resolve bool) *proto.Event {
	if d.Event == nil {
		return nil
	}
	ev := new(proto.Event)
	wireEventInto(d, resolve, ev)
	return ev
}

// wireEventInto is wireEvent into ev, for a delivery that is not an overflow: the
// notification path fills an Event of its own, with no allocation.
func wireEventInto(d engine.Delivery, resolve bool, ev *proto.Event) {
	*ev = proto.Event(backend.Record(d, resolve))
	ev.Comm, ev.Exe, ev.ExeDeleted = "", "", false
}

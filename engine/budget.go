package engine

import "sync/atomic"

// QueueBudget bounds the events queued in several groups together, beside each group's own
// QueueLimit: a group given one (Options.QueueBudget) takes an event only while the budget's
// groups hold fewer than its limit between them, and otherwise treats the event as meeting a
// full queue (an overflow in place, the drop counted; a permission event gets the group's
// QueueFullVerdict). The daemon gives one to all the clients of an unprivileged user, so
// that a user whose clients stop reading holds at most that many events of the daemon's
// memory, not QueueLimit times its connections. The kernel has no counterpart (its
// max_queued_events is per group).
//
// A budget may be within another (NewQueueBudgetWithin): an entry counts against both, and a
// group takes an event only while both have room. The daemon puts every unprivileged uid's
// budget within one for all unprivileged users, so that a user with many uids (subordinate
// ids) holds no more than that either.
//
// Invariant: used is the number of entries queued (pushed and not yet popped, read,
// withdrawn or dropped by Close) in the groups sharing the budget, overflow entries
// included, and of those read with TryReadBatchHeld and not yet Released. Every change of a group's qlen changes used by the same amount, under the
// group's mu; used is read without a lock, so groups queueing at once may each pass the
// check before the others' entries count: used exceeds limit by at most one entry per group
// queueing concurrently, and one overflow entry per group (which is queued whatever the
// budget, as past QueueLimit).
type QueueBudget struct {
	limit  int64
	used   atomic.Int64
	parent *QueueBudget // nil, or the budget this one is within
}

// NewQueueBudget returns a budget of limit events (at least 1).
func NewQueueBudget(limit int) *QueueBudget {
	return &QueueBudget{limit: int64(max(limit, 1))}
}

// NewQueueBudgetWithin returns a budget of limit events within parent: what its groups
// hold counts against parent too, and they take an event only while parent has room.
func NewQueueBudgetWithin(parent *QueueBudget, limit int) *QueueBudget {
	b := NewQueueBudget(limit)
	b.parent = parent
	return b
}

// Limit returns the budget's limit.
func (b *QueueBudget) Limit() int { return int(b.limit) }

// Used returns the entries the budget's groups hold now.
func (b *QueueBudget) Used() int { return int(b.used.Load()) }

// Release gives back n entries a reader read with Group.TryReadBatchHeld and held (the
// daemon's writer, with events it encoded and could not write at once), once they are gone.
// So what a reader holds for a client that does not read counts as what its queue holds.
func (b *QueueBudget) Release(n int) { b.add(-int64(n)) }

// room reports whether b and every budget it is within have room, b first.
func (b *QueueBudget) room() bool {
	for ; b != nil; b = b.parent {
		if b.used.Load() >= b.limit {
			return false
		}
	}
	return true
}

// add counts n entries more (or fewer) in b and every budget it is within.
func (b *QueueBudget) add(n int64) {
	for ; b != nil; b = b.parent {
		b.used.Add(n)
	}
}

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
// Invariant: used is the number of entries queued (pushed and not yet popped, read,
// withdrawn or dropped by Close) in the groups sharing the budget, overflow entries
// included. Every change of a group's qlen changes used by the same amount, under the
// group's mu; used is read without a lock, so groups queueing at once may each pass the
// check before the others' entries count: used exceeds limit by at most one entry per group
// queueing concurrently, and one overflow entry per group (which is queued whatever the
// budget, as past QueueLimit).
type QueueBudget struct {
	limit int64
	used  atomic.Int64
}

// NewQueueBudget returns a budget of limit events (at least 1).
func NewQueueBudget(limit int) *QueueBudget {
	return &QueueBudget{limit: int64(max(limit, 1))}
}

// Limit returns the budget's limit.
func (b *QueueBudget) Limit() int { return int(b.limit) }

// Used returns the entries the budget's groups hold now.
func (b *QueueBudget) Used() int { return int(b.used.Load()) }

func (b *QueueBudget) room() bool { return b.used.Load() < b.limit }

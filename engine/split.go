package engine

// Splitting a merged mask into one operation per event.
//
// A queue (the kernel's, or a group's) merges an unread event into a later one on the same
// object by ORing their masks, so one event may carry an open, a write and a close. The
// order those happened in is lost from the mask, but for one object it is fixed by the
// system calls themselves: an entry is created (or moved in) before it can be opened, opened
// before it is read or written, read or written before the descriptor is closed, and
// unlinked or moved away last. An ATTRIB is the one operation the calls do not place: a
// change made through the open descriptor (fchmod, futimens: touch, cp -p, install) comes
// before its close, the link count an unlink changes comes after it, just before the DELETE.
// SplitOrder places it before the close; in a mask that also removes the entry, after it
// (splitOrderRemoved). docs/events.md states what is merged where and why this is the
// kernel's order.

// SplitOrder is the order in which SplitMask emits a merged mask's operations.
var SplitOrder = [...]Mask{
	Create, MovedTo,
	Open, OpenExec,
	Access, Modify,
	Attrib,
	CloseNoWrite, CloseWrite,
	MovedFrom, Delete,
	MoveSelf, DeleteSelf,
}

// splitOrderRemoved is SplitOrder for a mask that also removes the entry or the object: its
// ATTRIB is then the unlink's link count, after the close.
var splitOrderRemoved = [...]Mask{
	Create, MovedTo,
	Open, OpenExec,
	Access, Modify,
	CloseNoWrite, CloseWrite,
	Attrib,
	MovedFrom, Delete,
	MoveSelf, DeleteSelf,
}

// removes are the operations after which an ATTRIB in the same mask was the removal's.
const removes = MovedFrom | Delete | MoveSelf | DeleteSelf

// splitFlags go with every part: they describe the object, not an operation.
const splitFlags = OnDir | EventOnChild

// SplitMask appends to dst the parts of m, one operation of SplitOrder each in that order,
// each with m's flags (OnDir); bits of m that are neither (Rename, FSError, permission
// events, QueueOverflow) go with the first part. A mask with at most one operation is
// appended as it is.
func SplitMask(m Mask, dst []Mask) []Mask {
	flags := m & splitFlags
	rest := m &^ splitFlags
	for _, op := range SplitOrder {
		rest &^= op
	}
	first := true
	order := SplitOrder[:]
	if m&removes != 0 {
		order = splitOrderRemoved[:]
	}
	for _, op := range order {
		if m&op == 0 {
			continue
		}
		part := op | flags
		if first {
			part |= rest
			first = false
		}
		dst = append(dst, part)
	}
	if first {
		dst = append(dst, m)
	}
	return dst
}

//go:build linux

package notify

// A rename's two halves, as fsnotify counts them.
//
// A rename within the watches is reported as Rename on the old name, then Create on the new
// one with the old name in OldName. fsnotify counts that arriving Create as part of the
// rename: a watch filtered to Create (WithOps(Create)) does not report it, and one filtered
// to Rename does (testdata/watch-dir/only-create and only-rename in fsnotify/fsnotify). An
// entry moved in from an unwatched place (no OldName) is a plain Create.

// arrivalFilter is the operations to match the watches' filters against for an event with
// operations ops whose arriving half came from oldName ("" if none, or unwatched): the
// arrival counts as Rename.
func arrivalFilter(ops Op, oldName string) Op {
	if oldName == "" || !ops.Has(Create) {
		return ops
	}
	return ops&^Create | Rename
}

// arrivalOps maps what the watches allowed of arrivalFilter(ops, oldName) back onto ops: the
// arrival's Rename is reported as the Create it is.
func arrivalOps(ops Op, oldName string, allowed Op) Op {
	if oldName == "" || !ops.Has(Create) {
		return allowed
	}
	out := allowed &^ Rename
	if allowed.Has(Rename) {
		out |= Create
		if ops.Has(Rename) {
			out |= Rename // a Rename of its own in the same event (a merged MovedFrom)
		}
	}
	return out
}

//go:build linux

package backend

import (
	"github.com/fsnotifyd/fsnotifyd/engine"
)

// cacheVerdict remembers an allow in the kernel: an evictable ignore mark for the event's
// inode and permission event (not surviving modification), so that later accesses skip
// userspace until the file is modified, renamed or linked, a group starts to care
// (PermissionHook), the policy changes (FlushVerdictCache), or the inode is evicted. The
// allow was decided on the file's content and on its name: it is cached only for a pinned
// object (pinnedChain), on a filesystem whose names the FID group watches, if nothing moved
// the object's ctime or dropped name marks since its path was read (then a write, rename,
// link or chmod may have slipped in), and while no engine mark has a permission ignore mask
// that a modification would clear (VolatilePermissionIgnores).
func (b *Backend) cacheVerdict(p *permEvent, ev *engine.Event, v *view) {
	mask := uint64(ev.Mask & engine.PermissionEvents)
	fv := v.fsOf(ev.Inode.Hi)
	if mask == 0 || fv == nil || p.st.IsDir() || b.eng.VolatilePermissionIgnores() {
		return
	}
	fs := fv.state
	if !fv.fidWatched || !b.fidAlive() {
		if b.canFID() {
			select {
			case b.janitor <- ignoreRequest{fs: fs, watchNames: true}:
			default:
			}
		}
		return
	}
	path := p.Path()
	if path == "" {
		return
	}
	if _, ok := b.pinnedChain(fs, int(p.fd), p.st, path); !ok {
		return
	}
	if b.placeNameMark(fs, int(p.fd), ev.Inode, purposeCache, kFD, mask, false, p.markGen, p.cacheGn, p.st.Ctime) {
		b.stats.VerdictCached.Add(1)
	}
}

// FlushVerdictCache forgets every cached allow (call it when the policy changes): later
// accesses are decided again.
func (b *Backend) FlushVerdictCache() {
	// A decision in flight that read the generation before this cannot record its mark.
	b.cacheGen.Add(1)
	for _, fv := range b.view.Load().fs {
		b.dropNameMarks(fv.state, engine.ID{}, purposeCache)
	}
}

// permissionHook is the engine's PermissionHook: a group may now take permission events it
// did not take when the cached allows were decided, so they go.
func (b *Backend) permissionHook(engine.Object) { b.FlushVerdictCache() }

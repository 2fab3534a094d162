package sys

// Exported for the external tests (package sys_test).
var ResetProbes = resetProbes

// SetStatxNullPath makes statxEmptyPath pass a NULL path with AT_EMPTY_PATH (on) or "" (as
// after an older kernel's EFAULT), until restore.
func SetStatxNullPath(on bool) (restore func()) {
	old := statxNoNull.Load()
	statxNoNull.Store(!on)
	return func() { statxNoNull.Store(old) }
}

// StatxNullPathUsed reports whether statxEmptyPath still passes a NULL path (no EFAULT seen).
func StatxNullPathUsed() bool { return !statxNoNull.Load() }

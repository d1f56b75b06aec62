//go:build !linux

package bolt

// dropResident does nothing where madvise(MADV_DONTNEED) on a shared file
// mapping is not known to be harmless.
func dropResident(addr, n uintptr) error { return nil }

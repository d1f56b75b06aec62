//go:build linux

package bolt

import "syscall"

// dropResident asks the kernel to drop n bytes of this process's mapping
// at addr from its resident set (madvise MADV_DONTNEED). Only called on
// bbolt's map, which is PROT_READ and MAP_SHARED: its pages are never
// dirty, so dropping them loses nothing and they refault from the page
// cache. (On a private or anonymous mapping this would zero memory.)
func dropResident(addr, n uintptr) error {
	if n == 0 {
		return nil
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, n, syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}

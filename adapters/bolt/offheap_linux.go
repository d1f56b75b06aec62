//go:build linux

package bolt

import "syscall"

// allocBlock returns n bytes of anonymous memory mapped outside the Go
// heap, and the function that unmaps them (heap memory when the map
// fails). Only for bytes without Go pointers.
func allocBlock(n int) ([]byte, func()) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), func() {}
	}
	return b, func() { _ = syscall.Munmap(b) }
}

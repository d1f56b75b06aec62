//go:build !linux

package bolt

// allocBlock returns n bytes of heap memory where anonymous maps are not
// used.
func allocBlock(n int) ([]byte, func()) { return make([]byte, n), func() {} }

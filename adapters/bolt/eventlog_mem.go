package bolt

import (
	"unsafe"

	bbolt "go.etcd.io/bbolt"
)

// releaseMapped drops the pages of tx's file that the process has mapped
// in (see [Log.ReleaseMemory]). tx must be a read transaction: it holds
// bbolt's map lock (read side), so no remap can move or shrink the map
// while it runs, and every page below tx.Size() lies inside the map
// (bbolt maps at least the whole file and remaps before a commit that
// grows it becomes visible).
func releaseMapped(tx *bbolt.Tx) error {
	return dropResident(tx.DB().Info().Data, uintptr(tx.Size()))
}

// faultAround is what one page fault on the map may bring into the
// resident set: Linux maps the cached pages of a 64 KiB window around the
// faulting page (fault_around_bytes). A scan touches leaf pages that are
// scattered over the file (copy-on-write), so it maps in far more than
// the records it reads: counting bytes read undercounts RSS up to 16x.
const faultAround = 64 << 10

// mapEstimate bounds the bytes a read has mapped in: one fault-around
// window per window it entered, plus values longer than a window.
type mapEstimate struct {
	bytes int
	last  uintptr
}

func (m *mapEstimate) touch(v []byte) {
	if len(v) == 0 {
		return
	}
	if w := uintptr(unsafe.Pointer(unsafe.SliceData(v))) / faultAround; w != m.last {
		m.last = w
		m.bytes += faultAround
	}
	if len(v) > faultAround {
		m.bytes += len(v)
	}
}

package textpages

import (
	"os"
	"reflect"

	"golang.org/x/sys/unix"
)

// Release unmaps the program's read-only file pages (see the package
// comment) and returns how many bytes of mappings it covered. Safe at any
// time: the pages are clean copies of the file, so a later touch maps the
// same bytes again.
func Release() (int, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range Readonly(maps, reflect.ValueOf(Release).Pointer()) {
		// By address: these are mappings, not Go memory.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, r.Start, uintptr(r.Len()), unix.MADV_DONTNEED); e != 0 {
			return n, e
		}
		n += r.Len()
	}
	return n, nil
}

package textpages

import (
	"errors"
	"os"
	"reflect"

	"golang.org/x/sys/unix"
)

// Release takes the program's read-only file pages out of memory (see the
// package comment) and returns how many bytes of mappings it covered. Safe
// at any time: the pages are clean copies of the file, so a later touch
// reads the same bytes again.
func Release() (int, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range Readonly(maps, reflect.ValueOf(Release).Pointer()) {
		if err := release(r); err != nil {
			return n, err
		}
		n += r.Len()
	}
	return n, nil
}

// release advises the kernel on one range, by address: these are
// mappings, not Go memory. MADV_RANDOM first: a later fault then reads and
// maps the page it needs, not a readahead window mapped 64 kB at a time.
// MADV_PAGEOUT (Linux 5.4; unknown before, EINVAL) reclaims the pages only
// this process maps; MADV_DONTNEED then unmaps the rest, which another
// process maps too (a second daemon on a test machine, a `go-pmtud status`
// running), so they stop counting for this one.
func release(r Range) error {
	if err := madvise(r, unix.MADV_RANDOM); err != nil {
		return err
	}
	if err := madvise(r, unix.MADV_PAGEOUT); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return madvise(r, unix.MADV_DONTNEED)
}

func madvise(r Range, advice int) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, r.Start, uintptr(r.Len()), uintptr(advice)); e != 0 {
		return e
	}
	return nil
}

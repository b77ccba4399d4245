// Package offheap maps arrays of pointer-free values outside the Go heap,
// for the policy's tables: the garbage collector neither scans them nor
// counts them in the heap whose size sets its next goal (a heap of 3 MB of
// tables would otherwise be let grow to 6 before a collection), an array
// replaced by a bigger one goes back to the kernel at once instead of
// waiting as garbage, and pages never written are never resident.
package offheap

import (
	"fmt"
	"reflect"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Make returns n zeroed values of T mapped outside the Go heap; free them
// with Free, never twice. T must hold no pointers: the garbage collector
// does not look into this memory, so a pointer kept here would not keep
// what it points to alive. Make panics on such a T (a programming error).
func Make[T any](n int) ([]T, error) {
	var zero T
	if t := reflect.TypeOf(&zero).Elem(); !pointerFree(t) {
		panic(fmt.Sprintf("offheap: %v holds pointers", t))
	}
	size := int(unsafe.Sizeof(zero))
	if n <= 0 || size == 0 {
		return nil, nil
	}
	b, err := unix.Mmap(-1, 0, n*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("offheap: mapping %d bytes: %w", n*size, err)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n), nil
}

// Free unmaps s, which Make returned; s must not be used afterwards.
func Free[T any](s []T) error {
	if cap(s) == 0 {
		return nil
	}
	var zero T
	s = s[:cap(s)]
	return unix.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero))))
}

// pointerFree reports whether values of t hold no pointers at all.
func pointerFree(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return t.Len() == 0 || pointerFree(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !pointerFree(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

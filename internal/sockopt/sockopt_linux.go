// Package sockopt holds the socket options more than one receiver sets or
// reads: the receive buffer and the kernel's drop count.
package sockopt

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetReceiveBuffer sets fd's receive buffer to n bytes with SO_RCVBUFFORCE
// (CAP_NET_ADMIN, which the callers need anyway), so net.core.rmem_max
// does not cap it; without the capability it falls back to SO_RCVBUF,
// capped by rmem_max.
func SetReceiveBuffer(fd, n int) error {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) == nil {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
}

// skMeminfoDrops indexes the drop count in SO_MEMINFO's array
// (include/uapi/linux/sock_diag.h, SK_MEMINFO_DROPS): datagrams the kernel
// dropped for the socket, mostly because its receive buffer was full. It
// is the "drops" column of /proc/net/udp.
const skMeminfoDrops = 8

// Drops reads fd's drop count (a 32-bit counter in the kernel).
func Drops(fd int) (uint64, error) {
	var mem [16]uint32 // the kernel fills what it has (9 values today)
	size := uint32(unsafe.Sizeof(mem))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mem)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, syscall.Errno(errno)
	}
	if size < (skMeminfoDrops+1)*4 {
		return 0, errors.New("sockopt: SO_MEMINFO has no drop count")
	}
	return uint64(mem[skMeminfoDrops]), nil
}

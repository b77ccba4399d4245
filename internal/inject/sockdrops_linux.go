package inject

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// skMeminfoDrops indexes the socket's drop count in SO_MEMINFO's array
// (include/uapi/linux/sock_diag.h, SK_MEMINFO_DROPS): datagrams the kernel
// dropped for this socket, mostly because its receive buffer was full. It
// is the "drops" column of /proc/net/udp.
const skMeminfoDrops = 8

// socketDrops reads the drop count of the socket behind raw.
func socketDrops(raw syscall.RawConn) (uint64, error) {
	var mem [16]uint32 // the kernel fills what it has (9 values today)
	size := uint32(unsafe.Sizeof(mem))
	var errno syscall.Errno
	err := raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem)), uintptr(unsafe.Pointer(&size)), 0)
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	if size < (skMeminfoDrops+1)*4 {
		return 0, errors.New("SO_MEMINFO: no drop count")
	}
	return uint64(mem[skMeminfoDrops]), nil
}

package daemon

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// instanceLock is the abstract unix socket address one go-pmtud binds for
// its lifetime. Abstract unix sockets belong to the network namespace, so
// this means one go-pmtud per node (per namespace): two would own the same
// nftables table "inet go-pmtud", whatever their --nflog-group, and the
// first to exit would remove the other's rule. The kernel frees the
// address when the process dies, even by SIGKILL, so it never goes stale.
const instanceLock = "@go-pmtud"

// lockInstance binds instanceLock. The socket is bound but never listens:
// nobody can connect to it or queue anything on it.
func lockInstance() (io.Closer, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("instance lock: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: instanceLock}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("another go-pmtud is already running in this network namespace " +
				"(abstract unix socket " + instanceLock + " is taken); two would both own the nftables table " +
				"inet go-pmtud, so this one refuses to start")
		}
		return nil, fmt.Errorf("instance lock %s: %w", instanceLock, err)
	}
	return fdCloser(fd), nil
}

type fdCloser int

func (f fdCloser) Close() error { return unix.Close(int(f)) }

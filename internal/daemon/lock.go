package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// One go-pmtud per network namespace: two would own the same nftables
// table "inet go-pmtud", whatever their --nflog-group, and the first to
// exit would remove the other's rule.
//
// The lock is an empty nftables table created with the owner flag
// (NFT_TABLE_F_OWNER, Linux 5.12+). Creating a table needs CAP_NET_ADMIN in
// the namespace, so an unprivileged process cannot squat it (as it could
// an abstract unix socket name); only the owning netlink socket may change
// or delete it, and the kernel deletes it when that socket closes, even on
// SIGKILL, so it never goes stale. `nft flush ruleset` skips it.
const (
	lockTable       = "go-pmtud-lock"
	nftTableFOwner  = 0x2 // NFT_TABLE_F_OWNER
	abstractLock    = "@go-pmtud"
	lockTakenReason = "two would both own the nftables table inet go-pmtud, so this one refuses to start"
)

var errLockTaken = errors.New("another go-pmtud is already running in this network namespace")

// lockInstance takes the lock in the calling thread's namespace.
func lockInstance() (io.Closer, error) { return lockInstanceIn(0) }

// lockInstanceIn takes the lock in the namespace nsFd (0: the caller's).
// On kernels without owner tables it falls back to the abstract socket.
func lockInstanceIn(nsFd int) (io.Closer, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFd})
	if err != nil {
		return nil, fmt.Errorf("instance lock: netfilter netlink socket: %w", err)
	}
	if err := createOwnedTable(c); err != nil {
		c.Close()
		switch {
		case errors.Is(err, unix.EEXIST), errors.Is(err, unix.EPERM) && tableExists(nsFd):
			// EPERM with the table present: another socket owns it.
			return nil, fmt.Errorf("%w (it holds the nftables table inet %s; if no go-pmtud runs, a privileged process created that table: `nft list table inet %s`); %s",
				errLockTaken, lockTable, lockTable, lockTakenReason)
		case errors.Is(err, unix.EOPNOTSUPP):
			return lockAbstract() // Linux < 5.12: no owner flag
		}
		return nil, fmt.Errorf("instance lock: creating nftables table inet %s: %w", lockTable, err)
	}
	return c, nil
}

// createOwnedTable sends one batch creating the owner-flagged table,
// failing if it exists (NLM_F_EXCL).
func createOwnedTable(c *netlink.Conn) error {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_TABLE_NAME, lockTable)
	ae.Uint32(unix.NFTA_TABLE_FLAGS, nftTableFOwner)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	batch := nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	msgs := []netlink.Message{
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request}, Data: batch},
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl},
			Data: append(nfgenmsg(unix.NFPROTO_INET, 0), attrs...)},
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request}, Data: batch},
	}
	if _, err := c.SendMessages(msgs); err != nil {
		return err
	}
	_, err = c.Receive() // the table's ack, or its error
	return err
}

// tableExists asks for the lock table on a fresh socket (needs
// CAP_NET_ADMIN like every nftables request; false when refused).
func tableExists(nsFd int) bool {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFd})
	if err != nil {
		return false
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_TABLE_NAME, lockTable)
	attrs, err := ae.Encode()
	if err != nil {
		return false
	}
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETTABLE),
			Flags: netlink.Request | netlink.Acknowledge},
		Data: append(nfgenmsg(unix.NFPROTO_INET, 0), attrs...),
	})
	return err == nil
}

// nfgenmsg is the netfilter netlink header: family, version 0, resource id.
func nfgenmsg(family uint8, resID uint16) []byte {
	b := []byte{family, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(b[2:], resID)
	return b
}

// lockAbstract binds the abstract unix socket @go-pmtud: the lock on
// kernels without owner tables, where any process could squat it.
func lockAbstract() (io.Closer, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("instance lock: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: abstractLock}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("%w (abstract unix socket %s is taken); %s", errLockTaken, abstractLock, lockTakenReason)
		}
		return nil, fmt.Errorf("instance lock %s: %w", abstractLock, err)
	}
	return fdCloser(fd), nil
}

type fdCloser int

func (f fdCloser) Close() error { return unix.Close(int(f)) }

//go:build linux

package inject

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/lograte"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/sockopt"
)

// DefaultDevice is the TUN device's name (--tunnel-device).
const DefaultDevice = "pmtud0"

// dummyAddr4 is the IPv4 dummy address (RFC 7600, IANA 192.0.0.8/32), for
// an interface that needs an IPv4 address but has none of its own.
var dummyAddr4 = netip.MustParseAddr("192.0.0.8")

// Config configures a Receiver.
type Config struct {
	// Port is the UDP port to listen on, both families (--tunnel-port).
	// Required: the receiver does not import the sender for its default.
	Port int
	// Device is the TUN device to create (default DefaultDevice). It must
	// not exist yet: the receiver owns it and it disappears with it.
	Device string
	// Peer returns the name of the current peer owning an address;
	// datagrams from anybody else are dropped. Called for every datagram:
	// it must be cheap and safe for concurrent use (an atomic snapshot).
	Peer func(netip.Addr) (name string, ok bool)
	// Keys verify datagrams (the key file). Nil only with Insecure.
	Keys KeySource
	// Insecure accepts unsigned datagrams when Keys is nil: labs only.
	Insecure bool
	// RelayFor are prefixes of VIPs only DNATed here (--relay-for): PTBs
	// to them are injected although no interface holds them.
	RelayFor []netip.Prefix
	// IsVIP, if set, reports other such VIPs (learned from Services).
	IsVIP func(netip.Addr) bool
	// Skew and the receive limits; zero: the defaults (see GateConfig).
	Skew                   time.Duration
	PeerRate, GlobalRate   float64
	PeerBurst, GlobalBurst int
	// Limits are the PTB parser's limits (the daemon's --strict).
	Limits ptb.Limits
	// Logger gets the host settings changed and rejected datagrams (debug,
	// rate-limited). May be nil.
	Logger *slog.Logger
	// Registerer gets gopmtud_tunnel_received_total. May be nil.
	Registerer *expo.Registry
}

// Receiver listens for tunnel datagrams and injects their packets through
// a TUN device. Open it, Run it, Close it.
type Receiver struct {
	cfg     Config
	log     *slog.Logger
	conn    *net.UDPConn
	raw     syscall.RawConn // conn's, kept for SocketDrops after Close
	drops   atomic.Uint64   // the last socket drop count read
	tun     *os.File
	ctl     int // AF_INET socket for interface ioctls, in the device's namespace
	ifindex int
	metrics *metrics
	gate    *Gate
	local   *localAddrs

	// rpFilterAll is net.ipv4.conf.all.rp_filter, opened in the device's
	// namespace (a net sysctl file stays bound to the opener's namespace)
	// and read again for each Detail, so a fix shows without a restart:
	// strict (1) means the kernel drops every IPv4 packet on the device.
	rpFilterAll *os.File

	running atomic.Bool
	errMu   sync.Mutex
	err     error // why Run stopped, if it did on its own

	msg  ptb.Message // scratch for the gate, used only by Run's goroutine
	logs lograte.Limiter
}

// Open creates and configures the TUN device and binds the UDP port, in
// the calling thread's network namespace (as with the transports, call it
// inside netnsutil.Do to use another). On error nothing is left behind.
func Open(cfg Config) (r *Receiver, err error) {
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("inject: port %d out of range 1..65535", cfg.Port)
	}
	if cfg.Device == "" {
		cfg.Device = DefaultDevice
	}
	r = &Receiver{cfg: cfg, log: cfg.Logger, ctl: -1, logs: lograte.Limiter{PerSecond: 5}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.local, err = openLocalAddrs(); err != nil {
		return r, fmt.Errorf("inject: listing this node's addresses: %w", err)
	}
	r.gate, err = NewGate(GateConfig{
		Peer: cfg.Peer, Keys: cfg.Keys, Insecure: cfg.Insecure, Skew: cfg.Skew,
		PeerRate: cfg.PeerRate, PeerBurst: cfg.PeerBurst, GlobalRate: cfg.GlobalRate, GlobalBurst: cfg.GlobalBurst,
		IsLocal: r.local.isLocal, IsBroadcast: r.local.isBroadcast, IsVIP: cfg.IsVIP, RelayFor: cfg.RelayFor,
		Limits: cfg.Limits,
	})
	if err != nil {
		return r, err
	}
	if err := r.openDevice(); err != nil {
		return r, err
	}
	r.conn, err = net.ListenUDP("udp", &net.UDPAddr{Port: cfg.Port})
	if err != nil {
		return r, fmt.Errorf("inject: listening on udp port %d: %w", cfg.Port, err)
	}
	if r.raw, err = r.conn.SyscallConn(); err != nil {
		return r, err
	}
	if err := control(r.raw, func(fd int) error { return sockopt.SetReceiveBuffer(fd, ReceiveBuffer) }); err != nil {
		return r, fmt.Errorf("inject: udp port %d: receive buffer: %w", cfg.Port, err)
	}
	r.metrics = newMetrics(cfg.Registerer, r.SocketDrops)
	return r, nil
}

// SocketDrops is how many datagrams the kernel dropped at the socket (its
// receive buffer full): relays lost before the gate could see them. After
// Close it keeps the last count read.
func (r *Receiver) SocketDrops() uint64 {
	var n uint64
	if control(r.raw, func(fd int) (err error) { n, err = sockopt.Drops(fd); return err }) == nil {
		r.drops.Store(n)
	}
	return r.drops.Load()
}

// control runs f on raw's descriptor, and returns f's error or Control's.
func control(raw syscall.RawConn, f func(fd int) error) error {
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// openDevice creates the TUN device (IFF_TUN|IFF_NO_PI: we write bare IP
// packets), makes it accept what we inject, and brings it up.
func (r *Receiver) openDevice() error {
	name := r.cfg.Device
	if len(name) >= unix.IFNAMSIZ || name == "" || strings.ContainsAny(name, "/ %") {
		return fmt.Errorf("inject: %q is not a valid interface name", name)
	}
	// An existing interface of that name is somebody else's; attaching to
	// a persistent TUN would also leave it behind when we exit.
	if _, err := net.InterfaceByName(name); err == nil {
		return fmt.Errorf("inject: interface %s already exists (another go-pmtud, or not ours): pick another --tunnel-device", name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("inject: opening /dev/net/tun (the container needs it mounted, and CAP_NET_ADMIN): %w", err)
	}
	r.tun = os.NewFile(uintptr(fd), "/dev/net/tun")
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("inject: creating TUN device %s: %w", name, err)
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("inject: TUN device %s: %w", name, err)
	}
	r.ifindex = ifi.Index
	if err := r.configure(name); err != nil {
		return err
	}
	// Kept open: Err looks at the device through it, from any thread.
	if r.ctl, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	flags, err := r.flags()
	if err == nil {
		err = r.setFlags(flags | unix.IFF_UP)
	}
	if err != nil {
		return fmt.Errorf("inject: bringing %s up: %w", name, err)
	}
	r.log.Info("tunnel device up", "device", name, "ifindex", r.ifindex)
	return nil
}

// configure sets the device's own sysctls; they vanish with the device, so
// nothing needs restoring. Nothing outside the device is changed.
//
// The values are written through rtnetlink (RTM_SETLINK, IFLA_AF_SPEC), not
// /proc/sys: container runtimes mount /proc/sys read-only in unprivileged
// containers, and CAP_NET_ADMIN is all rtnetlink asks for. /proc/sys is
// only read, to log the old values.
func (r *Receiver) configure(name string) error {
	// The device carries no IPv6 address. IPv6 would give it a link-local
	// one (and send router solicitations from it) when it comes up.
	v6 := "net.ipv6.conf." + name + "."
	if _, err := os.Stat(sysctlPath(v6 + "addr_gen_mode")); err == nil {
		err := r.set(v6+"addr_gen_mode", "1", func() error { return setIPv6AddrGenMode(r.ifindex, in6AddrGenModeNone) })
		if err != nil {
			return err
		}
		// ip6_rcv drops everything on a device with IPv6 disabled. This
		// one has no rtnetlink attribute: /proc/sys or nothing.
		err = r.set(v6+"disable_ipv6", "0", func() error { return os.WriteFile(sysctlPath(v6+"disable_ipv6"), []byte("0"), 0o644) })
		if err != nil {
			r.log.Error("IPv6 tunnel copies will be dropped: IPv6 is disabled on the tunnel device", "err", err)
		}
	}
	// IPv4 reverse-path filtering (fib_validate_source, measured in
	// TestReversePathFilterMatrix): the injected packet's source is the
	// router, routed via the uplink, not via this device. The effective mode
	// is max(all, device): ours is zeroed here; `all` is the operator's.
	//   - strict (1) fails: the route back is not via this device;
	//   - loose (2) passes if the router is reachable at all, but only on a
	//     device with an IPv4 address: without one the kernel goes to "last
	//     resort" and rejects. Hence the dummy address below.
	err := r.set("net.ipv4.conf."+name+".rp_filter", "0", func() error { return setIPv4Conf(r.ifindex, ipv4DevconfRPFilter, 0) })
	if err != nil {
		return err
	}
	if err := addHostAddr(r.ifindex, dummyAddr4); err != nil {
		return fmt.Errorf("inject: adding %s/32 to %s: %w", dummyAddr4, name, err)
	}
	r.log.Info("tunnel device address", "device", name, "address", dummyAddr4.String()+"/32", "scope", "host",
		"why", "RFC 7600 dummy address: lets loose reverse-path filtering (all.rp_filter=2) pass injected IPv4 copies; "+
			"never picked as a source, no prefix route")
	if r.rpFilterAll, err = os.Open(sysctlPath("net.ipv4.conf.all.rp_filter")); err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	if all := r.rpFilterAllValue(); !rpFilterAllows(all) {
		r.log.Error("IPv4 tunnel copies will be dropped by this node's reverse-path filter: "+
			"net.ipv4.conf.all.rp_filter is strict (1) and applies to "+name+" whatever its own setting; "+
			"set net.ipv4.conf.all.rp_filter to 2 (loose) or 0, and keep strict mode per interface where wanted "+
			"(net.ipv4.conf.<uplink>.rp_filter=1 still applies to that interface), or use another transport",
			"net.ipv4.conf.all.rp_filter", all)
	}
	return nil
}

// rpFilterAllows reports whether net.ipv4.conf.all.rp_filter lets the
// injected IPv4 copies through: off (0), or loose (2) on a device with an
// address (ours has the dummy one). Strict (1) never does.
func rpFilterAllows(all string) bool { return all == "0" || all == "2" }

// addHostAddr is `ip addr add A/32 dev DEV scope host noprefixroute`. Scope
// host keeps the address out of source selection (inet_select_addr takes
// only addresses of a scope at most the route's, and host is the
// narrowest); a /32 gets no prefix route anyway, noprefixroute says so
// twice. The kernel adds only the local route for A (table local), and
// removes address and route with the device.
func addHostAddr(ifindex int, a netip.Addr) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfAddrmsg(unix.AF_INET)
	msg.Index = uint32(ifindex)
	msg.Prefixlen = 32
	msg.Scope = unix.RT_SCOPE_HOST
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, a.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, a.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(unix.IFA_F_NOPREFIXROUTE)))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func (r *Receiver) rpFilterAllValue() string {
	var b [16]byte
	n, err := r.rpFilterAll.ReadAt(b[:], 0)
	if n == 0 && err != nil {
		return "unreadable (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(b[:n]))
}

// set makes the sysctl key hold value by calling apply, checks that it
// does, and logs the change.
func (r *Receiver) set(key, value string, apply func() error) error {
	old, err := readSysctl(key)
	if err != nil {
		return err
	}
	if old == value {
		r.log.Info("tunnel device setting", "sysctl", key, "value", value, "changed", false)
		return nil
	}
	if err := apply(); err != nil {
		return fmt.Errorf("inject: setting %s=%s: %w", key, value, err)
	}
	if now, err := readSysctl(key); err != nil || now != value {
		return fmt.Errorf("inject: %s is %q after setting it to %s (%v)", key, now, value, err)
	}
	r.log.Info("tunnel device setting", "sysctl", key, "from", old, "to", value, "changed", true)
	return nil
}

// ipv4DevconfRPFilter is IPV4_DEVCONF_RP_FILTER (include/uapi/linux/ip.h):
// rp_filter's attribute type inside IFLA_INET_CONF.
const ipv4DevconfRPFilter = 8

// setIPv4Conf sets one per-device IPv4 sysctl through rtnetlink, as
// inet_set_link_af does for IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF.
// The netlink socket is opened in the calling thread's namespace.
func setIPv4Conf(ifindex int, id int, v uint32) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	conf := nl.NewRtAttr(unix.IFLA_INET_CONF, nil)
	conf.AddRtAttr(id, nl.Uint32Attr(v))
	af := nl.NewRtAttr(unix.AF_INET, conf.Serialize())
	req.AddData(nl.NewRtAttr(unix.IFLA_AF_SPEC, af.Serialize()))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// in6AddrGenModeNone is IN6_ADDR_GEN_MODE_NONE (include/uapi/linux/if_link.h).
const in6AddrGenModeNone = 1

// setIPv6AddrGenMode is `ip link set DEV addrgenmode MODE`.
func setIPv6AddrGenMode(ifindex int, mode uint8) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	gen := nl.NewRtAttr(unix.IFLA_INET6_ADDR_GEN_MODE, []byte{mode})
	af := nl.NewRtAttr(unix.AF_INET6, gen.Serialize())
	req.AddData(nl.NewRtAttr(unix.IFLA_AF_SPEC, af.Serialize()))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func sysctlPath(key string) string { return "/proc/sys/" + strings.ReplaceAll(key, ".", "/") }

// readSysctl reads a net sysctl of the calling thread's network namespace.
func readSysctl(key string) (string, error) {
	b, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return "", fmt.Errorf("inject: sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// flags reads the device's interface flags, after checking that our index
// still has our name (somebody may have deleted or renamed it).
func (r *Receiver) flags() (uint16, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return 0, err
	}
	ifr.SetUint32(uint32(r.ifindex))
	if err := unix.IoctlIfreq(r.ctl, unix.SIOCGIFNAME, ifr); err != nil || ifr.Name() != r.cfg.Device {
		return 0, fmt.Errorf("tunnel device %s is gone", r.cfg.Device)
	}
	if err := unix.IoctlIfreq(r.ctl, unix.SIOCGIFFLAGS, ifr); err != nil {
		return 0, err
	}
	return ifr.Uint16(), nil
}

func (r *Receiver) setFlags(flags uint16) error {
	ifr, err := unix.NewIfreq(r.cfg.Device)
	if err != nil {
		return err
	}
	ifr.SetUint16(flags)
	return unix.IoctlIfreq(r.ctl, unix.SIOCSIFFLAGS, ifr)
}

// IfIndex is the TUN device's interface index: a packet captured with it
// as input interface is a copy we injected.
func (r *Receiver) IfIndex() int { return r.ifindex }

// Device is the TUN device's name.
func (r *Receiver) Device() string { return r.cfg.Device }

// Run receives datagrams until ctx is cancelled (it then returns nil) or
// the socket fails (it returns why; Err reports it too).
func (r *Receiver) Run(ctx context.Context) error {
	// Unblock the read when ctx ends.
	stop := context.AfterFunc(ctx, func() { r.conn.SetReadDeadline(time.Now()) })
	defer stop()
	r.running.Store(true)
	defer r.running.Store(false)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.local.run(lctx)
	buf := make([]byte, 1<<16)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = fmt.Errorf("inject: receiving on udp port %d: %w", r.cfg.Port, err)
			r.errMu.Lock()
			r.err = err
			r.errMu.Unlock()
			return err
		}
		r.handle(buf[:n], from.Addr())
	}
}

// handle takes one datagram through the gate and the device. It does not
// allocate unless it logs.
func (r *Receiver) handle(d []byte, from netip.Addr) Result {
	pkt, res, reason := r.gate.Classify(d, from, time.Now(), &r.msg)
	if res == Injected {
		if _, err := r.tun.Write(pkt); err != nil {
			res = InjectError
			if r.logs.Allow(time.Now()) {
				r.log.Warn("injecting into the tunnel device failed", "device", r.cfg.Device, "err", err)
			}
		}
	}
	r.metrics.byResult[res].Inc()
	if res != Injected && res != InjectError && r.log.Enabled(context.Background(), slog.LevelDebug) && r.logs.Allow(time.Now()) {
		r.log.Debug("tunnel datagram dropped", "result", res.String(), "from", from, "bytes", len(d), "reason", reason.String())
	}
	return res
}

// Err is nil while the receiver works: Run is receiving and the device is
// up (somebody may set it down or delete it under us). For readiness.
func (r *Receiver) Err() error {
	r.errMu.Lock()
	err := r.err
	r.errMu.Unlock()
	if err != nil {
		return err
	}
	if !r.running.Load() {
		return errors.New("tunnel receiver not running")
	}
	flags, err := r.flags()
	if err != nil {
		return err
	}
	if flags&unix.IFF_UP == 0 {
		return fmt.Errorf("tunnel device %s is down", r.cfg.Device)
	}
	return nil
}

// Detail says what the receiver does, and what the host's settings will
// not let it do (for readiness detail).
func (r *Receiver) Detail() string {
	s := fmt.Sprintf("udp port %d -> %s", r.cfg.Port, r.cfg.Device)
	if all := r.rpFilterAllValue(); !rpFilterAllows(all) {
		s += fmt.Sprintf("; IPv4 copies are dropped by the kernel: net.ipv4.conf.all.rp_filter=%s (want 2 or 0, not strict 1)", all)
	}
	return s
}

// Close closes the socket and the TUN device; the kernel removes the
// device, and its sysctls with it. Safe on a partly opened Receiver.
func (r *Receiver) Close() error {
	var errs []error
	if r.conn != nil {
		errs = append(errs, r.conn.Close())
		r.conn = nil
	}
	if r.local != nil {
		r.local.close()
		r.local = nil
	}
	if r.rpFilterAll != nil {
		errs = append(errs, r.rpFilterAll.Close())
		r.rpFilterAll = nil
	}
	if r.ctl >= 0 {
		errs = append(errs, unix.Close(r.ctl))
		r.ctl = -1
	}
	if r.tun != nil {
		errs = append(errs, r.tun.Close())
		r.tun = nil
		if r.ifindex != 0 {
			r.log.Info("tunnel device removed", "device", r.cfg.Device)
		}
	}
	return errors.Join(errs...)
}

// ReceiveBuffer is the tunnel socket's receive buffer. It holds the bursts
// the kernel's per-peer limit lets through (a few hundred datagrams per
// peer) while the receiver is descheduled; the default (about 200 KiB,
// a few hundred datagrams in all) overflowed under one peer's flood. Memory
// is only used while datagrams wait.
const ReceiveBuffer = 4 << 20

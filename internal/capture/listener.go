package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultBufsize is the socket receive buffer used when Config.Bufsize is 0.
// Each logged packet is its own netlink message of a few KiB of kernel
// memory, so this holds roughly a thousand messages of backlog; the memory
// is only used while the handler falls behind.
const DefaultBufsize = 4 << 20

// snaplen asks for the whole packet (NFULNL_COPY_RANGE_MAX): a PTB is at
// most 1280 bytes (IPv6) or 576 (IPv4) by RFC, but a router may quote more.
const snaplen = 0xffff

// Restart limits: a socket that keeps dying is not worth reopening forever;
// the daemon should exit and let its supervisor restart it.
const (
	maxReopenAttempts = 5
	maxRestartsPerMin = 10
)

// ErrGroupInUse is matched (errors.Is) by Open's error when another socket,
// in this process or another, is already bound to the NFLOG group.
var ErrGroupInUse = errors.New("nflog group already in use")

// Config says which NFLOG group to read and how.
type Config struct {
	// Group is the NFLOG group the firewall rule logs to (nft `log group N`).
	Group uint16
	// NetNS is an fd of the network namespace to listen in; 0 means the
	// current one. NFLOG groups are per namespace.
	NetNS int
	// Bufsize is the socket receive buffer in bytes; 0 means DefaultBufsize.
	// As root it is set with SO_RCVBUFFORCE, so net.core.rmem_max does not cap it.
	Bufsize int
	// BusyPoll, when positive, keeps the receiving goroutine polling the
	// socket (non-blocking, its CPU busy) for this long after each datagram
	// before it waits in the netpoller again: the CPU stays awake while
	// messages keep coming, and a message need not wake it (about 100 µs on
	// some VMs). At most MaxBusyPoll. 0: always wait (no CPU while idle).
	BusyPoll time.Duration
	// Idle, if set, is called on the receiving goroutine, never at once
	// with the handler, once no packet has come for IdleAfter, and again
	// every IdleAfter while it returns true: what the packet path does only
	// when packets come (expiring state, giving back memory a burst grew)
	// then also happens when they stop. Only while Run runs.
	Idle      func(now time.Time) (more bool)
	IdleAfter time.Duration
	// Logger receives the listener's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Stats are the listener's counters since Open. All only grow.
type Stats struct {
	Received uint64 // packets handed to the handler
	Overruns uint64 // ENOBUFS reports: the receive buffer was full and the kernel dropped messages
	Lost     uint64 // messages the kernel logged but the listener never read (NFLOG sequence gaps)
	Restarts uint64 // times the socket was reopened after a fatal receive error
}

// Listener reads one NFLOG group and hands each packet to a handler as soon
// as the kernel logs it.
type Listener struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	sess   *session // nil once closed
	closed chan struct{}
	once   sync.Once

	running atomic.Bool
	started chan struct{} // closed by Run: until then the hook waits, so no packet is lost before Run

	// hookMu serialises handler calls with Run's exit, so that no handler
	// call starts or is in progress once Run has returned.
	hookMu  sync.Mutex
	handler func(*Packet)
	flush   func() // after each receive's packets (RunBatched); nil: none
	pkt     Packet
	nextSeq uint32

	up       atomic.Bool
	received atomic.Uint64
	overruns atomic.Uint64
	lost     atomic.Uint64
	restarts atomic.Uint64
	lastWarn atomic.Int64 // unix nanoseconds of the last overrun warning
}

// session is one bound NFLOG socket and the goroutine reading it; a
// restart replaces it.
type session struct {
	sock    *nfsock
	closing atomic.Bool
	dead    chan error // the fatal receive error, at most one
	pkt     nflogPacket
}

func (s *session) close() error {
	if s.closing.Swap(true) {
		return nil
	}
	return s.sock.close() // wakes the reader, which then exits
}

// Open binds the NFLOG group in the configured namespace, so that a group
// already taken by another process is reported here, at startup. Packets
// that arrive before Run are held in the socket buffer.
func Open(cfg Config) (*Listener, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Bufsize <= 0 {
		cfg.Bufsize = DefaultBufsize
	}
	l := &Listener{
		cfg:     cfg,
		log:     cfg.Logger.With("nflog_group", cfg.Group),
		closed:  make(chan struct{}),
		started: make(chan struct{}),
	}
	s, err := l.open()
	if err != nil {
		return nil, err
	}
	l.sess = s
	l.up.Store(true)
	return l, nil
}

func (l *Listener) open() (*session, error) {
	sock, err := openNFSock(l.cfg.NetNS, l.cfg.Group, l.cfg.Bufsize)
	if err != nil {
		return nil, err
	}
	s := &session{sock: sock, dead: make(chan error, 1)}
	l.hookMu.Lock()
	l.nextSeq = 0 // a new kernel instance counts from zero
	l.hookMu.Unlock()
	go l.receive(s)
	return s, nil
}

// bindError explains a failed bind. The kernel answers EPERM when another
// socket owns the group (and EBUSY when this socket already does); lacking
// CAP_NET_ADMIN also gives EPERM.
func bindError(group uint16, err error) error {
	if errors.Is(err, unix.EBUSY) || (errors.Is(err, unix.EPERM) && hasNetAdmin()) {
		return &inUseError{group: group, err: err}
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("capture: bind nflog group %d: not permitted (needs CAP_NET_ADMIN): %w", group, err)
	}
	return fmt.Errorf("capture: bind nflog group %d: %w", group, err)
}

type inUseError struct {
	group uint16
	err   error
}

func (e *inUseError) Error() string {
	return fmt.Sprintf("capture: nflog group %d is already in use by another process (another go-pmtud or an ulogd?): %v", e.group, e.err)
}

func (e *inUseError) Unwrap() error        { return e.err }
func (e *inUseError) Is(target error) bool { return target == ErrGroupInUse }

// receive reads session s until it is closed or fails. It starts reading
// only once Run has started, so packets wait in the socket buffer until then.
func (l *Listener) receive(s *session) {
	select {
	case <-l.started:
	case <-l.closed:
		return
	}
	bp := busyPoll{window: min(l.cfg.BusyPoll, MaxBusyPoll)}
	it := idleTimer{}
	if l.cfg.Idle != nil {
		it.after = l.cfg.IdleAfter
	}
	for {
		n, err := l.next(s, &bp)
		if s.closing.Load() {
			return
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			l.idle(s, &it)
			continue
		case errors.Is(err, unix.ENOBUFS):
			l.overrun()
			now := time.Now()
			bp.seen(now) // traffic is heavy: keep polling
			s.sock.deadline(it.seen(now))
			continue
		case err != nil:
			s.dead <- err
			return
		case n == 0:
			continue // polled and found nothing
		}
		now := time.Now() // one receive, one arrival time
		bp.seen(now)
		s.sock.deadline(it.seen(now))
		for i := range n {
			l.datagram(s, s.sock.datagram(i), now)
		}
		l.endBatch()
	}
}

// idle runs when the read deadline passed: the hook if no packet came for
// a period (and Run runs), then the next deadline.
func (l *Listener) idle(s *session, it *idleTimer) {
	now := time.Now()
	call, next := it.due(now)
	if call {
		l.hookMu.Lock()
		more := false
		if l.handler != nil && !s.closing.Load() {
			more = l.cfg.Idle(now)
		}
		l.hookMu.Unlock()
		next = it.done(now, more)
	}
	s.sock.setDeadline(next)
}

// next receives the next datagrams of s: polled without waiting while bp
// says so, else waiting in the netpoller. Polling may return 0.
func (l *Listener) next(s *session, bp *busyPoll) (int, error) {
	if bp.window > 0 && bp.active(time.Now()) {
		return s.sock.poll()
	}
	return s.sock.read()
}

// endBatch calls the flush hook once the packets of one receive were
// handed over, before their buffers are read into again.
func (l *Listener) endBatch() {
	l.hookMu.Lock()
	if l.flush != nil {
		l.flush()
	}
	l.hookMu.Unlock()
}

// overrun counts a full receive buffer: the kernel dropped messages, the
// socket itself is fine, so reading goes on (or we would go deaf).
func (l *Listener) overrun() {
	n := l.overruns.Add(1)
	now := time.Now().UnixNano()
	if last := l.lastWarn.Load(); now-last > int64(10*time.Second) && l.lastWarn.CompareAndSwap(last, now) {
		l.log.Warn("nflog receive buffer overrun: the kernel dropped logged packets; raise the buffer or lower the firewall rate limit",
			"overruns", n, "bufsize", l.cfg.Bufsize)
	}
}

// datagram hands every packet message of one datagram to the handler.
func (l *Listener) datagram(s *session, b []byte, now time.Time) {
	r := nlReader{b: b}
	for {
		typ, _, body, ok, err := r.next()
		if err != nil {
			l.log.Debug("skipping malformed netlink datagram", "err", err, "len", len(b))
			return
		}
		if !ok {
			return
		}
		if typ != nfulnlMsgPkt || parsePacket(body, &s.pkt) != nil {
			continue // acknowledgements, or nothing the kernel would send
		}
		l.deliver(s, &s.pkt, now)
	}
}

// deliver counts sequence gaps and calls the handler, serialised with Run's exit.
func (l *Listener) deliver(s *session, a *nflogPacket, now time.Time) {
	l.hookMu.Lock()
	defer l.hookMu.Unlock()
	if s.closing.Load() {
		return
	}
	if a.HasSeq {
		// uint32 arithmetic makes the wrap-around harmless.
		if gap := a.Seq - l.nextSeq; gap != 0 && gap < 1<<31 {
			l.lost.Add(uint64(gap))
		}
		l.nextSeq = a.Seq + 1
	}
	if l.handler == nil || a.Payload == nil {
		return
	}
	p := &l.pkt
	*p = Packet{Payload: a.Payload, Received: now, IfIndex: a.InDev}
	if a.HwHeader != nil {
		p.SrcMAC, p.DstMAC, p.HasMAC = ethernetMACs(a.HwType, a.HwHeader)
	}
	l.received.Add(1)
	l.handler(p)
}

// Run hands every logged packet to handle, one at a time on one goroutine,
// until ctx is done (it then returns nil) or capture fails for good (it
// returns the error and Up reports false). A socket that fails is reopened
// and the group rebound, a few times. Packet and its Payload are reused after
// handle returns. Once Run returns, handle is not called again. Run (or
// RunBatched) may be called once.
func (l *Listener) Run(ctx context.Context, handle func(*Packet)) error {
	return l.RunBatched(ctx, handle, nil)
}

// RunBatched is Run, and calls flush (if not nil) after the packets of each
// receive, up to 16 at a time: their Payloads stay unchanged until flush
// returns, so handle may keep them and act on them all in flush. flush is
// also called once as Run returns, and neither is called after that.
func (l *Listener) RunBatched(ctx context.Context, handle func(*Packet), flush func()) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("capture: Run called twice")
	}
	l.hookMu.Lock()
	l.handler, l.flush = handle, flush
	l.hookMu.Unlock()
	close(l.started)
	defer func() {
		l.hookMu.Lock()
		if l.flush != nil {
			l.flush()
		}
		l.handler, l.flush = nil, nil
		l.hookMu.Unlock()
	}()

	var restarts []time.Time
	for {
		l.mu.Lock()
		s := l.sess
		l.mu.Unlock()
		if s == nil {
			return nil // closed
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.closed:
			return nil
		case cause := <-s.dead:
			now := time.Now()
			for len(restarts) > 0 && now.Sub(restarts[0]) > time.Minute {
				restarts = restarts[1:]
			}
			if len(restarts) >= maxRestartsPerMin {
				l.fail(s)
				return fmt.Errorf("capture: nflog group %d: receive failed %d times within a minute, last: %w", l.cfg.Group, len(restarts)+1, cause)
			}
			restarts = append(restarts, now)
			if err := l.restart(ctx, s, cause); err != nil {
				return err
			}
		}
	}
}

// fail marks capture dead for good.
func (l *Listener) fail(s *session) {
	l.up.Store(false)
	s.close()
}

// restart replaces the failed session s with a freshly bound one.
func (l *Listener) restart(ctx context.Context, s *session, cause error) error {
	l.up.Store(false)
	l.log.Error("nflog receive failed; reopening the socket", "err", cause)
	s.close() // unbinds the group, so the new socket can take it
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ns, err := l.open()
		if err == nil {
			l.mu.Lock()
			if l.sess == nil { // Close ran meanwhile
				l.mu.Unlock()
				ns.close()
				return nil
			}
			l.sess = ns
			l.mu.Unlock()
			l.restarts.Add(1)
			l.up.Store(true)
			l.log.Info("nflog socket reopened", "attempt", attempt)
			return nil
		}
		if attempt == maxReopenAttempts {
			return fmt.Errorf("capture: nflog group %d: receive failed (%v) and reopening failed %d times: %w", l.cfg.Group, cause, attempt, err)
		}
		l.log.Warn("reopening nflog socket failed", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-l.closed:
			return nil
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// Up reports whether the listener is bound and reading: false after Close,
// while a restart is under way, and once capture has failed for good.
// The daemon's readiness check should include it.
func (l *Listener) Up() bool { return l.up.Load() }

// Stats returns the counters.
func (l *Listener) Stats() Stats {
	return Stats{
		Received: l.received.Load(),
		Overruns: l.overruns.Load(),
		Lost:     l.lost.Load(),
		Restarts: l.restarts.Load(),
	}
}

// Close releases the socket, which also unbinds the group; Run then returns.
// A handler call in progress may still finish after Close returns; Run waits
// for it before returning.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	l.mu.Lock()
	s := l.sess
	l.sess = nil
	l.mu.Unlock()
	l.up.Store(false)
	if s == nil {
		return nil
	}
	return s.close()
}

//go:build linux

package transport

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stuckPair is a datagram socket pair whose sender (blocking, with a send
// timeout) runs out of room once the receiver's queue is full.
func stuckPair(t *testing.T, timeout time.Duration) (*batch, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The smallest send buffer: a few frames fill it, and it drains only
	// as the receiver reads.
	if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 1); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(timeout))
	if err := unix.SetsockoptTimeval(fds[0], unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "sender")
	t.Cleanup(func() { f.Close(); unix.Close(fds[1]) })
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return newBatch(rc, defaultBatch), fds[1]
}

// TestBatchFailsTheRestAfterASendTimeout: a buffer that never drains costs
// one send timeout per flush, not one per frame, and every frame is either
// sent or reported.
func TestBatchFailsTheRestAfterASendTimeout(t *testing.T) {
	b, _ := stuckPair(t, 100*time.Millisecond)
	body := make([]byte, 1000)
	for range defaultBatch {
		b.add(nil, body, nil, 0)
	}
	var failed []int
	start := time.Now()
	sent := b.flush(func(i int, err error) {
		if !errors.Is(err, unix.EAGAIN) {
			t.Errorf("frame %d: %v, want EAGAIN", i, err)
		}
		failed = append(failed, i)
	})
	took := time.Since(start)
	if sent == 0 || sent+len(failed) != defaultBatch || failed[0] != sent {
		t.Fatalf("sent %d, failed %v: want the first ones sent and every other one failed", sent, failed)
	}
	if took < 100*time.Millisecond || took > time.Second {
		t.Errorf("flush took %v, want one send timeout (100ms)", took)
	}
}

// TestBatchWaitsForRoom: when the buffer is full but drains, the batch
// waits in the blocking call and sends every frame.
func TestBatchWaitsForRoom(t *testing.T) {
	b, rx := stuckPair(t, 5*time.Second)
	go func() {
		buf := make([]byte, 2000)
		for range defaultBatch {
			time.Sleep(time.Millisecond)
			if _, err := unix.Read(rx, buf); err != nil {
				return
			}
		}
	}()
	body := make([]byte, 1000)
	for range defaultBatch {
		b.add(nil, body, nil, 0)
	}
	if sent := b.flush(func(i int, err error) { t.Errorf("frame %d: %v", i, err) }); sent != defaultBatch {
		t.Fatalf("sent %d of %d", sent, defaultBatch)
	}
}

package textpages

import (
	"slices"
	"testing"
)

const sample = `00400000-00a10000 r-xp 00000000 00:2d 4242                               /usr/local/bin/go-pmtud
00a10000-01010000 r--p 00610000 00:2d 4242                               /usr/local/bin/go-pmtud
01010000-01060000 rw-p 00c10000 00:2d 4242                               /usr/local/bin/go-pmtud
01060000-010a0000 rw-p 00000000 00:00 0 
c000000000-c000400000 rw-p 00000000 00:00 0 
7f0000000000-7f0000001000 r--p 00000000 00:2d 9999                       /etc/other
7f0000001000-7f0000002000 r--s 00000000 00:2d 4242                       /usr/local/bin/go-pmtud
7ffc0000000-7ffc0021000 rw-p 00000000 00:00 0                          [stack]
7ffc0022000-7ffc0024000 r-xp 00000000 00:00 0                          [vdso]
`

func TestReadonlyFindsOwnCodeAndReadOnlyData(t *testing.T) {
	got := Readonly([]byte(sample), 0x500000)
	want := []Range{{0x400000, 0xa10000}, {0xa10000, 0x1010000}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestReadonlyNeverReturnsWritableOrOtherFiles(t *testing.T) {
	for _, pc := range []uintptr{0x1020000, 0x1070000, 0xc000001000, 0x7ffc0022100, 0x10} {
		if got := Readonly([]byte(sample), pc); len(got) != 0 {
			t.Errorf("pc %#x: got %x, want nothing of the program", pc, got)
		}
	}
}

func TestReadonlySkipsMalformedLines(t *testing.T) {
	in := "zz-00a10000 r-xp 0 00:2d 4242 /x\n00400000-00300000 r-xp 0 00:2d 4242 /x\n00400000-00a10000 r-x 0 00:2d 4242 /x\n00400000\n\n" + sample
	if got := Readonly([]byte(in), 0x500000); len(got) != 2 {
		t.Fatalf("got %x", got)
	}
}

func FuzzReadonly(f *testing.F) {
	f.Add([]byte(sample), uint64(0x500000))
	f.Add([]byte("0-1 r-xp 0 0:0 1 x\n"), uint64(0))
	f.Fuzz(func(t *testing.T, maps []byte, pc uint64) {
		for _, r := range Readonly(maps, uintptr(pc)) {
			if r.End <= r.Start {
				t.Fatalf("empty or inverted range %x", r)
			}
		}
	})
}

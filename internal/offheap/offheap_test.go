package offheap

import (
	"os"
	"runtime"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/benchrate"
)

type slot struct {
	k uint64
	v int64
}

func TestMakeWriteFree(t *testing.T) {
	s, err := Make[slot](1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	for i := range s {
		if s[i] != (slot{}) {
			t.Fatalf("slot %d not zero: %v", i, s[i])
		}
		s[i] = slot{uint64(i), int64(-i)}
	}
	runtime.GC() // the collector must not trip over memory it does not own
	for i := range s {
		if s[i] != (slot{uint64(i), int64(-i)}) {
			t.Fatalf("slot %d is %v after a collection", i, s[i])
		}
	}
	if err := Free(s); err != nil {
		t.Fatal(err)
	}
}

func rssAnonKB(t *testing.T) int {
	m, err := benchrate.Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return int(m.Anon >> 10)
}

// Pages never written are not resident, and Free gives the written ones back.
func TestOnlyWrittenPagesAreResidentAndFreeReturnsThem(t *testing.T) {
	const n = 4 << 20 / 16 // 4 MiB of slots
	before := rssAnonKB(t)
	s, err := Make[slot](n)
	if err != nil {
		t.Fatal(err)
	}
	if grew := rssAnonKB(t) - before; grew > 512 {
		t.Errorf("RssAnon grew %d kB on mapping alone", grew)
	}
	for i := range s {
		s[i].k = 1
	}
	written := rssAnonKB(t)
	if written-before < 3<<10 {
		t.Errorf("RssAnon grew only %d kB after writing 4 MiB", written-before)
	}
	if err := Free(s); err != nil {
		t.Fatal(err)
	}
	if back := written - rssAnonKB(t); back < 3<<10 {
		t.Errorf("Free gave back only %d kB of 4 MiB", back)
	}
}

func TestMakeRefusesPointers(t *testing.T) {
	for name, mk := range map[string]func(){
		"pointer": func() { Make[*int](1) },
		"slice":   func() { Make[[]byte](1) },
		"string":  func() { Make[string](1) },
		"struct": func() {
			Make[struct {
				a int
				b map[int]int
			}](1)
		},
		"array": func() { Make[[2]any](1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			mk()
		})
	}
	if _, err := Make[[4]struct{ a, b uint32 }](1); err != nil {
		t.Error(err)
	}
}

func TestEmpty(t *testing.T) {
	s, err := Make[slot](0)
	if err != nil || s != nil {
		t.Fatalf("%v %v", s, err)
	}
	if err := Free(s); err != nil {
		t.Fatal(err)
	}
}

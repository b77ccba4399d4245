// Package textpages takes the program's own read-only file pages (code,
// read-only data, the tables the runtime reads for stack maps) out of
// memory once start-up is over. The kernel maps a binary's pages on first
// touch, 64 kB around each fault, and keeps them for the life of the
// process, so start-up code that never runs again (flag parsing, package
// initialisation, the first Kubernetes list) stays resident, and a page
// touched once maps its 15 neighbours too. Released, the pages are
// reclaimed; what the daemon goes on using is read back page by page as it
// is touched: a few milliseconds of page-ins, once, for the code the relay
// runs.
package textpages

import (
	"bytes"
	"strconv"
)

// Range is one mapping, [Start, End).
type Range struct{ Start, End uintptr }

// Len is the range's size in bytes.
func (r Range) Len() int { return int(r.End - r.Start) }

type mapping struct {
	Range
	writable bool
	exec     bool
	file     bool
	dev      string
	inode    uint64
}

// Readonly returns the read-only mappings of the file whose executable
// mapping holds pc, read from the text of /proc/self/maps: the program's own code and
// read-only data, found by an address in its code rather than by a path
// (a replaced binary, an overlay file system or a deleted file all name it
// differently). Writable mappings (data, bss, anything copied on write)
// are never returned.
func Readonly(maps []byte, pc uintptr) []Range {
	var all []mapping
	var own *mapping
	for line := range bytes.Lines(maps) {
		m, ok := parseLine(line)
		if !ok {
			continue
		}
		all = append(all, m)
		if m.file && m.exec && m.Start <= pc && pc < m.End {
			own = &all[len(all)-1]
		}
	}
	if own == nil {
		return nil
	}
	dev, inode := own.dev, own.inode
	var out []Range
	for _, m := range all {
		if m.file && !m.writable && m.dev == dev && m.inode == inode {
			out = append(out, m.Range)
		}
	}
	return out
}

// parseLine reads "start-end perms offset dev inode [path]".
func parseLine(line []byte) (mapping, bool) {
	f := bytes.Fields(line)
	if len(f) < 5 {
		return mapping{}, false
	}
	lo, hi, ok := bytes.Cut(f[0], []byte("-"))
	if !ok {
		return mapping{}, false
	}
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	inode, err3 := strconv.ParseUint(string(f[4]), 10, 64)
	perms := f[1]
	if err1 != nil || err2 != nil || err3 != nil || end <= start || len(perms) < 4 {
		return mapping{}, false
	}
	return mapping{
		Range:    Range{uintptr(start), uintptr(end)},
		writable: perms[1] != '-' || perms[3] != 'p',
		exec:     perms[2] == 'x',
		file:     inode != 0,
		dev:      string(f[3]),
		inode:    inode,
	}, true
}

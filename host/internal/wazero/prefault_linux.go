//go:build linux

package wazero

import (
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
)

// Prefaulting what a new instance's start touches.
//
// A fresh region's pages fault one at a time while the guest starts (the
// Go runtime's heap, the image pages it writes, the image pages it reads):
// about 200 faults for a Go plugin. Where a fault is dear, as in virtual
// machines that trap on page-table updates, madvise(MADV_POPULATE_WRITE)
// fills the same pages in one call for about half the cost per page
// (5.14+). Which pages a module's start touches hardly varies from one
// instance to the next, so the first fresh instance of a module records
// them (its region's pagemap after the start) and later instances get
// exactly those pages populated before the guest runs, on a fresh region or
// on a reused one after its reset (which drops written image pages): the
// same pages become resident, only sooner. A page the profile misses still faults, one
// it has in excess costs 4 KiB of memory; neither changes what the guest
// reads (a populated page holds zeros or the image's bytes, as a faulted
// one would).

// pageRun is pages [first, first+n) of a region, in page units.
type pageRun struct{ first, n uint64 }

// startProfile is what the first fresh instance of a module touched.
type startProfile struct {
	write []pageRun // pages it wrote: populated writable (private copies)
	read  []pageRun // pages it only read: mapped in as they are
}

// Linux's madvise advice values for populating (not in package syscall).
const (
	madvPopulateRead  = 22
	madvPopulateWrite = 23
)

// prefaultOff disables prefaulting: set by SetPrefault, or for good when
// the kernel does not know MADV_POPULATE_*.
var prefaultOff atomic.Bool

// SetPrefault turns prefaulting of new instances' start pages on or off
// and returns the previous setting (benchmarks compare both).
func SetPrefault(on bool) (was bool) { return !prefaultOff.Swap(!on) }

// allocation is the memory allocator of one instantiation: it remembers
// the memory it made, so that Instantiate can hand a fresh one to learn
// the module's start profile.
type allocation struct {
	a     *mmapAllocator
	mem   *mmapMemory
	fresh bool
}

func (c *allocation) Allocate(cap, max uint64) experimental.LinearMemory {
	m, fresh := c.a.allocate(cap, max)
	if m == nil {
		return nil
	}
	c.mem, c.fresh = m, fresh
	return m
}

// started is called once the instance has started: the first fresh
// instance of a module records its start profile.
func (c *allocation) started() {
	a := c.a
	if !c.fresh || c.mem == nil || c.mem.r == nil || a.profile.Load() != nil || !a.learning.CompareAndSwap(false, true) {
		return
	}
	pm := regions.pagemapFile()
	if pm == nil {
		return // learning stays claimed: without a pagemap there is nothing to learn
	}
	p, err := c.mem.r.touched(pm)
	if err != nil {
		a.learning.Store(false)
		return
	}
	a.profile.Store(p)
}

// touched reads which committed pages of r are mapped: exclusively owned
// anonymous ones were written, file pages and shared (zero) pages only read.
func (r *region) touched(pm *os.File) (*startProfile, error) {
	entries, err := pagemapEntries(pm, r.buf[:r.committed])
	if err != nil {
		return nil, err
	}
	pages := uint64(len(entries))
	const (
		none = iota
		read
		write
	)
	kind := func(i uint64) int {
		e := entries[i]
		switch {
		case e&pmPresent == 0:
			return none
		case e&pmFile == 0 && e&pmExclusive != 0:
			return write
		default:
			return read
		}
	}
	p := &startProfile{}
	for i := uint64(0); i < pages; {
		k := kind(i)
		j := i + 1
		for j < pages && kind(j) == k {
			j++
		}
		switch k {
		case write:
			p.write = append(p.write, pageRun{i, j - i})
		case read:
			p.read = append(p.read, pageRun{i, j - i})
		}
		i = j
	}
	return p, nil
}

// prefault populates the pages of p that r has committed.
func (r *region) prefault(p *startProfile) {
	if prefaultOff.Load() {
		return
	}
	page := uint64(os.Getpagesize())
	limit := r.committed / page
	populate := func(runs []pageRun, advice uintptr) bool {
		for _, run := range runs {
			if run.first >= limit {
				break
			}
			n := min(run.n, limit-run.first)
			addr := uintptr(unsafe.Pointer(&r.buf[run.first*page]))
			_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(n*page), advice)
			if errno == syscall.EINVAL {
				prefaultOff.Store(true) // a kernel before 5.14
				return false
			}
			// Other errors (ENOMEM under memory pressure): the guest
			// faults the pages in itself, as without a profile.
		}
		return true
	}
	if populate(p.write, madvPopulateWrite) {
		populate(p.read, madvPopulateRead)
	}
}

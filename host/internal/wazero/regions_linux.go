//go:build linux

package wazero

import (
	"encoding/binary"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

// Reusing the linear memory of closed instances.
//
// A new instance's memory is a fresh mapping, so every page the guest
// touches while it initializes is a page fault: about 200 for a Go plugin
// (the Go runtime's heap beyond the data image, plus the image pages it
// writes). Where page faults are expensive, as in virtual machines that
// trap on page-table updates (15 µs a fault measured on this project's
// machines), those faults are a third of an instantiation. The pool keeps
// the reservations of closed instances (bounded in number, size and time)
// and hands them to new instances after putting them back to the state of
// a fresh mapping of the new instance's image: their page-table entries
// stay, so the new guest's writes do not fault.
//
// Reset is exact, not best effort: a reused memory must read as the image
// followed by zeros, whatever plugin used it before. /proc/self/pagemap
// says for each page whether it is mapped and whether it still is the
// image file's page; every page that is not gets zeroed (beyond the image)
// or dropped back to the file's page (within it). Without a readable
// pagemap, regions are not reused.

const (
	// regionMaxCommitted: memories that grew past this are unmapped, not
	// kept (zeroing them would cost more than it saves, and they hold
	// much memory while idle).
	regionMaxCommitted = 16 << 20
	// regionPoolBytes bounds the committed bytes the pool holds.
	regionPoolBytes = 128 << 20
	// regionIdle: a region unused this long is unmapped, so memory
	// returns to the steady state after reloads or a burst.
	regionIdle = 10 * time.Second
)

// regions is the process's pool (reservations are plain address space,
// usable by any module with the same reservation size).
var regions regionPool

// What Allocate did (wasmcorn_instance_memories_total); tests read them too.
var (
	memFresh  = metrics.InstanceMemories.WithLabelValues("fresh")
	memReused = metrics.InstanceMemories.WithLabelValues("reused")
)

type regionPool struct {
	mu      sync.Mutex
	free    []*region // most recently freed last
	bytes   uint64    // committed bytes in free
	timer   *time.Timer
	pagemap *os.File // nil until opened; pmErr set if it cannot be
	pmErr   bool
}

// put keeps r for reuse if it qualifies and there is room; it reports
// whether it did (else the caller unmaps r).
func (p *regionPool) put(r *region) bool {
	if r.committed > regionMaxCommitted {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.pagemapLocked() {
		return false
	}
	now := time.Now()
	p.expireLocked(now)
	for p.bytes+r.committed > regionPoolBytes && len(p.free) > 0 {
		p.dropLocked(0) // oldest first
	}
	if p.bytes+r.committed > regionPoolBytes {
		return false
	}
	r.freedAt = now
	p.free = append(p.free, r)
	p.bytes += r.committed
	p.account()
	if p.timer == nil {
		p.timer = time.AfterFunc(regionIdle, p.sweep)
	}
	return true
}

// get returns a region of reservation size n, reset to image followed by
// zeros, or nil. It prefers the most recently freed region that holds the
// same image (the cheapest to reset), then any of size n.
func (p *regionPool) get(n int, image *memImage) *region {
	p.mu.Lock()
	pick := -1
	for i := len(p.free) - 1; i >= 0; i-- {
		if len(p.free[i].buf) != n {
			continue
		}
		if p.free[i].img == image {
			pick = i
			break
		}
		if pick < 0 {
			pick = i
		}
	}
	var r *region
	if pick >= 0 {
		r = p.takeLocked(pick)
	}
	pm := p.pagemap
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	if err := r.reset(pm, image); err != nil {
		r.unmap()
		return nil
	}
	return r
}

// account publishes the process pool's size (tests use pools of their own).
func (p *regionPool) account() {
	if p == &regions {
		metrics.InstanceMemoryPooledBytes.Set(float64(p.bytes))
	}
}

func (p *regionPool) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = nil
	p.expireLocked(time.Now())
	if len(p.free) > 0 {
		p.timer = time.AfterFunc(regionIdle, p.sweep)
	}
}

func (p *regionPool) expireLocked(now time.Time) {
	for len(p.free) > 0 && now.Sub(p.free[0].freedAt) >= regionIdle {
		p.dropLocked(0)
	}
}

// takeLocked removes free[i] from the pool and returns it.
func (p *regionPool) takeLocked(i int) *region {
	r := p.free[i]
	p.free = append(p.free[:i], p.free[i+1:]...)
	p.bytes -= r.committed
	p.account()
	return r
}

func (p *regionPool) dropLocked(i int) { p.takeLocked(i).unmap() }

// ReleasePooledMemory unmaps the memory regions kept for reuse, so that a
// measurement of what new instances cost starts from fresh mappings.
func ReleasePooledMemory() { regions.drain() }

// drain unmaps every pooled region.
func (p *regionPool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.free) > 0 {
		p.dropLocked(0)
	}
}

func (p *regionPool) pagemapLocked() bool {
	if p.pagemap == nil && !p.pmErr {
		f, err := os.Open("/proc/self/pagemap")
		if err != nil {
			p.pmErr = true
			return false
		}
		var e [8]byte
		if _, err := f.ReadAt(e[:], 0); err != nil {
			f.Close()
			p.pmErr = true
			return false
		}
		p.pagemap = f
	}
	return p.pagemap != nil
}

// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent   = 1 << 63
	pmSwapped   = 1 << 62
	pmFile      = 1 << 61 // file page or shared anonymous page
	pmExclusive = 1 << 56 // mapped by this process only
)

// pagemapEntries returns the pagemap entries of b's pages (b starts on a
// page boundary), in one read.
func pagemapEntries(pm *os.File, b []byte) ([]uint64, error) {
	page := os.Getpagesize()
	raw := make([]byte, len(b)/page*8)
	if _, err := pm.ReadAt(raw, int64(uintptr(unsafe.Pointer(&b[0]))/uintptr(page))*8); err != nil {
		return nil, err
	}
	e := make([]uint64, len(b)/page)
	for i := range e {
		e[i] = binary.LittleEndian.Uint64(raw[i*8:])
	}
	return e, nil
}

// pagemapFile returns the open /proc/self/pagemap, nil when unreadable.
func (p *regionPool) pagemapFile() *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.pagemapLocked() {
		return nil
	}
	return p.pagemap
}

// reset makes r read as image (nil: none) followed by zeros up to its
// committed size, keeping the page-table entries of pages it can clear in
// place. r.img is the image mapped at its start now.
func (r *region) reset(pm *os.File, image *memImage) error {
	page := uint64(os.Getpagesize())
	var imgSize uint64
	if image != nil {
		imgSize = uint64(image.size)
	}
	if imgSize > r.committed {
		// Cannot happen for a region of the same reservation size that
		// held this module before; commit the difference to be safe.
		if err := syscall.Mprotect(r.buf[r.committed:imgSize], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return err
		}
		r.committed = imgSize
	}
	base := uintptr(unsafe.Pointer(&r.buf[0]))
	keepPrefix := r.img == image && r.imgSize == imgSize // the same image is mapped: fix up its written pages
	if !keepPrefix {
		old := r.imgSize
		if imgSize > 0 {
			if err := mapFixed(base, imgSize, image); err != nil {
				return err
			}
		}
		if old > imgSize {
			// What was the old image's mapping beyond the new one becomes
			// plain zero memory again.
			if err := mapFixed(base+uintptr(imgSize), old-imgSize, nil); err != nil {
				return err
			}
		}
		r.img, r.imgSize = image, imgSize
	}
	// One pagemap read covers the committed part; beyond it nothing is
	// mapped (PROT_NONE, never touched).
	pages := r.committed / page
	entries, err := pagemapEntries(pm, r.buf[:r.committed])
	if err != nil {
		return err
	}
	start := uint64(0)
	if !keepPrefix {
		start = imgSize / page // the prefix was just mapped afresh
	}
	for i := start; i < pages; {
		e := entries[i]
		inImage := i*page < imgSize
		if e&(pmPresent|pmSwapped) == 0 || (inImage && e&pmFile != 0) {
			i++ // reads as the image or as zero already
			continue
		}
		// A run of pages needing the same treatment.
		j := i + 1
		for j < pages && (j*page < imgSize) == inImage {
			f := entries[j]
			if f&(pmPresent|pmSwapped) == 0 || (inImage && f&pmFile != 0) || (f&pmSwapped != 0) != (e&pmSwapped != 0) {
				break
			}
			j++
		}
		b := r.buf[i*page : j*page]
		if inImage || e&pmSwapped != 0 {
			// A written copy of an image page goes back to the file's
			// page; a swapped-out page is discarded.
			if err := syscall.Madvise(b, syscall.MADV_DONTNEED); err != nil {
				return err
			}
		} else {
			clear(b)
		}
		i = j
	}
	return nil
}

//go:build linux

package wazero

import (
	"os"
	"slices"
	"testing"
)

// pageStates returns the pagemap entries of buf's pages.
func pageStates(t *testing.T, buf []byte) []uint64 {
	t.Helper()
	pm := regions.pagemapFile()
	if pm == nil {
		t.Skip("needs a readable /proc/self/pagemap")
	}
	e, err := pagemapEntries(pm, buf)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPrefault: the first fresh instance of a module records what its start
// wrote and read; later fresh instances of the module get exactly the
// written pages populated writable before they run, read the same bytes as
// without (the image, then zeros), and a reused memory teaches nothing.
func TestPrefault(t *testing.T) {
	regions.drain()
	t.Cleanup(regions.drain)
	was := SetPrefault(true)
	t.Cleanup(func() { SetPrefault(was) })
	page := os.Getpagesize()
	const max = 64 * wasmPage
	im := testImage(t, 3*wasmPage+1234, 5)
	imagePages := im.size / page
	a := newAllocator(max, im)

	// The "start": writes two image pages and three zero pages past the
	// image, reads one other image page and one zero page.
	written := []int{1, 2, imagePages + 3, imagePages + 4, imagePages + 9}
	read := []int{7, imagePages + 20}
	start := func(buf []byte) (sum byte) {
		for _, p := range written {
			buf[p*page+10]++
		}
		for _, p := range read {
			sum += buf[p*page]
		}
		return sum
	}

	first := a.forInstance()
	m := first.Allocate(10*wasmPage, max)
	if m == nil || !first.fresh {
		t.Fatal("the first allocation is not a fresh region")
	}
	start(m.Reallocate(10 * wasmPage))
	first.started()
	p := a.profile.Load()
	if p == nil {
		t.Fatal("no start profile after the first fresh instance")
	}
	var gotWritten []int
	for _, r := range p.write {
		for i := r.first; i < r.first+r.n; i++ {
			gotWritten = append(gotWritten, int(i))
		}
	}
	if !slices.Equal(gotWritten, written) {
		t.Fatalf("profile's written pages %v, want %v", gotWritten, written)
	}
	if len(p.read) == 0 {
		t.Fatal("profile has no read pages")
	}
	m.Free()
	regions.drain() // the next one is fresh

	second := a.forInstance()
	m2 := second.Allocate(10*wasmPage, max)
	if m2 == nil || !second.fresh {
		t.Fatal("the second allocation is not a fresh region")
	}
	buf := m2.Reallocate(10 * wasmPage)
	states := pageStates(t, buf)
	for _, p := range written {
		if e := states[p]; e&pmPresent == 0 || e&pmFile != 0 || e&pmExclusive == 0 {
			t.Errorf("page %d written by the start is not populated as a private page (pagemap %#x)", p, e)
		}
	}
	for _, p := range []int{0, 5, imagePages + 2, imagePages + 30} {
		if e := states[p]; e&pmPresent != 0 && e&pmFile == 0 {
			t.Errorf("page %d, which no start touched, holds a private page (pagemap %#x)", p, e)
		}
	}
	wantFresh(t, buf, im) // populated pages read as the image or zeros
	// Learning happens once: a later start that writes more does not
	// change the profile.
	scribble(buf[:page*(imagePages+12)])
	second.started()
	if a.profile.Load() != p {
		t.Fatal("a second fresh instance replaced the start profile")
	}
	m2.Free()

	// A reused region is reset (written image pages go back to the file's
	// page) and then populated the same way.
	again := a.forInstance()
	m5 := again.Allocate(10*wasmPage, max)
	if m5 == nil || again.fresh {
		t.Fatal("expected the pooled region to be reused")
	}
	buf = m5.Reallocate(10 * wasmPage)
	states = pageStates(t, buf)
	for _, p := range written {
		if e := states[p]; e&pmPresent == 0 || e&pmFile != 0 || e&pmExclusive == 0 {
			t.Errorf("reused: page %d written by the start is not populated as a private page (pagemap %#x)", p, e)
		}
	}
	wantFresh(t, buf, im)
	m5.Free()

	// Turned off, a fresh region has nothing populated.
	regions.drain()
	SetPrefault(false)
	off := a.forInstance()
	m3 := off.Allocate(10*wasmPage, max)
	states = pageStates(t, m3.Reallocate(10*wasmPage))
	for _, p := range written {
		if e := states[p]; e&pmPresent != 0 && e&pmFile == 0 {
			t.Errorf("prefault off: page %d is populated (pagemap %#x)", p, e)
		}
	}
	SetPrefault(true)

	// A reused region (pages of the previous owner still mapped) teaches
	// another module nothing.
	m3.Free()
	b := newAllocator(max, im)
	reused := b.forInstance()
	m4 := reused.Allocate(10*wasmPage, max)
	if m4 == nil || reused.fresh {
		t.Fatal("expected the pooled region to be reused")
	}
	reused.started()
	if b.profile.Load() != nil {
		t.Fatal("a reused region's pages became a start profile")
	}
	m4.Free()
}

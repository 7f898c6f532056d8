//go:build linux

package wazero

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tetratelabs/wazero/experimental"
)

const wasmPage = 64 << 10

// testImage returns a memory image of n bytes with a recognizable pattern.
func testImage(t *testing.T, n int, seed byte) *memImage {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	im, err := newMemImage(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(im.close)
	return im
}

// scribble writes non-zero bytes over all of buf, as a guest would.
func scribble(buf []byte) {
	for i := range buf {
		buf[i] = 0xA5
	}
}

// wantFresh fails unless buf reads as image (nil: none) followed by zeros.
func wantFresh(t *testing.T, buf []byte, image *memImage) {
	t.Helper()
	var want []byte
	if image != nil {
		want = make([]byte, image.size)
		if _, err := image.f.ReadAt(want, 0); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(buf[:len(want)], want) {
		t.Fatal("reused memory does not hold the image")
	}
	if i := bytes.IndexFunc(buf[len(want):], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("reused memory has a non-zero byte at %#x, after the image", len(want)+i)
	}
}

func allocate(t *testing.T, a experimental.MemoryAllocator, cap, max uint64) (experimental.LinearMemory, []byte) {
	t.Helper()
	m := a.Allocate(cap, max)
	if m == nil {
		t.Fatal("Allocate failed")
	}
	return m, m.Reallocate(cap)
}

// TestRegionReuse: a closed instance's memory, written all over and grown,
// comes back to the next instance exactly as a fresh one would read: its
// own image (the same module's, another module's, or none) then zeros, up
// to the largest size the previous owner reached.
func TestRegionReuse(t *testing.T) {
	regions.drain()
	t.Cleanup(regions.drain)
	const max = 64 * wasmPage
	imA := testImage(t, 3*wasmPage+1234, 1) // padded to whole OS pages
	imSmall := testImage(t, 5000, 2)
	imLarge := testImage(t, 9*wasmPage, 3)
	cases := []struct {
		name     string
		from, to *memImage
	}{
		{"same image", imA, imA},
		{"smaller image", imA, imSmall},
		{"larger image", imSmall, imLarge},
		{"no image after an image", imLarge, nil},
		{"image after none", nil, imA},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			regions.drain()
			from := newAllocator(max, c.from)
			m, buf := allocate(t, from, 10*wasmPage, max)
			scribble(buf)
			grown := m.Reallocate(40 * wasmPage) // commits more; the next owner must see zeros there
			scribble(grown)
			m.Free()
			m.Free() // a second Free of the same memory must not pool it twice

			reused := testutil.ToFloat64(memReused)
			to := newAllocator(max, c.to)
			m2, buf2 := allocate(t, to, 10*wasmPage, max)
			defer m2.Free()
			if got := testutil.ToFloat64(memReused); got != reused+1 {
				t.Fatalf("the freed region was not reused: wasmcorn_instance_memories_total{source=reused} went from %v to %v", reused, got)
			}
			wantFresh(t, m2.Reallocate(40*wasmPage), c.to)
			_ = buf2
			// Only one region was pooled: the next allocation is fresh.
			fresh := testutil.ToFloat64(memFresh)
			m3, _ := allocate(t, to, 10*wasmPage, max)
			defer m3.Free()
			if testutil.ToFloat64(memFresh) != fresh+1 {
				t.Fatal("a doubly freed region was handed out twice")
			}
		})
	}
}

// TestRegionReuseRepeated: many cycles of the same module keep resetting
// correctly (the pages dropped back to the image and the pages zeroed in
// place alternate with writes).
func TestRegionReuseRepeated(t *testing.T) {
	regions.drain()
	t.Cleanup(regions.drain)
	const max = 32 * wasmPage
	im := testImage(t, 2*wasmPage+100, 9)
	a := newAllocator(max, im)
	for i := range 20 {
		m, buf := allocate(t, a, 4*wasmPage, max)
		wantFresh(t, buf, im)
		// Write a different sparse pattern each round.
		for off := i * 512; off < len(buf); off += 3 * 4096 {
			buf[off] = byte(i + 1)
		}
		m.Free()
	}
}

func TestRegionPoolBounds(t *testing.T) {
	var p regionPool
	t.Cleanup(p.drain)
	r, err := newRegion(64*wasmPage, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.committed = regionMaxCommitted + 1<<20
	if p.put(r) {
		t.Fatal("a region past regionMaxCommitted was pooled")
	}
	r.unmap()

	var made []*region
	for range regionPoolBytes/(1<<20) + 2 {
		r, err := newRegion(64*wasmPage, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.committed = 1 << 20
		made = append(made, r)
		if !p.put(r) {
			t.Fatal("put failed below the limits")
		}
	}
	if p.bytes > regionPoolBytes {
		t.Fatalf("pool holds %d bytes, limit %d", p.bytes, regionPoolBytes)
	}
	if made[0].buf != nil {
		t.Fatal("the oldest region was not unmapped when the pool filled up")
	}
	if got := p.get(128*wasmPage, nil); got != nil {
		t.Fatal("get returned a region of another reservation size")
	}
	p.mu.Lock()
	p.expireLocked(time.Now().Add(regionIdle))
	n := len(p.free)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d regions left after they idled past regionIdle", n)
	}
	for i, r := range made {
		if r.buf != nil {
			t.Fatal(fmt.Sprintf("region %d still mapped after expiry", i))
		}
	}
}

package wasmrewrite

import (
	"cmp"
	"slices"
)

// DataImage splits the module binary wasm into the module without its
// data section and the image its data segments write into linear memory:
// image[a] is the byte at address a after instantiation, for every a below
// len(image) (bytes no segment writes are zero); memory above is zero.
//
// The Go toolchain splits a program's data at every run of zeros, which
// gives tens of thousands of segments (61,453 for a hello-world plugin);
// wazero evaluates and copies each one, touching every page, at every
// instantiation, which was most of the cost of creating a Go plugin
// instance. With the image, a host makes each instance's memory start as
// the image instead (a copy-on-write mapping of it), and compiles the
// module without the data section.
//
// ok is true only when that is equivalent: the module defines (does not
// import) exactly one memory, not shared, whose initial size holds the
// whole image; every segment is active on memory 0 with an i32.const
// offset; segments do not overlap (so their order does not matter); and
// there is no data count section (memory.init and data.drop would refer to
// the removed segments). Otherwise, or without data, ok is false and code
// is wasm itself. The custom sections that refer to data segments by index
// (linking, reloc.*) are dropped. A malformed module returns an error
// wrapping ErrMalformed.
func DataImage(wasm []byte) (code, image []byte, ok bool, err error) {
	rw := &rewriter{in: wasm}
	if err := rw.scanSections(); err != nil {
		return nil, nil, false, err
	}
	if rw.idx[secDataCount] >= 0 || rw.idx[secData] < 0 {
		return wasm, nil, false, nil
	}
	if imported, err := rw.importsMemory(); err != nil || imported {
		return wasm, nil, false, err
	}
	minBytes, ok := rw.definedMemory()
	if !ok {
		return wasm, nil, false, nil
	}
	segs, ok, err := dataSegments(rw.payload(secData))
	if err != nil || !ok || len(segs) == 0 {
		return wasm, nil, false, err
	}
	byOffset := func(a, b dataSegment) int { return cmp.Compare(a.off, b.off) }
	if !slices.IsSortedFunc(segs, byOffset) { // the Go linker emits them sorted
		slices.SortStableFunc(segs, byOffset)
	}
	var end uint64
	for _, s := range segs {
		if uint64(s.off) < end {
			return wasm, nil, false, nil // overlapping: the order of writes matters
		}
		end = uint64(s.off) + uint64(len(s.data))
	}
	if end > minBytes {
		return wasm, nil, false, nil // instantiation fails; let the engine say so
	}
	image = make([]byte, end)
	for _, s := range segs {
		copy(image[s.off:], s.data)
	}
	code = make([]byte, 0, len(wasm)-len(rw.payload(secData)))
	code = append(code, wasm[:8]...)
	for _, s := range rw.secs {
		if s.id == secData || s.id == secCustom && dropDataCustom(rw.in[s.payload:s.end]) {
			continue
		}
		code = append(code, rw.in[s.start:s.end]...)
	}
	return code, image, true, nil
}

// definedMemory returns the initial size in bytes of the module's one
// defined memory; ok is false unless there is exactly one, 32-bit and not
// shared.
func (rw *rewriter) definedMemory() (minBytes uint64, ok bool) {
	b := rw.payload(secMemory)
	n, p := readU32(b, 0)
	if p < 0 || n != 1 || p >= len(b) || b[p]&^0x01 != 0 {
		return 0, false
	}
	pages, p := readU32(b, p+1)
	if p < 0 {
		return 0, false
	}
	return uint64(pages) << 16, true
}

// dataSegment is an active segment on memory 0 at a constant offset.
type dataSegment struct {
	off  uint32
	data []byte
}

// dataSegments parses a data section. ok is false when a segment is not an
// active segment on memory 0 with an i32.const offset.
func dataSegments(b []byte) (segs []dataSegment, ok bool, err error) {
	n, p := readU32(b, 0)
	if p < 0 || uint64(n) > uint64(len(b)) {
		return nil, false, malformed("data section: bad count")
	}
	segs = make([]dataSegment, 0, n)
	for i := uint32(0); i < n; i++ {
		var flags uint32
		if flags, p = readU32(b, p); p < 0 {
			return nil, false, malformed("data segment %d: truncated", i)
		}
		if flags != 0 || p >= len(b) || b[p] != 0x41 {
			return nil, false, nil
		}
		var off int64
		if off, p = readS33(b, p+1); p < 0 || off < -(1<<31) || off >= 1<<31 {
			return nil, false, malformed("data segment %d: bad offset", i)
		}
		if p >= len(b) || b[p] != 0x0b {
			return nil, false, nil // a longer constant expression
		}
		var size uint32
		if size, p = readU32(b, p+1); p < 0 || uint64(size) > uint64(len(b)-p) {
			return nil, false, malformed("data segment %d: truncated", i)
		}
		segs = append(segs, dataSegment{off: uint32(int32(off)), data: b[p : p+int(size)]})
		p += int(size)
	}
	if p != len(b) {
		return nil, false, malformed("data section: %d trailing bytes", len(b)-p)
	}
	return segs, true, nil
}

// importsMemory reports whether the import section imports a memory.
func (rw *rewriter) importsMemory() (bool, error) {
	b := rw.payload(secImport)
	if b == nil {
		return false, nil
	}
	n, p := readU32(b, 0)
	for i := uint32(0); i < n && p >= 0; i++ {
		for j := 0; j < 2 && p >= 0; j++ { // module and field names
			var l uint32
			if l, p = readU32(b, p); p >= 0 && uint64(l) <= uint64(len(b)-p) {
				p += int(l)
			} else {
				p = -1
			}
		}
		if p < 0 || p >= len(b) {
			break
		}
		kind := b[p]
		p++
		switch kind {
		case 0x00: // func: type index
			p = skipLEB(b, p, maxLEB32)
		case 0x01: // table: reference type, limits
			if p = skipValType(b, p); p >= 0 {
				var err error
				if p, err = skipLimits(b, p, "table"); err != nil {
					return false, err
				}
			}
		case 0x02:
			return true, nil
		case 0x03: // global: value type, mutability
			if p = skipValType(b, p); p >= 0 {
				p++
			}
		case 0x04: // tag: attribute, type index
			p = skipLEB(b, p+1, maxLEB32)
		default:
			return false, unsupported("import %d: kind 0x%02x", i, kind)
		}
	}
	if p < 0 || p > len(b) {
		return false, malformed("import section: truncated or invalid")
	}
	return false, nil
}

// dropDataCustom reports whether a custom section (its payload) refers to
// data segments by index.
func dropDataCustom(payload []byte) bool {
	n, q := readU32(payload, 0)
	if q < 0 || uint64(n) > uint64(len(payload)-q) {
		return false
	}
	name := string(payload[q : q+int(n)])
	return name == "linking" || len(name) > 6 && name[:6] == "reloc."
}

// HasStart reports whether the module has a start section: a function the
// engine runs inside instantiation, before a host can reach the module's
// exports (the interrupt global included). A malformed module returns an
// error wrapping ErrMalformed.
func HasStart(wasm []byte) (bool, error) {
	rw := &rewriter{in: wasm}
	if err := rw.scanSections(); err != nil {
		return false, err
	}
	return rw.idx[secStart] >= 0, nil
}

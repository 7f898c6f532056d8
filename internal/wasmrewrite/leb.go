package wasmrewrite

// LEB128 helpers. Readers take the buffer and a position and return the new
// position, or -1 when the encoding is truncated or longer than its type
// allows. They never panic on any input.

const (
	maxLEB32 = 5  // ceil(32/7): u32, s32 and s33
	maxLEB64 = 10 // ceil(64/7): s64
)

// skipLEB returns the position after the LEB128 number at p, or -1.
func skipLEB(b []byte, p, max int) int {
	for i := 0; i < max; i++ {
		if p >= len(b) {
			return -1
		}
		c := b[p]
		p++
		if c < 0x80 {
			return p
		}
	}
	return -1
}

// readU32 decodes an unsigned LEB128 u32 at p. It returns the value and the
// new position, or (0, -1) if the encoding is truncated, too long or
// overflows 32 bits.
func readU32(b []byte, p int) (uint32, int) {
	var v uint32
	for i := 0; i < maxLEB32; i++ {
		if p >= len(b) {
			return 0, -1
		}
		c := b[p]
		p++
		if i == maxLEB32-1 && c > 0x0f {
			return 0, -1 // continuation or bits beyond 32
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, p
		}
	}
	return 0, -1
}

// readS33 decodes a signed LEB128 s33 (block types, heap types) at p.
func readS33(b []byte, p int) (int64, int) {
	var v int64
	var shift uint
	for i := 0; i < maxLEB32; i++ {
		if p >= len(b) {
			return 0, -1
		}
		c := b[p]
		p++
		v |= int64(c&0x7f) << shift
		shift += 7
		if c < 0x80 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			if v < -(1<<32) || v >= 1<<32 {
				return 0, -1
			}
			return v, p
		}
	}
	return 0, -1
}

// appendU32 appends v as a minimal unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendS32 appends v as a minimal signed LEB128.
func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// lenU32 is the length of v as a minimal unsigned LEB128.
func lenU32(v uint32) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// putU32 writes v as a minimal unsigned LEB128 at b[0:lenU32(v)].
func putU32(b []byte, v uint32) {
	i := 0
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
}

// putSize writes size as a minimal LEB128 at b[at:], where reserved bytes
// were set aside for it and size bytes follow them; if the LEB is longer
// than reserved, the content is shifted right. It returns the slice, resized.
func putSize(b []byte, at, reserved int, size uint32) []byte {
	n := lenU32(size)
	if n > reserved {
		b = append(b, make([]byte, n-reserved)...)
		copy(b[at+n:], b[at+reserved:len(b)-(n-reserved)])
	} else if n < reserved {
		copy(b[at+n:], b[at+reserved:])
		b = b[:len(b)-(reserved-n)]
	}
	putU32(b[at:], size)
	return b
}

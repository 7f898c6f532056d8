package wasmrewrite

import "fmt"

// Immediate kinds of single-byte opcodes. kInvalid (the zero value) marks an
// opcode this package does not know: the module is then ErrUnsupported, never
// guessed at.
const (
	kInvalid      uint8 = iota
	kNone               // no immediate
	kBlock              // blocktype; opens a block (block, if, try)
	kLoop               // blocktype; opens a loop: instrumented after the blocktype
	kEnd                // closes a block, or the function
	kU32                // one u32 (label, func, local, table, tag, type, memory index)
	kGlobal             // global index, checked against the original global count
	kBrTable            // vec(label) label
	kMemarg             // memarg
	kI32                // s32
	kI64                // s64
	kF32                // 4 bytes
	kF64                // 8 bytes
	kSelectT            // vec(valtype)
	kTryTable           // blocktype vec(catch); opens a block
	kHeapType           // heaptype (ref.null)
	kDelegate           // label; closes a legacy try block
	kCall               // call, call_ref, return_call, return_call_ref: u32; instrumented before the opcode
	kCallIndirect       // call_indirect, return_call_indirect: u32 u32; instrumented before the opcode
	kPrefixFC           // 0xFC: saturating truncation, bulk memory, table ops
	kPrefixFD           // 0xFD: SIMD
	kPrefixFE           // 0xFE: threads
)

// opKinds maps every single-byte opcode to its immediate kind.
var opKinds = func() (t [256]uint8) {
	set := func(k uint8, ops ...int) {
		for _, op := range ops {
			t[op] = k
		}
	}
	span := func(k uint8, from, to int) {
		for op := from; op <= to; op++ {
			t[op] = k
		}
	}
	// Control (MVP, exception handling legacy and try_table, tail calls,
	// typed function references).
	set(kNone, 0x00, 0x01, 0x05, 0x0a, 0x0f, 0x19, 0x1a, 0x1b, 0xd1, 0xd4)
	set(kBlock, 0x02, 0x04, 0x06) // block, if, try
	set(kLoop, 0x03)
	set(kEnd, 0x0b)
	set(kU32, 0x07, 0x08, 0x09, 0x0c, 0x0d, 0xd2, 0xd5, 0xd6)
	// Every call is charged, not only tail calls: calls repeat without
	// any loop or backward jump (f(n) calling f(n-1) twice makes 2^n calls
	// at a depth of n), so neither the stack nor the loop checks bound them.
	set(kCall, 0x10, 0x14, 0x12, 0x15)
	set(kCallIndirect, 0x11, 0x13)
	set(kBrTable, 0x0e)
	set(kDelegate, 0x18)
	set(kSelectT, 0x1c)
	set(kTryTable, 0x1f)
	// Variables and tables.
	span(kU32, 0x20, 0x22) // local.get/set/tee
	set(kGlobal, 0x23, 0x24)
	set(kU32, 0x25, 0x26) // table.get/set
	// Memory.
	span(kMemarg, 0x28, 0x3e)
	set(kU32, 0x3f, 0x40) // memory.size/grow: memory index
	// Constants.
	set(kI32, 0x41)
	set(kI64, 0x42)
	set(kF32, 0x43)
	set(kF64, 0x44)
	// Numeric (MVP 0x45..0xbf) and sign extension (0xc0..0xc4).
	span(kNone, 0x45, 0xc4)
	// Reference types.
	set(kHeapType, 0xd0)
	// Prefixes.
	set(kPrefixFC, 0xfc)
	set(kPrefixFD, 0xfd)
	set(kPrefixFE, 0xfe)
	return t
}()

// SIMD (0xFD) immediate kinds by sub-opcode, 0..0x113 (final SIMD plus
// relaxed SIMD). Unassigned numbers stay kInvalid.
const (
	simdLane       = kF64 + 1 + iota // one lane byte
	simdMemargLane                   // memarg, lane byte
	simdBytes16                      // v128.const, i8x16.shuffle
)

var simdKinds = func() (t [0x114]uint8) {
	for op := range t {
		t[op] = kNone
	}
	for op := 0x00; op <= 0x0b; op++ { // loads, load splats, v128.store
		t[op] = kMemarg
	}
	t[0x0c], t[0x0d] = simdBytes16, simdBytes16
	for op := 0x15; op <= 0x22; op++ { // extract_lane / replace_lane
		t[op] = simdLane
	}
	for op := 0x54; op <= 0x5b; op++ { // load*_lane / store*_lane
		t[op] = simdMemargLane
	}
	t[0x5c], t[0x5d] = kMemarg, kMemarg // load32_zero, load64_zero
	// Numbers the final SIMD specification leaves unassigned.
	for _, op := range []int{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb,
		0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} {
		t[op] = kInvalid
	}
	return t
}()

// body rewrites one function body. out receives the re-encoded entry (size
// LEB and body); raw is the original entry, body the part after the size.
//
// Unchanged bodies are copied verbatim. A changed body is written after a
// placeholder as long as the old size's LEB; the new minimal LEB is written
// there at the end, shifting the body only in the rare case that the new
// size needs more LEB bytes than the old one.
func (rw *rewriter) body(raw, body []byte, fn int) error {
	p, err := rw.skipLocals(body)
	if err != nil {
		return rw.funcErr(fn, err)
	}
	start := -1 // offset in rw.out of the size placeholder, once changed
	last := 0   // body[:last] already copied to rw.out
	reserved := lenU32(uint32(len(body)))
	insert := func(at int) {
		if start < 0 {
			start = len(rw.out)
			rw.out = append(rw.out, make([]byte, reserved)...)
		}
		rw.out = append(rw.out, body[last:at]...)
		rw.out = append(rw.out, rw.check...)
		last = at
	}
	frames := []ctrl{{}} // the function body is the outermost block
	pop := func() {
		if f := frames[len(frames)-1]; f.blockOf != nil {
			f.blockOf.region++ // the code after a region block's end is the next region
		}
		frames = frames[:len(frames)-1]
	}
	var pending *goDispatch
	var prev, prev2 instr // the two instructions before the current one
	for {
		if p >= len(body) {
			return rw.funcErr(fn, fmt.Errorf("%w: function body ends without end", ErrMalformed))
		}
		at := p
		op := body[p]
		p++
		var imm int64
		rec := op // what prev records: op, or 0 when imm is unusable
		switch opKinds[op] {
		case kNone:
		case kU32:
			v, ok := readU32(body, p)
			p = skipLEB(body, p, maxLEB32)
			imm = int64(v)
			if p >= 0 && (op == 0x0c || op == 0x0d || op == 0xd5 || op == 0xd6) && // br, br_if, br_on_null, br_on_non_null
				(ok < 0 || chargeBranch(frames, v, op, prev, prev2)) {
				insert(at)
			}
		case kEnd:
			pop()
			if len(frames) == 0 {
				if p != len(body) {
					return rw.funcErr(fn, fmt.Errorf("%w: %d bytes after the final end", ErrMalformed, len(body)-p))
				}
				if start < 0 {
					rw.out = append(rw.out, raw...)
					return nil
				}
				rw.out = append(rw.out, body[last:]...)
				size := len(rw.out) - start - reserved
				if uint64(size) > 1<<32-1 {
					return rw.funcErr(fn, fmt.Errorf("%w: instrumented body too large", ErrUnsupported))
				}
				rw.out = putSize(rw.out, start, reserved, uint32(size))
				return nil
			}
		case kMemarg:
			p = skipMemarg(body, p)
		case kGlobal:
			var idx uint32
			idx, p = readU32(body, p)
			if p >= 0 && idx >= rw.origGlobals {
				return rw.funcErr(fn, fmt.Errorf("%w: global index %d out of range (%d globals)", ErrMalformed, idx, rw.origGlobals))
			}
		case kI32:
			v, ok := readS33(body, p)
			p = skipLEB(body, p, maxLEB32)
			if imm = v; ok < 0 {
				rec = 0 // no usable value: never part of a dispatch jump
			}
		case kI64:
			p = skipLEB(body, p, maxLEB64)
		case kBlock:
			p = skipBlockType(body, p)
			f := ctrl{}
			if pending != nil { // one of a Go dispatch loop's region blocks
				f.blockOf = pending
				if pending.blocks--; pending.blocks == 0 {
					pending = nil
				}
			}
			frames = append(frames, f)
		case kLoop:
			p = skipBlockType(body, p)
			var f ctrl
			if p >= 0 {
				if d := detectGoDispatch(body, p); d != nil {
					f.dispatch, pending = d, d
				} else {
					insert(p)
				}
			}
			frames = append(frames, f)
		case kBrTable:
			var n uint32
			n, p = readU32(body, p)
			charge := false
			for i := uint32(0); i <= n && p >= 0; i++ { // n labels and the default
				var l uint32
				l, p = readU32(body, p)
				charge = charge || targetsDispatch(frames, l)
			}
			if charge && p >= 0 {
				insert(at)
			}
		case kF32:
			p += 4
		case kF64:
			p += 8
		case kSelectT:
			var n uint32
			n, p = readU32(body, p)
			for i := uint32(0); i < n && p >= 0; i++ {
				p = skipValType(body, p)
			}
		case kTryTable:
			p = skipBlockType(body, p)
			frames = append(frames, ctrl{})
			charge := false
			var n uint32
			if p >= 0 {
				n, p = readU32(body, p)
			}
			for i := uint32(0); i < n && p >= 0; i++ {
				if p >= len(body) {
					p = -1
					break
				}
				kind := body[p]
				p++
				switch kind {
				case 0x00, 0x01: // catch, catch_ref: tag label
					p = skipLEB(body, p, maxLEB32)
					if p >= 0 {
						var l uint32
						l, p = readU32(body, p)
						charge = charge || targetsDispatch(frames[:len(frames)-1], l)
					}
				case 0x02, 0x03: // catch_all, catch_all_ref: label
					var l uint32
					l, p = readU32(body, p)
					charge = charge || targetsDispatch(frames[:len(frames)-1], l)
				default:
					return rw.funcErr(fn, fmt.Errorf("%w: try_table catch kind 0x%02x at offset %d", ErrUnsupported, kind, at))
				}
			}
			if charge && p >= 0 { // a catch re-entering a dispatch loop is a back-edge
				insert(at)
			}
		case kHeapType:
			_, p = readS33(body, p)
		case kDelegate:
			p = skipLEB(body, p, maxLEB32)
			pop()
			if len(frames) == 0 {
				return rw.funcErr(fn, fmt.Errorf("%w: delegate outside a block at offset %d", ErrMalformed, at))
			}
		case kCall:
			insert(at)
			p = skipLEB(body, p, maxLEB32)
		case kCallIndirect:
			insert(at)
			p = skipLEB(body, p, maxLEB32)
			if p >= 0 {
				p = skipLEB(body, p, maxLEB32)
			}
		case kPrefixFC:
			var sub uint32
			sub, p = readU32(body, p)
			if p < 0 {
				break
			}
			switch {
			case sub <= 7: // saturating truncation
			case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
				p = skipLEB(body, p, maxLEB32)
				if p >= 0 {
					p = skipLEB(body, p, maxLEB32)
				}
			case sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
				p = skipLEB(body, p, maxLEB32)
			default:
				return rw.funcErr(fn, fmt.Errorf("%w: opcode 0xfc %d at offset %d", ErrUnsupported, sub, at))
			}
		case kPrefixFD:
			var sub uint32
			sub, p = readU32(body, p)
			if p < 0 {
				break
			}
			k := uint8(kInvalid)
			if sub < uint32(len(simdKinds)) {
				k = simdKinds[sub]
			}
			switch k {
			case kNone:
			case kMemarg:
				p = skipMemarg(body, p)
			case simdLane:
				p++
			case simdMemargLane:
				if p = skipMemarg(body, p); p >= 0 {
					p++
				}
			case simdBytes16:
				p += 16
			default:
				return rw.funcErr(fn, fmt.Errorf("%w: opcode 0xfd %d at offset %d", ErrUnsupported, sub, at))
			}
		case kPrefixFE:
			var sub uint32
			sub, p = readU32(body, p)
			if p < 0 {
				break
			}
			switch {
			case sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e): // notify, wait, loads, stores, rmw
				p = skipMemarg(body, p)
			case sub == 0x03: // atomic.fence: one reserved byte
				p++
			default:
				return rw.funcErr(fn, fmt.Errorf("%w: opcode 0xfe %d at offset %d", ErrUnsupported, sub, at))
			}
		default: // kInvalid
			return rw.funcErr(fn, fmt.Errorf("%w: opcode 0x%02x at offset %d", ErrUnsupported, op, at))
		}
		if p < 0 || p > len(body) {
			if p == -2 {
				return rw.funcErr(fn, fmt.Errorf("%w: type at offset %d", ErrUnsupported, at))
			}
			return rw.funcErr(fn, fmt.Errorf("%w: truncated or invalid immediate of opcode 0x%02x at offset %d", ErrMalformed, op, at))
		}
		prev2, prev = prev, instr{op: rec, imm: imm}
	}
}

// Go's Wasm code generator compiles each function into one dispatch loop:
//
//	loop
//	  block block ... block          ;; m region blocks
//	    local.get 0                  ;; PC_B, the resume point
//	    br_table r0 r1 ... default   ;; resume point -> region
//	  end  <region 0>  end  <region 1> ... end <region m-1>
//	end
//
// and every jump between its basic blocks, forward or backward, is
// "i32.const K; local.set 0; br <loop>". Instrumenting the loop start would
// charge fuel on every call and every jump (about 10% of a compute-heavy Go
// function's time, BenchmarkGuestJSONAPI). A dispatch loop is therefore not
// instrumented at its start; instead every branch to it is, except a jump
// whose target region (the br_table entry of K) lies after the region it is
// made from: such jumps only move forward through the m regions, so a run
// of them ends.
// A loop cannot repeat without a backward jump, which is charged; entering
// the loop is a function call, and every call is charged (the stack bounds
// recursion's depth, not its count). Anything not matching the pattern
// exactly is charged.

// ctrl is one open control frame of a function body.
type ctrl struct {
	dispatch *goDispatch // a Go dispatch loop (not instrumented at its start)
	blockOf  *goDispatch // one of that loop's region blocks
}

// goDispatch describes one Go dispatch loop while its body is scanned.
type goDispatch struct {
	regions []int32 // region of each resume point (br_table entry), -1 for a label outside the regions
	deflt   int32   // region of the br_table default
	blocks  int     // region blocks still to be opened
	region  int32   // region being scanned: -1 in the prologue, then 0..m-1
}

// instr is the opcode and integer immediate of a scanned instruction.
type instr struct {
	op  byte
	imm int64
}

// detectGoDispatch returns the dispatch description when the loop body at
// p starts with Go's dispatch prologue, else nil.
func detectGoDispatch(b []byte, p int) *goDispatch {
	m := 0
	for p+1 < len(b) && b[p] == 0x02 && b[p+1] == 0x40 { // block (empty type)
		m++
		p += 2
	}
	if m == 0 || p+2 >= len(b) || b[p] != 0x20 || b[p+1] != 0x00 || b[p+2] != 0x0e { // local.get 0; br_table
		return nil
	}
	n, p := readU32(b, p+3)
	if p < 0 || n > uint32(len(b)) {
		return nil
	}
	region := func(l uint32) int32 {
		if l < uint32(m) {
			return int32(l)
		}
		return -1
	}
	d := &goDispatch{regions: make([]int32, n), blocks: m, region: -1}
	for i := range d.regions {
		var l uint32
		if l, p = readU32(b, p); p < 0 {
			return nil
		}
		d.regions[i] = region(l)
	}
	l, p := readU32(b, p)
	if p < 0 {
		return nil
	}
	d.deflt = region(l)
	return d
}

// dispatchAt returns the Go dispatch loop that branch label l, seen with
// frames open, leads to, or nil.
func dispatchAt(frames []ctrl, l uint32) *goDispatch {
	if l >= uint32(len(frames)) {
		return nil // malformed; wazero rejects it
	}
	return frames[len(frames)-1-int(l)].dispatch
}

// targetsDispatch reports whether branch label l, seen with frames open,
// leads to a Go dispatch loop.
func targetsDispatch(frames []ctrl, l uint32) bool { return dispatchAt(frames, l) != nil }

// chargeBranch reports whether a branch (op) to label l needs the fuel check:
// it does when it leads to a Go dispatch loop, unless it is a forward jump
// between the loop's regions (prev2, prev: i32.const K; local.set 0).
func chargeBranch(frames []ctrl, l uint32, op byte, prev, prev2 instr) bool {
	d := dispatchAt(frames, l)
	if d == nil {
		return false // other loops are charged at their start
	}
	if op != 0x0c || prev.op != 0x21 || prev.imm != 0 || prev2.op != 0x41 {
		return true
	}
	target := d.deflt
	if k := uint32(prev2.imm); k < uint32(len(d.regions)) {
		target = d.regions[k]
	}
	return target < 0 || target <= d.region
}

func (rw *rewriter) funcErr(fn int, err error) error {
	return fmt.Errorf("function %d: %w", rw.importedFuncs+uint32(fn), err)
}

// skipLocals returns the offset of the first instruction of body.
func (rw *rewriter) skipLocals(body []byte) (int, error) {
	n, p := readU32(body, 0)
	for i := uint32(0); i < n && p >= 0; i++ {
		if p = skipLEB(body, p, maxLEB32); p >= 0 {
			p = skipValType(body, p)
		}
	}
	switch {
	case p == -2:
		return 0, fmt.Errorf("%w: local type", ErrUnsupported)
	case p < 0:
		return 0, fmt.Errorf("%w: locals", ErrMalformed)
	}
	return p, nil
}

// skipMemarg skips a memarg: align (bit 6 set: a memory index follows, as
// in multi-memory) and a 32-bit offset.
func skipMemarg(b []byte, p int) int {
	align, p := readU32(b, p)
	if p < 0 {
		return -1
	}
	if align&0x40 != 0 {
		if p = skipLEB(b, p, maxLEB32); p < 0 {
			return -1
		}
	}
	return skipLEB(b, p, maxLEB32)
}

// skipBlockType skips a blocktype: 0x40, a value type, or an s33 type index.
// It returns -2 for a block type this package does not know.
func skipBlockType(b []byte, p int) int {
	if p >= len(b) {
		return -1
	}
	switch c := b[p]; {
	case c == 0x40:
		return p + 1
	case c >= 0x40 && c < 0x80: // a value type
		return skipValType(b, p)
	}
	v, p := readS33(b, p)
	if p >= 0 && v < 0 {
		return -2
	}
	return p
}

// skipValType skips a value type: a number, vector or reference type, or a
// typed reference (ref null? heaptype). GC types are unsupported (-2).
func skipValType(b []byte, p int) int {
	if p >= len(b) {
		return -1
	}
	switch b[p] {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69: // i32 i64 f32 f64 v128 funcref externref exnref
		return p + 1
	case 0x63, 0x64: // (ref null ht), (ref ht)
		_, p = readS33(b, p+1)
		return p
	}
	return -2
}

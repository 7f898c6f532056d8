// Package wasmrewrite instruments a WebAssembly module binary so that a host
// can stop a spinning guest cheaply, and so that the guest reaches a point
// where Go's scheduler can preempt it (letting a stop-the-world GC proceed).
//
// # Why
//
// Code compiled by wazero has no Go preemption points. A guest in a tight
// loop holds its OS thread and P until it returns, so a stop-the-world GC
// waits for it, stalling the whole process. wazero's answer,
// RuntimeConfig.WithCloseOnContextDone(true), spawns a goroutine per call
// and exits to Go at every loop back-edge. InstrumentLoops instead rewrites
// the module once at load time:
//
//   - two mutable i32 globals are appended: $fuel (starts at TickEvery) and
//     $interrupt (starts at 0, exported as InterruptExport);
//   - a function $tick () -> () is appended at the end of the function index
//     space: memory.grow 0 (wazero's compiled code exits to Go for it, which
//     gives the Go scheduler a preemption point), then refills $fuel, then
//     traps with unreachable if $interrupt is not 0;
//   - every loop body starts with, and every call (call*, return_call*:
//     calls can repeat without a loop) is preceded by, the stack-neutral
//     sequence
//     $fuel--; if $fuel == 0 { call $tick }. Loops in the shape Go's code
//     generator gives every function (a dispatch loop, see code.go) get the
//     sequence before each branch back into them that is not provably a
//     forward jump, instead of at their start.
//
// No existing index shifts: globals, the type and the function are appended
// at the end of their index spaces. Custom sections that hold code offsets
// (DWARF .debug_*, sourceMappingURL, external_debug_info, reloc.*,
// metadata.code.*) are dropped; others (name, producers, ...) are kept.
//
// # Use
//
// After instantiating the rewritten module, take
// mod.ExportedGlobal(InterruptExport).(api.MutableGlobal) and Set(1) on it
// from any goroutine to make the running (or next) call trap with
// "unreachable". The store is a plain word write that the guest observes at
// its next tick, i.e. within TickEvery loop iterations. Reset the global to
// 0 before reusing the instance, and only once the interrupting write is
// known to have happened. The wasmcorn host does this with one scanning
// watchdog goroutine per runtime (host/watchdog.go) and discards an
// interrupted instance instead of resetting it.
//
// What is not covered: a start-section function runs inside instantiation,
// before the host can reach the global (instantiate without start functions
// and call _initialize/_start under a deadline instead); a host function
// that blocks is the host's business.
//
// InstrumentLoops is a pure function, safe for concurrent use.
package wasmrewrite

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// InterruptExport is the export name of the mutable i32 global that the host
// sets to 1 to stop the guest: the guest traps (unreachable) at its next
// tick. It is 0 after instantiation.
const InterruptExport = "wasmcorn.interrupt"

// DefaultTickEvery is the number of loop iterations between ticks when
// Options.TickEvery is 0. A tick costs one exit to Go (a few tens of ns);
// 10000 iterations of even the tightest loop take microseconds, so the
// amortised overhead is well under 1% while the reaction time to an
// interrupt or a GC stays far below a millisecond.
const DefaultTickEvery = 10000

// Options configures InstrumentLoops. The zero value is ready to use.
type Options struct {
	// TickEvery is the number of loop iterations (loop entries, back-edges,
	// charged branches into dispatch loops and tail calls, counted across
	// the whole instance) between two ticks.
	// 0 means DefaultTickEvery.
	TickEvery uint32
}

// ErrUnsupported is returned (wrapped) when the module is valid as far as
// this package can tell but uses something it cannot rewrite safely: an
// unknown opcode or type, GC types, no memory, a 64-bit memory or table,
// custom page sizes, a component, or an existing export named
// InterruptExport. Callers fall back to running the original module under
// wazero's WithCloseOnContextDone(true).
var ErrUnsupported = errors.New("wasmrewrite: unsupported module")

// ErrMalformed is returned (wrapped) when the input is not a well-formed
// module binary: truncated, bad LEB128, sections out of order, counts that
// do not match, indices out of range. wazero would reject such a module too;
// callers may compile the original to get wazero's own error message.
var ErrMalformed = errors.New("wasmrewrite: malformed module")

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionRank is the position of a known section id in the required order
// (0 for custom sections and unknown ids).
var sectionRank = [14]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11,
	secCode: 12, secData: 13,
}

var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

type section struct {
	id         byte
	start      int // offset of the id byte in the input
	payload    int // offset of the payload
	end        int // end of the payload
	drop       bool
	afterExtra []byte // ids of synthesized sections to emit right after this one
}

type rewriter struct {
	in   []byte
	out  []byte
	secs []section
	idx  [14]int // index into secs of each known section, -1 if absent

	tickEvery     uint32
	types         uint32
	importedFuncs uint32
	definedFuncs  uint32
	origGlobals   uint32 // imported + defined
	definedGlobal uint32
	exports       uint32
	memories      uint32

	fuel, interrupt uint32 // new global indices
	tickFunc        uint32 // new function index
	tickType        uint32 // new type index
	check           []byte // instrumentation inserted at loop starts and before tail calls
}

// InstrumentLoops returns a copy of the module binary wasm with loop
// instrumentation (see the package documentation). The input is not
// modified. Any malformed input returns an error wrapping ErrMalformed,
// anything valid that cannot be rewritten safely an error wrapping
// ErrUnsupported; it never panics.
func InstrumentLoops(wasm []byte, opts Options) ([]byte, error) {
	rw := &rewriter{in: wasm, tickEvery: opts.TickEvery}
	if rw.tickEvery == 0 {
		rw.tickEvery = DefaultTickEvery
	}
	if err := rw.scanSections(); err != nil {
		return nil, err
	}
	if err := rw.analyze(); err != nil {
		return nil, err
	}
	if err := rw.emit(); err != nil {
		return nil, err
	}
	return rw.out, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}

// scanSections splits the input into sections and checks their order.
func (rw *rewriter) scanSections() error {
	in := rw.in
	if len(in) < 8 || !bytes.Equal(in[:4], header[:4]) {
		return malformed("missing wasm magic")
	}
	if !bytes.Equal(in[4:8], header[4:]) {
		return unsupported("binary version %x (not a core module version 1)", in[4:8])
	}
	for i := range rw.idx {
		rw.idx[i] = -1
	}
	rank := 0
	for p := 8; p < len(in); {
		s := section{id: in[p], start: p}
		size, q := readU32(in, p+1)
		if q < 0 {
			return malformed("section at offset %d: bad size", p)
		}
		if uint64(size) > uint64(len(in)-q) {
			return malformed("section %d at offset %d: size %d beyond end of module", s.id, p, size)
		}
		s.payload, s.end = q, q+int(size)
		p = s.end
		if s.id >= byte(len(sectionRank)) {
			return unsupported("unknown section id %d at offset %d", s.id, s.start)
		}
		if s.id == secCustom {
			n, q := readU32(in[:s.end], s.payload)
			if q < 0 || uint64(n) > uint64(s.end-q) {
				return malformed("custom section at offset %d: bad name", s.start)
			}
			s.drop = dropCustom(string(in[q : q+int(n)]))
		} else {
			r := sectionRank[s.id]
			if r <= rank {
				return malformed("section %d at offset %d: out of order or duplicated", s.id, s.start)
			}
			rank = r
			rw.idx[s.id] = len(rw.secs)
		}
		rw.secs = append(rw.secs, s)
	}
	return nil
}

// dropCustom reports whether a custom section refers to code offsets, which
// the rewrite invalidates.
func dropCustom(name string) bool {
	return strings.HasPrefix(name, ".debug_") ||
		name == "sourceMappingURL" ||
		name == "external_debug_info" ||
		strings.HasPrefix(name, "reloc.") ||
		strings.HasPrefix(name, "metadata.code.")
}

// payload returns the payload of a known section, or nil if absent.
func (rw *rewriter) payload(id int) []byte {
	if i := rw.idx[id]; i >= 0 {
		s := rw.secs[i]
		return rw.in[s.payload:s.end]
	}
	return nil
}

// analyze reads the counts and checks the properties the rewrite relies on.
func (rw *rewriter) analyze() error {
	if b := rw.payload(secType); b != nil {
		n, p := readU32(b, 0)
		for i := uint32(0); i < n && p >= 0; i++ {
			if p >= len(b) {
				p = -1
				break
			}
			if b[p] != 0x60 {
				return unsupported("type %d: form 0x%02x (only function types)", i, b[p])
			}
			p++
			for j := 0; j < 2 && p >= 0; j++ { // params, results
				var m uint32
				m, p = readU32(b, p)
				for k := uint32(0); k < m && p >= 0; k++ {
					p = skipValType(b, p)
				}
			}
		}
		if err := sectionEnd("type", b, p); err != nil {
			return err
		}
		rw.types = n
	}
	if b := rw.payload(secImport); b != nil {
		n, p := readU32(b, 0)
		for i := uint32(0); i < n && p >= 0; i++ {
			for j := 0; j < 2 && p >= 0; j++ { // module and field names
				var l uint32
				l, p = readU32(b, p)
				if p >= 0 && uint64(l) <= uint64(len(b)-p) {
					p += int(l)
				} else {
					p = -1
				}
			}
			if p < 0 || p >= len(b) {
				p = -1
				break
			}
			kind := b[p]
			p++
			switch kind {
			case 0x00: // func
				rw.importedFuncs++
				var ti uint32
				if ti, p = readU32(b, p); p >= 0 && ti >= rw.types {
					return malformed("import %d: type index %d out of range (%d types)", i, ti, rw.types)
				}
			case 0x01: // table
				if p = skipValType(b, p); p >= 0 {
					var err error
					if p, err = skipLimits(b, p, "table"); err != nil {
						return fmt.Errorf("import %d: %w", i, err)
					}
				}
			case 0x02: // memory
				rw.memories++
				var err error
				if p, err = skipLimits(b, p, "memory"); err != nil {
					return fmt.Errorf("import %d: %w", i, err)
				}
			case 0x03: // global
				rw.origGlobals++
				if p = skipValType(b, p); p >= 0 {
					p++ // mutability
				}
			case 0x04: // tag: attribute, type index
				if p+1 <= len(b) {
					p = skipLEB(b, p+1, maxLEB32)
				} else {
					p = -1
				}
			default:
				return unsupported("import %d: kind 0x%02x", i, kind)
			}
		}
		if p == -2 {
			return unsupported("import section: value type")
		}
		if err := sectionEnd("import", b, p); err != nil {
			return err
		}
	}
	if b := rw.payload(secFunction); b != nil {
		n, p := readU32(b, 0)
		for i := uint32(0); i < n && p >= 0; i++ {
			var ti uint32
			if ti, p = readU32(b, p); p >= 0 && ti >= rw.types {
				return malformed("function %d: type index %d out of range (%d types)", rw.importedFuncs+i, ti, rw.types)
			}
		}
		if err := sectionEnd("function", b, p); err != nil {
			return err
		}
		rw.definedFuncs = n
	}
	if b := rw.payload(secMemory); b != nil {
		n, p := readU32(b, 0)
		for i := uint32(0); i < n && p >= 0; i++ {
			var err error
			if p, err = skipLimits(b, p, "memory"); err != nil {
				return fmt.Errorf("memory %d: %w", i, err)
			}
		}
		if err := sectionEnd("memory", b, p); err != nil {
			return err
		}
		rw.memories += n
	}
	if rw.memories == 0 {
		return unsupported("module has no memory ($tick needs memory.grow)")
	}
	if b := rw.payload(secGlobal); b != nil {
		// Entries are copied verbatim; only the count matters.
		n, p := readU32(b, 0)
		if p < 0 {
			return malformed("global section: bad count")
		}
		rw.definedGlobal = n
		rw.origGlobals += n
	}
	if rw.origGlobals > 1<<32-3 || rw.types == 1<<32-1 || rw.importedFuncs+rw.definedFuncs < rw.importedFuncs {
		return unsupported("index space full")
	}
	if b := rw.payload(secExport); b != nil {
		n, p := readU32(b, 0)
		for i := uint32(0); i < n && p >= 0; i++ {
			var l uint32
			l, p = readU32(b, p)
			if p < 0 || uint64(l)+1 > uint64(len(b)-p) {
				p = -1
				break
			}
			name := b[p : p+int(l)]
			p += int(l)
			kind := b[p]
			p++
			var idx uint32
			idx, p = readU32(b, p)
			if string(name) == InterruptExport {
				return unsupported("export %q already exists", InterruptExport)
			}
			if kind == 0x03 && p >= 0 && idx >= rw.origGlobals {
				return malformed("export %q: global index %d out of range", name, idx)
			}
		}
		if err := sectionEnd("export", b, p); err != nil {
			return err
		}
		rw.exports = n
	}
	if rw.idx[secCode] < 0 && rw.definedFuncs > 0 {
		return malformed("function section declares %d functions but there is no code section", rw.definedFuncs)
	}
	if rw.idx[secCode] >= 0 {
		n, p := readU32(rw.payload(secCode), 0)
		if p < 0 {
			return malformed("code section: bad count")
		}
		if n != rw.definedFuncs {
			return malformed("code section has %d bodies, function section declares %d", n, rw.definedFuncs)
		}
	}

	rw.tickType = rw.types
	rw.tickFunc = rw.importedFuncs + rw.definedFuncs
	rw.fuel = rw.origGlobals
	rw.interrupt = rw.origGlobals + 1
	// global.get $fuel; i32.const 1; i32.sub; global.set $fuel;
	// global.get $fuel; i32.eqz; if; call $tick; end
	//
	// Decrementing first lets wazero reuse the stored value for the test
	// (one load and one store per iteration); measured on a 2-instruction
	// loop body this is ~10% faster than testing before decrementing.
	c := make([]byte, 0, 32)
	c = appendU32(append(c, 0x23), rw.fuel)
	c = append(c, 0x41, 0x01, 0x6b)
	c = appendU32(append(c, 0x24), rw.fuel)
	c = appendU32(append(c, 0x23), rw.fuel)
	c = append(c, 0x45, 0x04, 0x40)
	c = appendU32(append(c, 0x10), rw.tickFunc)
	c = append(c, 0x0b)
	rw.check = c
	return nil
}

// sectionEnd checks that parsing a section payload b ended exactly at its end.
func sectionEnd(name string, b []byte, p int) error {
	switch {
	case p == -2:
		return unsupported("%s section: value type", name)
	case p < 0 || p > len(b):
		return malformed("%s section: truncated or invalid", name)
	case p != len(b):
		return malformed("%s section: %d trailing bytes", name, len(b)-p)
	}
	return nil
}

// skipLimits skips memory or table limits, refusing 64-bit and custom page
// size variants.
func skipLimits(b []byte, p int, what string) (int, error) {
	if p < 0 || p >= len(b) {
		return -1, malformed("%s limits: truncated", what)
	}
	flags := b[p]
	p++
	switch {
	case flags&0x04 != 0:
		return -1, unsupported("64-bit %s", what)
	case flags&^0x03 != 0:
		return -1, unsupported("%s limits flags 0x%02x", what, flags)
	}
	if p = skipLEB(b, p, maxLEB32); p >= 0 && flags&0x01 != 0 {
		p = skipLEB(b, p, maxLEB32)
	}
	if p < 0 {
		return -1, malformed("%s limits: truncated", what)
	}
	return p, nil
}

// emit writes the output module.
func (rw *rewriter) emit() error {
	// Synthesize absent sections right after the last present section that
	// must precede them (before the first section if none does).
	var leading []byte
	for _, id := range []byte{secType, secFunction, secGlobal, secExport, secCode} {
		if rw.idx[id] >= 0 {
			continue
		}
		anchor := -1
		for i, s := range rw.secs {
			if s.id != secCustom && sectionRank[s.id] < sectionRank[id] {
				anchor = i
			}
		}
		if anchor < 0 {
			leading = append(leading, id)
		} else {
			rw.secs[anchor].afterExtra = append(rw.secs[anchor].afterExtra, id)
		}
	}

	// Every loop has a 0x03 opcode byte: counting them in the code section
	// (a vectorised scan) bounds the growth, so the output is allocated once
	// unless tail calls are frequent.
	grow := 256
	if code := rw.payload(secCode); code != nil {
		grow += bytes.Count(code, []byte{0x03}) * len(rw.check)
	}
	rw.out = make([]byte, 0, len(rw.in)+grow)
	rw.out = append(rw.out, header...)
	for _, id := range leading {
		if err := rw.emitSection(id, -1); err != nil {
			return err
		}
	}
	for i := range rw.secs {
		s := &rw.secs[i]
		if s.drop {
			continue
		}
		if err := rw.emitSection(s.id, i); err != nil {
			return err
		}
		for _, id := range s.afterExtra {
			if err := rw.emitSection(id, -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// emitSection writes section id; i is its index in rw.secs, or -1 when the
// section is synthesized.
func (rw *rewriter) emitSection(id byte, i int) error {
	var count uint32
	var rest []byte // payload after the count
	if i >= 0 {
		s := rw.secs[i]
		switch id {
		case secType, secFunction, secGlobal, secExport, secCode:
			b := rw.in[s.payload:s.end]
			n, p := readU32(b, 0)
			if p < 0 {
				return malformed("section %d: bad count", id)
			}
			count, rest = n, b[p:]
		default:
			rw.out = append(rw.out, rw.in[s.start:s.end]...)
			return nil
		}
	}
	switch id {
	case secType:
		add := []byte{0x60, 0x00, 0x00}
		rw.writeSection(id, count+1, rest, add)
	case secFunction:
		var tmp [maxLEB32]byte
		rw.writeSection(id, count+1, rest, appendU32(tmp[:0], rw.tickType))
	case secGlobal:
		var tmp [32]byte
		add := append(tmp[:0], 0x7f, 0x01, 0x41) // mut i32, i32.const TickEvery
		add = appendS32(add, int32(rw.tickEvery))
		add = append(add, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b) // mut i32, i32.const 0
		rw.writeSection(id, count+2, rest, add)
	case secExport:
		add := make([]byte, 0, len(InterruptExport)+8)
		add = appendU32(add, uint32(len(InterruptExport)))
		add = append(add, InterruptExport...)
		add = appendU32(append(add, 0x03), rw.interrupt)
		rw.writeSection(id, count+1, rest, add)
	case secCode:
		return rw.emitCode(count, rest)
	}
	return nil
}

// writeSection writes a section whose payload is count, rest and add.
func (rw *rewriter) writeSection(id byte, count uint32, rest, add []byte) {
	size := lenU32(count) + len(rest) + len(add)
	rw.out = append(rw.out, id)
	rw.out = appendU32(rw.out, uint32(size))
	rw.out = appendU32(rw.out, count)
	rw.out = append(rw.out, rest...)
	rw.out = append(rw.out, add...)
}

// emitCode rewrites the code section: count bodies in b, then $tick.
func (rw *rewriter) emitCode(count uint32, b []byte) error {
	reserved := lenU32(uint32(len(b) + lenU32(count)))
	rw.out = append(rw.out, secCode)
	at := len(rw.out)
	rw.out = append(rw.out, make([]byte, reserved)...) // size placeholder
	start := len(rw.out)
	rw.out = appendU32(rw.out, count+1)
	p := 0
	for fn := 0; fn < int(count); fn++ {
		size, q := readU32(b, p)
		if q < 0 || uint64(size) > uint64(len(b)-q) {
			return malformed("code section: function %d: bad body size", rw.importedFuncs+uint32(fn))
		}
		end := q + int(size)
		if err := rw.body(b[p:end], b[q:end], fn); err != nil {
			return err
		}
		p = end
	}
	if p != len(b) {
		return malformed("code section: %d trailing bytes", len(b)-p)
	}
	// $tick: i32.const 0; memory.grow 0; drop;
	// i32.const TickEvery; global.set $fuel;
	// global.get $interrupt; if; unreachable; end; end
	//
	// $fuel is refilled before the interrupt check: after an interrupted
	// call it must not stay 0, or the next call's first decrement would wrap
	// it and postpone the next tick by 2^32 iterations.
	var tmp [40]byte
	t := append(tmp[:0], 0x00, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x41) // no locals
	t = appendS32(t, int32(rw.tickEvery))
	t = appendU32(append(t, 0x24), rw.fuel)
	t = appendU32(append(t, 0x23), rw.interrupt)
	t = append(t, 0x04, 0x40, 0x00, 0x0b, 0x0b)
	rw.out = appendU32(rw.out, uint32(len(t)))
	rw.out = append(rw.out, t...)

	size := len(rw.out) - start
	if uint64(size) > 1<<32-1 {
		return unsupported("instrumented code section too large")
	}
	rw.out = putSize(rw.out, at, reserved, uint32(size))
	return nil
}

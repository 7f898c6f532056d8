package testplugins

// SlowCompile returns a valid module of n functions (i32) -> i32, each a
// chain of arithmetic, so that compiling it takes a while (about 100ms
// for n = 3000 on one core, far longer under the race detector): tests use
// it to act while a compile is running. It exports nothing, so a load that
// gets past compiling fails with a missing-export error.
func SlowCompile(n int) []byte {
	uleb := func(b []byte, v uint64) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	section := func(out []byte, id byte, body []byte) []byte {
		return append(uleb(append(out, id), uint64(len(body))), body...)
	}
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = section(out, 1, []byte{1, 0x60, 1, 0x7f, 1, 0x7f}) // one type: (i32) -> i32
	funcs := uleb(nil, uint64(n))
	for range n {
		funcs = append(funcs, 0)
	}
	out = section(out, 3, funcs)
	body := []byte{0, 0x20, 0} // no locals; local.get 0
	for range 40 {
		body = append(body, 0x41, 7, 0x6c, 0x41, 3, 0x6a) // i32.const 7; i32.mul; i32.const 3; i32.add
	}
	body = append(body, 0x0b)
	code := uleb(nil, uint64(n))
	for range n {
		code = append(uleb(code, uint64(len(body))), body...)
	}
	return section(out, 10, code)
}

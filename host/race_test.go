package host

import "testing"

// SkipCompilingUnderRace skips a test that compiles real Go or Python
// plugins when the race detector is on: wazero's compiler, instrumented
// itself, is tens of times slower there (one cold compile of a Go plugin
// took minutes and the package hit its timeout in CI). `make test` runs
// ./host a second time without -race, where these tests run; the race pass
// still covers the pool, watchdog and engine through the small WAT guests
// of the conformance kit.
func SkipCompilingUnderRace(t testing.TB) {
	t.Helper()
	if raceEnabled {
		t.Skip("compiles real plugins: run without -race (make test's second pass)")
	}
}

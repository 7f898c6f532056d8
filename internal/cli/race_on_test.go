//go:build race

package cli

// raceEnabled: under the race detector wazero compiles plugins tens of
// times slower, so tests that compile many plugins are skipped.
const raceEnabled = true

//go:build race

package db

// raceEnabled: the race detector is on, and sync.Pool drops items at
// random, so allocation counts are meaningless.
const raceEnabled = true

//go:build race

package cache

// raceEnabled: the race detector is on, and sync.Pool drops items at
// random, so allocation counts are meaningless.
const raceEnabled = true

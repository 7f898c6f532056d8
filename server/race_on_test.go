//go:build race

package server

// raceEnabled: the race detector changes allocation behaviour (sync.Pool
// drops items at random), so allocation counts are not checked under it.
const raceEnabled = true

//go:build !unix

package pluginbuild

// lockFile is a no-op where flock is unavailable: concurrent processes may
// then build the same plugin twice, which the atomic rename keeps correct.
func lockFile(string) (func(), error) { return func() {}, nil }

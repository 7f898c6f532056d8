//go:build !linux

package testsvc

import (
	"syscall"
	"time"
)

// childAttr uses the defaults: only Linux can tie a child's life to ours.
func childAttr() *syscall.SysProcAttr { return nil }

// waitStopped cannot observe thread states here; it gives the signal a
// moment to land.
func waitStopped(pid int, stopped bool) error {
	time.Sleep(50 * time.Millisecond)
	return nil
}

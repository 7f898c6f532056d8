//go:build unix && !linux

package proc

import "syscall"

// sysProcAttr puts the child in its own process group (Stop signals the
// whole tree). Without Linux's Pdeathsig a server outlives a suite that is
// killed; Stop still ends it on every normal exit.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

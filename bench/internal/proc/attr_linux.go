package proc

import "syscall"

// sysProcAttr puts the child in its own process group (Stop signals the
// whole tree) and has the kernel kill it if the suite dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

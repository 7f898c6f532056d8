package testsvc

import "syscall"

// childAttr makes a server die with the test process (even when the test
// binary is killed and no t.Cleanup runs) and keeps terminal signals aimed
// at `go test` from reaching it directly.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

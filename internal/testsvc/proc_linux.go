package testsvc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// childAttr makes a server die with the test process (even when the test
// binary is killed and no t.Cleanup runs) and keeps terminal signals aimed
// at `go test` from reaching it directly.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// waitStopped waits until every thread of process pid is stopped (state T
// in /proc) when stopped is true, or none is when false: signals are
// delivered asynchronously, and a paused server must not answer one more
// query after Pause returns.
func waitStopped(pid int, stopped bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		done := len(tasks) > 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // thread gone
			}
			// "pid (comm) S ...": the state follows the last ')'.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) {
				continue
			}
			if isStopped := b[i+2] == 'T' || b[i+2] == 't'; isStopped != stopped {
				done = false
				break
			}
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d: threads not %s after 10s", pid, map[bool]string{true: "stopped", false: "running"}[stopped])
		}
		time.Sleep(time.Millisecond)
	}
}

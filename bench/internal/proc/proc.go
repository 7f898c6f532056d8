// Package proc starts the benchmark's server processes and measures them
// from /proc: CPU time and memory of a process and all its descendants
// (nginx and gunicorn fork workers), so each target is charged for exactly
// the processes it runs.
package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Process is a started child process. Its methods are safe for concurrent
// use.
type Process struct {
	// Name labels the process in errors.
	Name string
	// LogPath receives the process's stdout and stderr.
	LogPath string

	cmd      *exec.Cmd
	done     chan struct{}
	once     sync.Once
	stopping atomic.Bool // Stop was called: an exit is expected
	err      error       // Wait's result, set before done closes
}

// Start runs cmd with stdout and stderr appended to logPath, in its own
// process group, killed by the kernel if this process dies (so a crashed
// suite leaves no servers behind).
func Start(name string, cmd *exec.Cmd, logPath string) (*Process, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v to %s (pid %d): %w", sig, p.Name, p.Pid(), err)
	}
	return nil
}

// Exited returns nil while the process runs (or once Stop has stopped
// it); when it has exited by itself, an error naming it, its exit status
// (or the signal that killed it) and the tail of its log, so that a server
// that crashed under load is diagnosable from the failure message alone.
func (p *Process) Exited() error {
	if p.stopping.Load() {
		return nil
	}
	select {
	case <-p.done:
	default:
		return nil
	}
	status := "exit status 0"
	if p.err != nil {
		status = p.err.Error()
	}
	return fmt.Errorf("%s (pid %d) exited unexpectedly (%s); %s",
		p.Name, p.Pid(), status, crashReport(p.LogPath, logTailLines))
}

// crashReport quotes the log at path for an unexpected exit: from the
// last Go crash header ("panic: ", "fatal error: ", "SIGSEGV: ", which a
// tail would miss under the goroutine dump that follows it) when there is
// one, else the tail; n lines either way.
func crashReport(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log %s: %v)", path, err)
	}
	text := string(b)
	at := -1
	for _, h := range []string{"panic: ", "fatal error: ", "SIGSEGV: "} {
		// Index in "\n"+text of "\n"+h is the header's index in text.
		at = max(at, strings.LastIndex("\n"+text, "\n"+h))
	}
	if at < 0 {
		return "log tail:\n" + Tail(path, n)
	}
	lines := strings.SplitN(text[at:], "\n", n+1)
	return "crash report from the log:\n" + strings.Join(lines[:min(n, len(lines))], "\n")
}

// logTailLines is how much of a process's log errors quote.
const logTailLines = 30

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills its whole process group. It returns nil once the process is gone,
// whatever its exit status (Exited, called before, tells whether it had
// exited by itself).
func (p *Process) Stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		p.stopping.Store(true)
		if err = p.Signal(syscall.SIGTERM); err != nil {
			return
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
			_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
			<-p.done
		}
		// Workers left behind by a master that exited first.
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	})
	return err
}

// LogTail returns the last n lines of the process's log, for errors.
func (p *Process) LogTail(n int) string { return Tail(p.LogPath, n) }

// Tail returns the last n lines of the file at path.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitTCP waits until addr accepts a TCP connection, failing early when p
// (if not nil) exits, or after timeout.
func WaitTCP(ctx context.Context, addr string, p *Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p != nil {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited before listening on %s (%v); log tail:\n%s",
					p.Name, addr, p.err, p.LogTail(logTailLines))
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Usage is the resource use of a set of process trees at one moment.
type Usage struct {
	// CPU is user+system time of every live process in the trees plus what
	// they collected from exited children.
	CPU time.Duration
	// PeakRSS is the sum of each live process's peak resident set (VmHWM),
	// bytes. Pages shared between processes count once per process.
	PeakRSS int64
	// RSS is the sum of the current resident sets, bytes.
	RSS int64
	// PSS is the sum of proportional set sizes (shared pages divided among
	// their sharers), bytes; 0 where /proc/PID/smaps_rollup is unreadable.
	PSS int64
	// Procs is the number of live processes counted.
	Procs int
}

// userHZ is the unit of the times in /proc/PID/stat: USER_HZ, 100 on every
// Linux architecture Go supports.
const userHZ = 100

type statLine struct {
	ppid int
	cpu  int64 // ticks: utime+stime+cutime+cstime
}

func readStat(pid int) (statLine, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return statLine{}, err
	}
	return parseStat(string(b))
}

// parseStat reads ppid and CPU times from a /proc/PID/stat line. The comm
// field may contain spaces and parentheses, so fields are counted from the
// last ')'.
func parseStat(s string) (statLine, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return statLine{}, fmt.Errorf("malformed stat line %.60q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
	if len(f) < 15 {
		return statLine{}, fmt.Errorf("short stat line %.60q", s)
	}
	var st statLine
	var err error
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return statLine{}, fmt.Errorf("stat ppid: %w", err)
	}
	for _, k := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return statLine{}, fmt.Errorf("stat field %d: %w", k+3, err)
		}
		st.cpu += v
	}
	return st, nil
}

// Descendants returns roots and every live descendant of them.
func Descendants(roots ...int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	var out []int
	seen := map[int]bool{}
	var walk func(int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		out = append(out, pid)
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return out, nil
}

// TreeUsage measures roots and all their descendants.
func TreeUsage(roots ...int) (Usage, error) {
	pids, err := Descendants(roots...)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for _, pid := range pids {
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		u.CPU += time.Duration(st.cpu) * time.Second / userHZ
		u.Procs++
		status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err == nil {
			u.PeakRSS += statusKB(string(status), "VmHWM:")
			u.RSS += statusKB(string(status), "VmRSS:")
		}
		if rollup, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup"); err == nil {
			u.PSS += statusKB(string(rollup), "Pss:")
		}
	}
	if u.Procs == 0 {
		return u, fmt.Errorf("no live process among %v", roots)
	}
	return u, nil
}

// statusKB returns the value in bytes of a "Key:  123 kB" line, 0 if absent.
func statusKB(s, key string) int64 {
	i := strings.Index(s, "\n"+key)
	if i < 0 {
		if !strings.HasPrefix(s, key) {
			return 0
		}
		i = 0
	} else {
		i++
	}
	line := s[i+len(key):]
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0
	}
	return v * 1024
}

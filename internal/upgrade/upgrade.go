// Package upgrade hands listening sockets from a running wasmcorn to a new
// binary without dropping a connection, like nginx's and gunicorn's USR2.
//
// The old process starts the new executable with its listeners as extra
// files and a pipe. The new process takes the listeners over (the kernel
// keeps accepting into their queues throughout), loads its plugins, and
// writes to the pipe when it serves. Only then does the old process stop
// accepting and drain. If the new process exits, fails to get ready within
// the timeout, or reports an error, the old one keeps serving untouched.
package upgrade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment variables between the two processes.
const (
	envFDs   = "WASMCORN_UPGRADE_FDS"   // comma-separated listener names (addresses), fds 3.. in order
	envReady = "WASMCORN_UPGRADE_READY" // fd number of the readiness pipe
)

// ErrNotReady is returned (wrapped) when the new process did not report
// ready; the old process keeps serving.
var ErrNotReady = errors.New("new process did not become ready")

// Upgrader owns the process's listeners. It is safe for concurrent use.
// The zero value is not usable; call New once at startup.
type Upgrader struct {
	mu        sync.Mutex
	inherited []inheritedFile // from the parent, not yet claimed, in the parent's order
	listeners []named         // everything Listen returned, in order
	readyPipe *os.File
	reusePort bool
	upgrading bool
}

type named struct {
	name string
	ln   net.Listener
}

// inheritedFile is a listener handed over by the parent under the address
// it was configured with. Two listeners may share a name (both "127.0.0.1:0",
// say): each process opens its listeners in the same order, so the n-th
// Listen of a name claims the n-th file of that name.
type inheritedFile struct {
	name string
	f    *os.File
}

// New reads what a parent process handed over, if anything. With reusePort
// new listeners are opened with SO_REUSEPORT, so several independent
// processes can share a port.
func New(reusePort bool) (*Upgrader, error) {
	u := &Upgrader{reusePort: reusePort}
	if v := os.Getenv(envFDs); v != "" {
		for i, name := range strings.Split(v, ",") {
			u.inherited = append(u.inherited, inheritedFile{name, os.NewFile(uintptr(3+i), name)})
		}
	}
	if v := os.Getenv(envReady); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("upgrade: bad %s=%q", envReady, v)
		}
		u.readyPipe = os.NewFile(uintptr(fd), "upgrade-ready")
	}
	os.Unsetenv(envFDs)
	os.Unsetenv(envReady)
	return u, nil
}

// Inherited reports whether this process was started by an upgrade.
func (u *Upgrader) Inherited() bool { return u.readyPipe != nil }

// Listen returns the listener for a TCP address: the one inherited from
// the parent when there is one, else a new one.
func (u *Upgrader) Listen(addr string) (net.Listener, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if i := slices.IndexFunc(u.inherited, func(in inheritedFile) bool { return in.name == addr }); i >= 0 {
		f := u.inherited[i].f
		u.inherited = slices.Delete(u.inherited, i, i+1)
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("upgrade: inherited listener %s: %w", addr, err)
		}
		u.listeners = append(u.listeners, named{addr, ln})
		return ln, nil
	}
	lc := net.ListenConfig{}
	if u.reusePort {
		lc.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	u.listeners = append(u.listeners, named{addr, ln})
	return ln, nil
}

// soReusePort is SO_REUSEPORT on Linux.
const soReusePort = 0xf

// Ready tells the parent that this process serves. It closes listeners
// the parent handed over that this process did not claim. Calling it in a
// process that was not started by an upgrade does nothing.
func (u *Upgrader) Ready() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, in := range u.inherited {
		in.f.Close()
	}
	u.inherited = nil
	if u.readyPipe == nil {
		return nil
	}
	_, err := u.readyPipe.WriteString("ready\n")
	u.readyPipe.Close()
	u.readyPipe = nil
	return err
}

// Fail tells the parent that this process cannot serve (the parent keeps
// serving); msg is logged by the parent.
func (u *Upgrader) Fail(msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.readyPipe != nil {
		u.readyPipe.WriteString("fail " + strings.ReplaceAll(msg, "\n", " ") + "\n")
		u.readyPipe.Close()
		u.readyPipe = nil
	}
}

// Upgrade starts executable (with args and the current environment) as
// the new server, handing it every listener, and waits until it reports
// ready or fails. On nil the caller should stop accepting, drain and exit;
// on error the caller keeps serving (the child, if still alive, is killed).
// Only one upgrade runs at a time.
func (u *Upgrader) Upgrade(ctx context.Context, executable string, args []string, timeout time.Duration) (*os.Process, error) {
	u.mu.Lock()
	if u.upgrading {
		u.mu.Unlock()
		return nil, errors.New("upgrade: already in progress")
	}
	u.upgrading = true
	files := make([]*os.File, 0, len(u.listeners))
	names := make([]string, 0, len(u.listeners))
	for _, l := range u.listeners {
		fl, ok := l.ln.(interface{ File() (*os.File, error) })
		if !ok {
			u.mu.Unlock()
			u.done()
			return nil, fmt.Errorf("upgrade: listener %s cannot be handed over", l.name)
		}
		f, err := fl.File()
		if err != nil {
			u.mu.Unlock()
			u.done()
			return nil, fmt.Errorf("upgrade: listener %s: %w", l.name, err)
		}
		files = append(files, f)
		names = append(names, l.name)
	}
	u.mu.Unlock()
	defer u.done()
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()

	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("upgrade: pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(executable, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = append(files, w)
	cmd.Env = append(os.Environ(),
		envFDs+"="+strings.Join(names, ","),
		envReady+"="+strconv.Itoa(3+len(files)))
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("upgrade: start %s: %w", executable, err)
	}
	w.Close()

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	fail := func(err error) (*os.Process, error) {
		cmd.Process.Kill()
		return nil, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case s := <-line:
		if s == "ready" {
			return cmd.Process, nil
		}
		if s == "" {
			// The pipe closed without a word: the child died before Ready.
			select {
			case err := <-exited:
				return nil, fmt.Errorf("upgrade: %w: new process exited: %v", ErrNotReady, err)
			case <-time.After(time.Second):
				return fail(fmt.Errorf("upgrade: %w: new process closed its readiness pipe", ErrNotReady))
			}
		}
		return fail(fmt.Errorf("upgrade: %w: %s", ErrNotReady, strings.TrimPrefix(s, "fail ")))
	case err := <-exited:
		// A child that reported why before exiting raced its own exit:
		// prefer its words (the reader sees them or EOF right away).
		select {
		case s := <-line:
			if strings.HasPrefix(s, "fail ") {
				return nil, fmt.Errorf("upgrade: %w: %s", ErrNotReady, strings.TrimPrefix(s, "fail "))
			}
		case <-time.After(time.Second):
		}
		return nil, fmt.Errorf("upgrade: %w: new process exited: %v", ErrNotReady, err)
	case <-timer.C:
		return fail(fmt.Errorf("upgrade: %w within %v", ErrNotReady, timeout))
	case <-ctx.Done():
		return fail(fmt.Errorf("upgrade: %w", ctx.Err()))
	}
}

func (u *Upgrader) done() {
	u.mu.Lock()
	u.upgrading = false
	u.mu.Unlock()
}

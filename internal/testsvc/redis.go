package testsvc

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// redisStartTimeout bounds how long a start waits for PING to answer.
const redisStartTimeout = 15 * time.Second

// Redis is a throwaway redis-server for one test: no persistence, bound to
// 127.0.0.1 on a port chosen at StartRedis and kept across Stop/Kill/Start,
// so clients configured with Addr reconnect to the restarted server.
// Its methods are safe for concurrent use; the test's cleanup stops it.
type Redis struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartRedis starts a redis-server for t and registers its shutdown with
// t.Cleanup. It skips the test when redis-server is not installed (install
// it with `scripts/deps.sh test`) and fails it when the server does not
// answer PING in time.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed; run `scripts/deps.sh test` (make test does)")
	}
	r := &Redis{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(r.Kill)
	// A free port can be taken by someone else between freePort and the
	// bind; try a few.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if r.port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if lastErr = r.start(); lastErr == nil {
			return r
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

// Addr is "127.0.0.1:port", the same across restarts.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit.
// Stopping a stopped server does nothing.
func (r *Redis) Stop() { r.signal(syscall.SIGTERM) }

// Kill stops the server abruptly (SIGKILL), as a crash would, and waits for
// the process to be gone. Killing a stopped server does nothing.
func (r *Redis) Kill() { r.signal(syscall.SIGKILL) }

// Start starts the server again on the same port after Stop or Kill. Data
// is not kept (there is no persistence). It fails the test when the server
// does not come up; starting a running server does nothing.
func (r *Redis) Start() {
	r.t.Helper()
	r.mu.Lock()
	running := r.cmd != nil
	r.mu.Unlock()
	if running {
		return
	}
	// The old listener's port is reusable at once (redis sets SO_REUSEADDR),
	// but retry briefly in case the kernel has not released it yet.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Fatalf("restart redis-server on %s: %v", r.Addr(), err)
}

func (r *Redis) start() error {
	logPath := filepath.Join(r.dir, "redis.log")
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", logPath,
	)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", r.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(redisStartTimeout)
	for {
		err := ping(r.Addr())
		if err == nil {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited during start; log:\n%s", r.port, tail(logPath, 20))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within %v (%v); log:\n%s",
				r.port, redisStartTimeout, err, tail(logPath, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	return nil
}

func (r *Redis) signal(sig syscall.Signal) {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd, r.done = nil, nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		r.t.Errorf("signal redis-server: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

package testsvc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// redisStartTimeout bounds how long a start waits for PING to answer.
const redisStartTimeout = 15 * time.Second

// RedisServer is a throwaway redis-server: no persistence, bound to
// 127.0.0.1 on a port chosen at start and kept across Stop/Kill/Start, so
// clients configured with Addr reconnect to the restarted server. Its
// methods are safe for concurrent use; the caller must Close it.
type RedisServer struct {
	bin  string
	dir  string
	port int
	args []string // RedisOptions.Args
	conf string   // RedisOptions.ConfigFile

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// RedisOptions configures StartRedisServer.
type RedisOptions struct {
	// Dir is where the server's directory (log, working directory) is made;
	// empty means the system temporary directory.
	Dir string
	// Args are redis-server options appended to this package's own at every
	// start, e.g. "--maxclients", "10000".
	Args []string
	// ConfigFile, when set, is a config file the server starts from (the
	// first argument), e.g. the sentinel.conf of redis-server --sentinel,
	// which must be writable.
	ConfigFile string
}

// StartRedisServer starts a throwaway redis-server; the caller must Close
// it. The error wraps ErrNotInstalled when redis-server is not installed.
func StartRedisServer(ctx context.Context, opts RedisOptions) (_ *RedisServer, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server: %w", ErrNotInstalled)
	}
	dir, err := os.MkdirTemp(opts.Dir, "wcredis-")
	if err != nil {
		return nil, err
	}
	r := &RedisServer{bin: bin, dir: dir, args: slices.Clone(opts.Args), conf: opts.ConfigFile}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	// A free port can be taken by someone else between freePort and the
	// bind; try a few.
	for attempt := 0; attempt < 3; attempt++ {
		if r.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = r.start(ctx); err == nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("start redis-server: %w", err)
}

// Addr is "127.0.0.1:port", the same across restarts.
func (r *RedisServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Port is the server's TCP port on 127.0.0.1.
func (r *RedisServer) Port() int { return r.port }

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit.
// Stopping a stopped server does nothing.
func (r *RedisServer) Stop() error { return r.signal(syscall.SIGTERM) }

// Kill stops the server abruptly (SIGKILL), as a crash would, and waits for
// the process to be gone. Killing a stopped server does nothing.
func (r *RedisServer) Kill() error { return r.signal(syscall.SIGKILL) }

// Close kills the server if it runs and removes its files.
func (r *RedisServer) Close() error {
	err := r.Kill()
	return errors.Join(err, os.RemoveAll(r.dir))
}

// Start starts the server again on the same port after Stop or Kill. Data
// is not kept (there is no persistence). Starting a running server does
// nothing.
func (r *RedisServer) Start(ctx context.Context) error {
	r.mu.Lock()
	running := r.cmd != nil
	r.mu.Unlock()
	if running {
		return nil
	}
	// The old listener's port is reusable at once (redis sets SO_REUSEADDR),
	// but retry briefly in case the kernel has not released it yet.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = r.start(ctx); err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("restart redis-server on %s: %w", r.Addr(), err)
}

func (r *RedisServer) start(ctx context.Context) error {
	logPath := filepath.Join(r.dir, "redis.log")
	args := append([]string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", logPath,
	}, r.args...)
	if r.conf != "" {
		args = append([]string{r.conf}, args...)
	}
	cmd := exec.Command(r.bin, args...)
	cmd.SysProcAttr = childAttr()
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
		pid, err := serverPID(r.Addr())
		if err == nil && pid != cmd.Process.Pid {
			// Another redis-server had the port; ours fails to bind and
			// exits. The caller retries on a fresh port.
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server pid %d answers on port %d: %w", pid, r.port, errPortTaken)
		}
		if err == nil {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited during start; log:\n%s", r.port, tail(logPath, 20))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = cmd.Process.Kill()
			<-done
			if ctx.Err() != nil {
				return fmt.Errorf("redis-server on port %d: %w", r.port, ctx.Err())
			}
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

func (r *RedisServer) signal(sig syscall.Signal) error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd, r.done = nil, nil
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	var err error
	if serr := cmd.Process.Signal(sig); serr != nil && !errors.Is(serr, os.ErrProcessDone) {
		err = fmt.Errorf("signal %v to redis-server: %w", sig, serr)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return err
}

// inline sends one inline command to the Redis server at addr, then calls
// read with the connection's reader and the first line of the reply.
func inline(addr, cmd string, read func(br *bufio.Reader, first string) error) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	first, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	return read(br, first)
}

// serverPID asks the server at addr for its process id (INFO server).
func serverPID(addr string) (pid int, err error) {
	err = inline(addr, "INFO server", func(br *bufio.Reader, head string) error {
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
		if !strings.HasPrefix(head, "$") || err != nil || n < 0 || n > 1<<20 {
			return fmt.Errorf("INFO answered %q", head)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return err
		}
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
				pid, err = strconv.Atoi(v)
				return err
			}
		}
		return errors.New("INFO server has no process_id")
	})
	return pid, err
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	return inline(addr, "PING", func(_ *bufio.Reader, line string) error {
		if line != "+PONG\r\n" {
			return fmt.Errorf("PING answered %q", line)
		}
		return nil
	})
}

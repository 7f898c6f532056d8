package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The test binary plays the new server when this variable names a role.
const roleEnv = "WASMCORN_UPGRADE_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "":
		os.Exit(m.Run())
	case "child":
		runChild(os.Getenv("WASMCORN_UPGRADE_TEST_ADDR"), true)
	case "failing":
		u, _ := New(false)
		u.Fail("plugins failed to load")
		os.Exit(1)
	case "crashing":
		os.Exit(3)
	}
}

// runChild serves "new" on the inherited listener until killed.
func runChild(addr string, ready bool) {
	u, err := New(false)
	if err != nil || !u.Inherited() {
		fmt.Fprintln(os.Stderr, "child: not started by an upgrade:", err)
		os.Exit(2)
	}
	ln, err := u.Listen(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "new") })}
	go srv.Serve(ln)
	if ready {
		u.Ready()
	}
	select {}
}

func TestUpgradeHandsOverWithoutFailedRequests(t *testing.T) {
	u, err := New(false)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := u.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	// Re-register under the concrete address so the child finds it by name.
	u.listeners[0].name = addr
	// The old server is fasthttp with wasmcorn's shutdown, the real pairing.
	old := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.WriteString("old") }}
	go old.Serve(ln)

	// Load on fresh connections throughout the handoff.
	var failures, oldN, newN atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					failures.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch string(b) {
				case "old":
					oldN.Add(1)
				case "new":
					newN.Add(1)
				default:
					failures.Add(1)
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	exe, _ := os.Executable()
	t.Setenv(roleEnv, "child")
	t.Setenv("WASMCORN_UPGRADE_TEST_ADDR", addr)
	child, err := u.Upgrade(context.Background(), exe, []string{"-test.run=^$"}, 10*time.Second)
	if err != nil {
		close(stop)
		t.Fatal(err)
	}
	defer child.Kill()
	// The old server stops accepting and drains, as wasmcorn does.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := old.ShutdownWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d requests failed during the upgrade (old %d, new %d)", failures.Load(), oldN.Load(), newN.Load())
	}
	if oldN.Load() == 0 || newN.Load() == 0 {
		t.Fatalf("expected answers from both processes: old %d, new %d", oldN.Load(), newN.Load())
	}
	// After the handoff only the new process answers.
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "new" {
		t.Fatalf("after upgrade got %q", b)
	}
}

func TestFailedUpgradeKeepsOldServing(t *testing.T) {
	for _, role := range []string{"failing", "crashing"} {
		t.Run(role, func(t *testing.T) {
			u, _ := New(false)
			ln, err := u.Listen("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			exe, _ := os.Executable()
			t.Setenv(roleEnv, role)
			_, err = u.Upgrade(context.Background(), exe, []string{"-test.run=^$"}, 10*time.Second)
			if !errors.Is(err, ErrNotReady) {
				t.Fatalf("got %v, want ErrNotReady", err)
			}
			if role == "failing" && !strings.Contains(err.Error(), "plugins failed to load") {
				t.Fatalf("the child's reason is lost: %v", err)
			}
			// The listener still accepts for the old process.
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	}
}

func TestReusePortAllowsTwoListeners(t *testing.T) {
	a, _ := New(true)
	l1, err := a.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	b, _ := New(true)
	l2, err := b.Listen(l1.Addr().String())
	if err != nil {
		t.Fatalf("second SO_REUSEPORT listener on %s: %v", l1.Addr(), err)
	}
	l2.Close()
}

// TestInheritedSameName: two listeners configured with the same address
// ("127.0.0.1:0" for both the server and the admin API) are handed over
// under the same name; the child's Listen calls, made in the parent's
// order, must each get their own socket back, not one twice or swapped.
func TestInheritedSameName(t *testing.T) {
	var files []inheritedFile
	var want []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ln.Addr().String())
		ln.Close() // f holds its own descriptor of the socket
		files = append(files, inheritedFile{"127.0.0.1:0", f})
	}
	u := &Upgrader{inherited: files}
	for i := range want {
		ln, err := u.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if got := ln.Addr().String(); got != want[i] {
			t.Fatalf("listener %d: got %s, want %s (the parent's %d-th)", i, got, want[i], i)
		}
	}
	if len(u.inherited) != 0 {
		t.Fatalf("%d inherited listeners left unclaimed", len(u.inherited))
	}
}

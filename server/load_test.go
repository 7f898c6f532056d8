package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/internal/config"
)

// overlapLoader is a Loader whose loads all fail, after waiting (up to a
// bound) for a second load to run at the same time; it records the most
// loads it saw at once.
type overlapLoader struct {
	mu      sync.Mutex
	running int
	most    int
	both    chan struct{} // closed once two loads overlapped
	once    sync.Once
}

func (l *overlapLoader) Load(ctx context.Context, spec host.PluginSpec) (*host.Plugin, error) {
	l.mu.Lock()
	l.running++
	l.most = max(l.most, l.running)
	if l.running >= 2 {
		l.once.Do(func() { close(l.both) })
	}
	l.mu.Unlock()
	select {
	case <-l.both:
	case <-time.After(10 * time.Second): // no overlap: the test fails below
	case <-ctx.Done():
	}
	l.mu.Lock()
	l.running--
	l.mu.Unlock()
	return nil, errors.New("refused by the test loader: " + spec.Name)
}

// emptyModules writes n empty modules PREFIX0.wasm, PREFIX1.wasm, ... into
// a new plugins directory and returns a config serving it, with the
// plugins' names and files in directory order.
func emptyModules(t *testing.T, prefix string, n int) (*config.Config, []string, []config.PluginFile) {
	t.Helper()
	dir := t.TempDir()
	var names []string
	var pfs []config.PluginFile
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		wasm := filepath.Join(dir, name+".wasm")
		if err := os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		pfs = append(pfs, config.PluginFile{Name: name, Wasm: wasm})
	}
	cfg := testConfig()
	cfg.Plugins.Dir = dir
	return cfg, names, pfs
}

// TestLoadDirParallel: plugins load several at a time, and what they give
// (here, failures) comes back in the directory's order, each once, with
// progress reported once per plugin.
func TestLoadDirParallel(t *testing.T) {
	cfg, names, _ := emptyModules(t, "p", 7)
	l := &overlapLoader{both: make(chan struct{})}
	var mu sync.Mutex
	var progressed []string
	entries, failures, err := loadAll(context.Background(), cfg, l, LoadOptions{
		Logger: slog.New(slog.DiscardHandler),
		Progress: func(i, n int, name string) {
			mu.Lock()
			defer mu.Unlock()
			if n != len(names) || names[i-1] != name {
				t.Errorf("progress (%d, %d, %q) does not match the directory", i, n, name)
			}
			progressed = append(progressed, name)
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("%d entries from a loader that fails every load", len(entries))
	}
	var failed []string
	for _, f := range failures {
		failed = append(failed, f.Plugin)
	}
	if !slices.Equal(failed, names) {
		t.Fatalf("failures %v, want every plugin once in directory order %v", failed, names)
	}
	slices.Sort(progressed)
	if !slices.Equal(progressed, names) {
		t.Fatalf("progress reported %v, want each plugin once", progressed)
	}
	if l.most < 2 {
		t.Fatalf("at most %d load at a time, want at least 2", l.most)
	}
	if l.most > loadWorkers() {
		t.Fatalf("%d loads at once, more than the %d workers", l.most, loadWorkers())
	}
}

// TestLoadDirCancelled: a cancelled context stops the loading and
// LoadDir reports it.
func TestLoadDirCancelled(t *testing.T) {
	cfg, _, _ := emptyModules(t, "p", 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadDir(ctx, cfg, &overlapLoader{both: make(chan struct{})}, LoadOptions{Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("LoadDir with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestLoadPluginsInOrder: LoadPlugins loads several at a time and reports
// every plugin once, in the order given; with a context that has ended,
// each is reported with the context's error.
func TestLoadPluginsInOrder(t *testing.T) {
	cfg, names, pfs := emptyModules(t, "q", 6)
	l := &overlapLoader{both: make(chan struct{})}
	var got []string
	run := func(ctx context.Context, wantErr func(error) bool) {
		got = got[:0]
		LoadPlugins(ctx, cfg, l, pfs, nil, func(pf config.PluginFile, _ Entry, err error, _ time.Duration) {
			if !wantErr(err) {
				t.Errorf("%s: unexpected outcome %v", pf.Name, err)
			}
			got = append(got, pf.Name)
		})
		if !slices.Equal(got, names) {
			t.Fatalf("reported %v, want %v", got, names)
		}
	}
	run(context.Background(), func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "refused by the test loader")
	})
	if l.most < 2 {
		t.Fatalf("at most %d load at a time, want at least 2", l.most)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	run(ctx, func(err error) bool { return errors.Is(err, context.Canceled) })
}

package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions configure Watch.
type WatchOptions struct {
	// Dir is the plugins directory to watch.
	Dir string
	// Debounce is the quiet period after the last relevant event before
	// Reload runs; default 50ms (config.Default's plugins.watch_debounce).
	Debounce time.Duration
	// Reload reloads the directory (typically Server.ReloadDir). It is
	// never called concurrently by one Watch.
	Reload func(ctx context.Context) error
	// Logger receives watcher events; default slog.Default().
	Logger *slog.Logger
	// MaxIncompleteWait bounds how long a .wasm file that is still being
	// written (its sections do not add up to its size) holds back the
	// reload; after it the reload runs anyway and the load error is
	// reported. Default 30s.
	MaxIncompleteWait time.Duration
}

// Watch reloads the plugins directory when a NAME.wasm or NAME.toml in it
// is created, written, renamed or removed, until ctx ends; it returns nil
// then, or the error that prevented watching.
//
// Events are debounced: a reload starts once the directory has been quiet
// for Debounce, so a cp, an editor's save (write a temporary file, rename
// it over the original) or several files dropped at once make one reload.
// Hidden files, editor backups and other extensions are ignored. Before
// reloading, every changed .wasm file must be complete: its size and
// modification time unchanged across the quiet period and its section
// framing adding up to its size. A file still being written delays the
// reload (logged at debug level) instead of failing a compile and
// replacing nothing; the previous version keeps serving meanwhile.
func Watch(ctx context.Context, opts WatchOptions) error {
	if opts.Debounce <= 0 {
		opts.Debounce = 50 * time.Millisecond
	}
	if opts.MaxIncompleteWait <= 0 {
		opts.MaxIncompleteWait = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("watch", opts.Dir)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch plugins directory %s: %w", opts.Dir, err)
	}
	defer w.Close()
	if err := w.Add(opts.Dir); err != nil {
		return fmt.Errorf("watch plugins directory %s: %w", opts.Dir, err)
	}
	log.Info("watching the plugins directory for changes", "debounce", opts.Debounce)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pending := map[string]bool{} // changed .wasm paths since the last reload
	dirty := false
	var waitingSince, changedAt time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch: fsnotify closed its error channel")
			}
			// An overflow loses events: reload to be safe.
			log.Warn("watch: event error; reloading to resync", "error", err)
			if !dirty {
				changedAt = time.Now()
			}
			dirty = true
			timer.Reset(opts.Debounce)
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch: fsnotify closed its event channel")
			}
			if !relevant(ev.Name) {
				continue
			}
			log.Debug("watch: change", "file", filepath.Base(ev.Name), "op", ev.Op.String())
			if !dirty {
				changedAt = time.Now()
			}
			dirty = true
			if strings.HasSuffix(ev.Name, ".wasm") && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
				pending[ev.Name] = true
			}
			timer.Reset(opts.Debounce)
		case <-timer.C:
			if !dirty {
				continue
			}
			if path, why := incomplete(pending, opts.Debounce); path != "" {
				if waitingSince.IsZero() {
					waitingSince = time.Now()
				}
				if time.Since(waitingSince) < opts.MaxIncompleteWait {
					log.Debug("watch: waiting for a plugin file to be complete", "file", filepath.Base(path), "reason", why)
					timer.Reset(opts.Debounce)
					continue
				}
				log.Warn("watch: plugin file still incomplete; reloading anyway", "file", filepath.Base(path),
					"reason", why, "waited", time.Since(waitingSince).Round(time.Millisecond))
			}
			dirty, waitingSince = false, time.Time{}
			clear(pending)
			if err := opts.Reload(context.WithValue(ctx, changedAtKey{}, changedAt)); err != nil {
				log.Warn("watch: reload finished with errors; the previous versions keep serving", "error", err)
			}
		}
	}
}

// relevant reports whether a change to path may change the served
// plugins: NAME.wasm or NAME.toml, not hidden.
func relevant(path string) bool {
	base := filepath.Base(path)
	if strings.HasPrefix(base, ".") {
		return false
	}
	ext := filepath.Ext(base)
	return ext == ".wasm" || ext == ".toml"
}

// incomplete returns the first of paths that is not ready to load and
// why; "" when all are (a removed file is ready: the reload handles it).
func incomplete(paths map[string]bool, settle time.Duration) (string, string) {
	for p := range paths {
		before, err := os.Stat(p)
		if err != nil {
			continue
		}
		if time.Since(before.ModTime()) < settle/2 {
			return p, "modified moments ago"
		}
		if err := wasmFramed(p, before.Size()); err != nil {
			return p, err.Error()
		}
		after, err := os.Stat(p)
		if err == nil && (after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime())) {
			return p, "changed while being checked"
		}
	}
	return "", ""
}

// errTruncated says a module's sections run past the end of its file.
var errTruncated = errors.New("truncated module (a section runs past the end of the file)")

// wasmFramed checks a module's framing without compiling it: the magic
// and version, then section headers (id, LEB128 size) that end exactly at
// size. A partially written file fails this unless the write stopped
// exactly on a section boundary.
func wasmFramed(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return errTruncated
	}
	if string(hdr[:4]) != "\x00asm" {
		return nil // not a module at all: let the loader report it
	}
	off := int64(8)
	var buf [6]byte
	for off < size {
		n, err := f.ReadAt(buf[:], off)
		if n < 2 && err != nil {
			return errTruncated
		}
		var v uint64
		var shift uint
		i := 1
		for ; i < n; i++ {
			v |= uint64(buf[i]&0x7f) << shift
			shift += 7
			if buf[i]&0x80 == 0 {
				break
			}
		}
		if i >= n {
			return errTruncated
		}
		off += int64(i+1) + int64(v)
	}
	if off != size {
		return errTruncated
	}
	return nil
}

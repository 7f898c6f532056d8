package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"strconv"
	"time"

	"github.com/wasmcorn/wasmcorn/internal/config"
)

// Replace installs set and retires the previous Set: it waits until no
// request routed on the previous Set is still running (at most
// server.shutdown_timeout), then drains the previous Set's plugins that
// set does not contain. Requests never see a drained plugin: a request
// routed on the old Set finishes there before its plugins are drained.
// It returns the previous Set.
func (s *Server) Replace(ctx context.Context, set *Set) *Set {
	old := s.Install(set)
	keep := map[Plugin]bool{}
	for _, m := range set.plugins {
		keep[m.plugin] = true
	}
	var retire []Entry
	for _, m := range old.plugins {
		if !keep[m.plugin] {
			retire = append(retire, Entry{Plugin: m.plugin})
		}
	}
	if len(retire) == 0 {
		return old
	}
	deadline := time.Now().Add(s.cfg.Server.ShutdownTimeout.D())
	for old.active.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if n := old.active.Load(); n > 0 {
		s.log.Warn("reload: requests still running on the previous plugins; draining anyway", "requests", n)
	}
	drainEntries(ctx, retire, s.log)
	return old
}

// ReloadDir loads the plugins directory anew and replaces the served Set.
// A plugin whose module and manifest did not change keeps its loaded
// instance; a changed or new one is loaded; a removed one stops serving.
// A plugin that fails to load while an older version is serving keeps the
// older version, and the failure shows on the status page. The returned
// error lists the plugins that failed (the server keeps serving either
// way); it is nil when every plugin loaded. Concurrent calls run one
// after the other.
func (s *Server) ReloadDir(ctx context.Context, cfg *config.Config, l Loader, opts LoadOptions) error {
	s.reloadDirMu.Lock()
	defer s.reloadDirMu.Unlock()
	if s.shuttingDown.Load() {
		return errors.New("reload: the server is shutting down")
	}
	if opts.Logger == nil {
		opts.Logger = s.log
	}
	log := opts.logger()
	begin := time.Now()
	old := s.Current()
	current := old.entries()
	reused := map[Plugin]bool{}
	entries, failures, err := loadAll(ctx, cfg, l, opts, func(pf config.PluginFile) (Entry, bool) {
		e, ok := current[pf.Name]
		if !ok || !unchanged(pf, e) {
			return Entry{}, false
		}
		reused[e.Plugin] = true
		return e, true
	})
	if err != nil {
		return err
	}
	loaded := map[string]bool{}
	for _, e := range entries {
		loaded[e.Plugin.Name()] = true
	}
	for _, f := range failures {
		if e, ok := current[f.Plugin]; ok && !loaded[f.Plugin] {
			log.Warn("reload: keeping the serving version of a plugin that failed to load",
				"plugin", f.Plugin, "hash", shortHash(e.Plugin.Hash()))
			entries = append(entries, e)
			reused[e.Plugin] = true
		}
	}
	set, rejected := NewSet(entries, failures)
	logRejected(log, set, rejected)
	var fresh []Entry
	for _, e := range rejected {
		if !reused[e.Plugin] {
			fresh = append(fresh, e) // never served: drain now
		}
	}
	drainEntries(ctx, fresh, log)
	logLoaded(log, set, reused)
	s.Replace(ctx, set)
	log.Info("reload: done", "plugins", len(set.plugins), "failed", len(set.failures),
		"took", time.Since(begin).Round(time.Millisecond))
	if len(set.failures) > 0 {
		return &ReloadError{Failures: set.Failures()}
	}
	return nil
}

// ReloadError lists the plugins a reload could not load.
type ReloadError struct {
	Failures []LoadFailure
}

func (e *ReloadError) Error() string {
	msg := "reload: " + e.Failures[0].Err
	if n := len(e.Failures); n > 1 {
		msg += " (and " + strconv.Itoa(n-1) + " more plugin failures)"
	}
	return msg
}

// unchanged reports whether pf's module and manifest are those e was
// loaded from.
func unchanged(pf config.PluginFile, e Entry) bool {
	wasm, err := os.ReadFile(pf.Wasm)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(wasm)
	if hex.EncodeToString(sum[:]) != e.Plugin.Hash() {
		return false
	}
	m, err := config.LoadPluginManifest(pf)
	if err != nil {
		return false
	}
	return reflect.DeepEqual(m, e.Manifest)
}

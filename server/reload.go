package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
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
	s.retire(ctx, old, set)
	return old
}

// retire drains the plugins of old, the Set set replaced, that set does
// not contain, once no request routed on old, or on an earlier Set still
// running requests, is running: a plugin kept unchanged across reloads
// may have requests in flight on any of them.
func (s *Server) retire(ctx context.Context, old, set *Set) {
	s.replacedMu.Lock()
	waitOn := []*Set{old}
	for _, r := range s.replaced {
		if r.active.Load() > 0 {
			waitOn = append(waitOn, r)
		}
	}
	s.replaced = waitOn
	waitOn = slices.Clone(waitOn)
	s.replacedMu.Unlock()

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
		return
	}
	running := func() (n int64) {
		for _, r := range waitOn {
			n += r.active.Load()
		}
		return n
	}
	deadline := time.Now().Add(s.cfg.Server.ShutdownTimeout.D())
	for running() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if n := running(); n > 0 {
		s.log.Warn("reload: requests still running on the previous plugins; draining anyway", "requests", n)
	}
	drainEntries(ctx, retire, s.log)
}

// ReloadDir loads the plugins directory anew and replaces the served Set.
// A plugin whose module and manifest did not change keeps its loaded
// instance; a changed or new one is loaded, then warmed to the number of
// instances its previous version had live (so the swap causes no burst of
// cold instantiations under load); a removed one stops serving. A plugin
// that fails to load while an older version is serving keeps the older
// version, and the failure shows on the status page; so does a new
// version whose routes conflict with another plugin's (a plugin already
// serving keeps its routes against a new one, whatever the names' order).
// The returned error lists the plugins that failed (the server keeps
// serving either way); it is nil when every plugin loaded. Concurrent
// calls run one after the other. The phases' durations are logged and kept
// for the status page (LastReload).
func (s *Server) ReloadDir(ctx context.Context, cfg *config.Config, l Loader, opts LoadOptions) error {
	s.reloadDirMu.Lock()
	defer s.reloadDirMu.Unlock()
	if s.shuttingDown.Load() {
		return errors.New("reload: the server is shutting down")
	}
	// A shutdown cancels a reload in progress (and waits for it) before it
	// drains the plugins and closes the runtime.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.baseCtx, cancel)()
	if opts.Logger == nil {
		opts.Logger = s.log
	}
	log := opts.logger()
	rep := ReloadReport{Started: time.Now()}
	if at, ok := ctx.Value(changedAtKey{}).(time.Time); ok {
		rep.Detect = ms(rep.Started.Sub(at))
	}
	old := s.Current()
	current := old.entries()
	reused := map[Plugin]bool{}
	entries, failures, err := loadAll(ctx, cfg, l, opts, func(pf config.PluginFile, wasm []byte) (Entry, bool) {
		e, ok := current[pf.Name]
		if !ok || !unchanged(pf, wasm, e) {
			return Entry{}, false
		}
		reused[e.Plugin] = true
		return e, true
	})
	if err != nil {
		return err
	}
	loadedAt := time.Now()
	rep.Load = ms(loadedAt.Sub(rep.Started))
	loaded := map[string]bool{}
	for _, e := range entries {
		loaded[e.Plugin.Name()] = true
		if !reused[e.Plugin] {
			rep.Loaded = append(rep.Loaded, e.Plugin.Name())
			if ph, ok := e.Plugin.(interface{ LoadPhases() host.LoadPhases }); ok {
				rep.Compile += ms(ph.LoadPhases().Compile)
				rep.Instantiate += ms(ph.LoadPhases().Instantiate)
			}
		}
	}
	for _, f := range failures {
		rep.Failed = append(rep.Failed, f.Plugin)
		if e, ok := current[f.Plugin]; ok && !loaded[f.Plugin] {
			log.Warn("reload: keeping the serving version of a plugin that failed to load",
				"plugin", f.Plugin, "hash", shortHash(e.Plugin.Hash()))
			entries = append(entries, e)
			reused[e.Plugin] = true
		}
	}
	// Plugins already serving win route conflicts against new ones; a new
	// version whose routes conflict is treated like one that failed to
	// load: the serving version stays.
	set, rejected := newSet(entries, failures, reused)
	var fresh []Entry
	if kept := keepServing(set, rejected, current, reused, log); len(kept) > 0 {
		for i, e := range entries {
			if cur, ok := kept[e.Plugin.Name()]; ok && e.Plugin != cur.Plugin {
				fresh = append(fresh, e) // the conflicting new version
				entries[i] = cur
				reused[cur.Plugin] = true
			}
		}
		carried := append([]LoadFailure(nil), failures...)
		for _, f := range set.failures {
			if _, ok := kept[f.Plugin]; ok {
				carried = append(carried, f) // why the new version is not serving
			}
		}
		set, rejected = newSet(entries, carried, reused)
	}
	logRejected(log, set, rejected)
	for _, e := range rejected {
		if !reused[e.Plugin] {
			fresh = append(fresh, e) // never served: drain now
		}
	}
	drainEntries(ctx, fresh, log)
	rep.Warmed = warmLike(ctx, set, reused, current, log)
	warmedAt := time.Now()
	rep.Warm = ms(warmedAt.Sub(loadedAt))
	logLoaded(log, set, reused)
	prev := s.Install(set)
	rep.Serving = time.Now()
	rep.Swap = ms(rep.Serving.Sub(warmedAt))
	s.retire(ctx, prev, set)
	rep.Drain = ms(time.Since(rep.Serving))
	rep.Total = ms(time.Since(rep.Started))
	s.lastReload.Store(&rep)
	log.Info("reload: done", "plugins", len(set.plugins), "loaded", len(rep.Loaded), "failed", len(set.failures),
		"detect_ms", rep.Detect, "compile_ms", rep.Compile, "instantiate_ms", rep.Instantiate,
		"warm_ms", rep.Warm, "warmed", rep.Warmed, "swap_ms", rep.Swap, "drain_ms", rep.Drain,
		"to_serving_ms", ms(rep.Serving.Sub(rep.Started))+rep.Detect, "took", time.Since(rep.Started).Round(time.Millisecond))
	if len(set.failures) > 0 {
		return &ReloadError{Failures: set.Failures()}
	}
	return nil
}

// keepServing returns, by name, the serving versions (in current) of the
// plugins whose new version set rejected for its routes.
func keepServing(set *Set, rejected []Entry, current map[string]Entry, reused map[Plugin]bool, log *slog.Logger) map[string]Entry {
	var kept map[string]Entry
	for _, e := range rejected {
		name := e.Plugin.Name()
		cur, ok := current[name]
		if !ok || reused[e.Plugin] || set.Plugin(name) != nil {
			continue
		}
		if kept == nil {
			kept = map[string]Entry{}
		}
		kept[name] = cur
		log.Warn("reload: keeping the serving version of a plugin whose new routes were refused",
			"plugin", name, "hash", shortHash(cur.Plugin.Hash()))
	}
	return kept
}

// warmLike grows each plugin of set loaded by this reload (not in reused)
// to the live pool size of the version it replaces (in current), and
// returns how many instances it created. A failure is logged: the plugin
// serves anyway and its pool grows on demand.
func warmLike(ctx context.Context, set *Set, reused map[Plugin]bool, current map[string]Entry, log *slog.Logger) int {
	made := 0
	for _, m := range set.plugins {
		prev, ok := current[m.name]
		w, canWarm := m.plugin.(interface {
			Warm(context.Context, int) (int, error)
		})
		if reused[m.plugin] || !ok || !canWarm {
			continue
		}
		n, err := w.Warm(ctx, prev.Plugin.Stats().Live)
		made += n
		if err != nil && ctx.Err() == nil {
			log.Warn("reload: warming the new version failed; its pool grows on demand", "plugin", m.name, "error", err)
		}
	}
	return made
}

// ReloadReport describes the last ReloadDir: when it ran and where its
// time went, in milliseconds. The phases run in order: Load (reading the
// directory, then per loaded plugin Compile and Instantiate of its
// minimum pool, summed over plugins that load in parallel, so the sums can
// exceed Load), Warm (growing new pools to their previous
// version's size), Swap (installing the new route table), Drain (waiting
// for requests on the previous table, then closing the replaced plugins).
type ReloadReport struct {
	Started time.Time `json:"started"`
	// Serving is when the new route table was installed.
	Serving time.Time `json:"serving"`
	// Detect is from the first file change the watcher saw to the start
	// of the reload (debounce and completeness checks); 0 when the reload
	// was not started by the watcher.
	Detect      float64  `json:"detect_ms"`
	Load        float64  `json:"load_ms"`
	Compile     float64  `json:"compile_ms"`
	Instantiate float64  `json:"instantiate_ms"`
	Warm        float64  `json:"warm_ms"`
	Warmed      int      `json:"warmed_instances"`
	Swap        float64  `json:"swap_ms"`
	Drain       float64  `json:"drain_ms"`
	Total       float64  `json:"total_ms"`
	Loaded      []string `json:"loaded"`
	Failed      []string `json:"failed,omitempty"`
}

// LastReload returns the report of the last ReloadDir, or nil.
func (s *Server) LastReload() *ReloadReport { return s.lastReload.Load() }

// changedAtKey carries the time of the first file change behind a
// watcher's reload (see Watch).
type changedAtKey struct{}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

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

// unchanged reports whether pf's module (whose bytes are wasm) and
// manifest are those e was loaded from.
func unchanged(pf config.PluginFile, wasm []byte, e Entry) bool {
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

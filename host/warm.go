package host

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// LoadPhases says where a Load's time went.
type LoadPhases struct {
	// Compile is reading the compilation cache or compiling, plus the
	// export and import checks.
	Compile time.Duration
	// Instantiate is creating the pool's first instances (Min, at least
	// one), each running the guest's _initialize.
	Instantiate time.Duration
}

// LoadPhases reports how long the phases of the plugin's Load took.
func (p *Plugin) LoadPhases() LoadPhases { return p.phases }

// Warm grows the plugin's pool to n live instances (at most the pool's
// Max), creating up to GOMAXPROCS of them at a time, and returns how many
// it created. A reload warms the new version to the size the old one had
// under load before swapping, so the swap causes no burst of cold
// instantiations on the request path. It stops at the first failed
// instantiation or when ctx ends and returns that error; the instances
// already made stay in the pool. Warm must not run concurrently with
// Drain.
func (p *Plugin) Warm(ctx context.Context, n int) (int, error) {
	return p.pool.grow(ctx, n, runtime.GOMAXPROCS(0))
}

// grow instantiates idle instances until live reaches n (bounded by Max)
// with up to workers goroutines.
func (pl *pool) grow(ctx context.Context, n, workers int) (int, error) {
	n = min(n, pl.cfg.Max)
	workers = max(1, min(workers, n-int(pl.live.Load())))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		made    int
		firstEr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !pl.closed.Load() && pl.reserveBelow(n) {
				in, err := pl.newInstance(ctx)
				if err != nil {
					pl.live.Add(-1)
					mu.Lock()
					if firstEr == nil {
						firstEr = err
					}
					mu.Unlock()
					return
				}
				mu.Lock()
				made++
				stop := firstEr != nil
				mu.Unlock()
				pl.addIdle(in)
				if stop {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstEr == nil && ctx.Err() != nil && int(pl.live.Load()) < n {
		firstEr = ctx.Err()
	}
	return made, firstEr
}

// reserveBelow claims a slot for a new instance if fewer than n are live.
func (pl *pool) reserveBelow(n int) bool {
	for {
		cur := pl.live.Load()
		if cur >= int64(n) {
			return false
		}
		if pl.live.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

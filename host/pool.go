package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
)

// PoolConfig sizes a plugin's pool of pre-instantiated instances. The zero
// value is not valid; start from DefaultPoolConfig.
type PoolConfig struct {
	// Min instances are created at load and kept alive (replaced in the
	// background when one is recycled or dies). Default 2.
	Min int
	// Max instances may exist at once; a request beyond that waits up to
	// MaxWait for a free one, then gets engine.ErrPoolExhausted. Default 16.
	Max int
	// MaxWait bounds the wait for a free instance. Default 1s: long enough
	// that a burst of clients larger than the pool queues (as it would in
	// a listen backlog) instead of failing, short enough that a saturated
	// plugin answers 503 with Retry-After well before clients time out.
	MaxWait time.Duration
	// MaxRequests recycles an instance after this many calls; 0 never.
	// Default 100000.
	MaxRequests int
	// MaxMemoryBytes recycles an instance whose linear memory grew past it
	// (checked after each call); 0 never. Default 64 MiB.
	MaxMemoryBytes uint64
}

// DefaultPoolConfig returns the documented defaults.
func DefaultPoolConfig() PoolConfig {
	return PoolConfig{Min: 2, Max: 16, MaxWait: time.Second, MaxRequests: 100000, MaxMemoryBytes: 64 << 20}
}

// Limits bound what one plugin can use. Start from DefaultLimits.
type Limits struct {
	// MaxMemoryPages caps each instance's linear memory (64 KiB pages);
	// memory.grow past it fails. Default 4096 (256 MiB).
	MaxMemoryPages uint32
	// Timeout is the deadline of one call (request or job). Default 30s.
	Timeout time.Duration
	// MaxResponseBytes bounds an encoded response. Default 16 MiB.
	MaxResponseBytes uint32
	// DeadlineEnforced makes Timeout a hard stop for guest code (the
	// default). Turning it off removes the loop instrumentation cost for
	// trusted plugins; a spinning guest then cannot be stopped and stalls
	// garbage collection for the whole server. Host calls still honour
	// the deadline either way.
	DeadlineEnforced bool
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{MaxMemoryPages: 4096, Timeout: 30 * time.Second, MaxResponseBytes: 16 << 20, DeadlineEnforced: true}
}

// PoolStats is a snapshot of a pool's state and counters.
type PoolStats struct {
	Min, Max, Live, Idle, Busy, Waiting            int
	Requests, Recycled, Traps, Timeouts, Exhausted uint64
	// LastError is the last instantiation failure, if any.
	LastError string `json:",omitempty"`
}

// instance is one engine instance plus the host-side state of its calls.
type instance struct {
	inst  engine.Instance
	pool  *pool
	call  Call
	cctx  atomic.Pointer[callCtx] // the current call's context (nextCallCtx)
	uses  int
	reply []byte
}

// HostCall implements engine.HostCaller.
func (in *instance) HostCall(_ context.Context, op uint32, args []byte, reply []byte) []byte {
	return dispatch(&in.call, op, args, reply)
}

type pool struct {
	p      *Plugin
	mod    engine.Module
	cfg    PoolConfig
	limits Limits
	wd     *watchdog
	log    *slog.Logger

	idle     chan *instance
	live     atomic.Int64
	busy     atomic.Int64
	waiting  atomic.Int64
	closing  chan struct{}
	closed   atomic.Bool
	inflight sync.WaitGroup
	bg       sync.WaitGroup

	requests, recycled, traps, timeouts, exhausted atomic.Uint64
	lastErr                                        atomic.Pointer[string]
}

func newPool(p *Plugin, mod engine.Module, cfg PoolConfig, limits Limits, wd *watchdog, log *slog.Logger) *pool {
	return &pool{
		p: p, mod: mod, cfg: cfg, limits: limits, wd: wd, log: log,
		idle:    make(chan *instance, cfg.Max),
		closing: make(chan struct{}),
	}
}

// fill creates instances up to Min; the first error is returned.
func (pl *pool) fill(ctx context.Context) error {
	for !pl.closed.Load() && int(pl.live.Load()) < pl.cfg.Min {
		if !pl.reserve() {
			return nil
		}
		in, err := pl.newInstance(ctx)
		if err != nil {
			pl.live.Add(-1)
			return err
		}
		pl.addIdle(in)
	}
	return nil
}

// addIdle makes in available to calls. The channel holds Max and live <=
// Max, so it never blocks. An instance added after a drain emptied the
// channel (a replacement or a warm-up still running when the drain gave up
// waiting) is closed: drain sets closed before it empties the channel, so
// either it sees in or this sees closed.
func (pl *pool) addIdle(in *instance) {
	pl.idle <- in
	if pl.closed.Load() {
		pl.closeIdle()
	}
}

// closeIdle closes every idle instance.
func (pl *pool) closeIdle() {
	for {
		select {
		case in := <-pl.idle:
			pl.wd.remove(in)
			_ = in.inst.Close(context.Background())
			pl.live.Add(-1)
		default:
			return
		}
	}
}

// reserve claims a slot for a new instance if the pool is below Max.
func (pl *pool) reserve() bool {
	for {
		n := pl.live.Load()
		if n >= int64(pl.cfg.Max) {
			return false
		}
		if pl.live.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (pl *pool) newInstance(ctx context.Context) (*instance, error) {
	in := &instance{pool: pl}
	in.call = Call{Plugin: pl.p.name, Grants: &pl.p.grants, Services: pl.p.rt.services, Log: pl.log}
	// Host calls the guest's _initialize makes belong to the instantiation,
	// as a request's belong to the request: they get a deadline (the
	// engines stop _initialize itself after InitTimeout), and what they
	// leave open (a transaction, a statement) is released when it ends,
	// whether _initialize returned or trapped. A transaction left open
	// would otherwise hold SQLite's only writer until the instance's first
	// request, or for good after a failed instantiation.
	ictx, cancel := context.WithTimeout(ctx, engine.InitTimeout)
	in.call.Ctx = ictx
	ei, err := pl.mod.Instantiate(ctx, in)
	in.call.End()
	cancel()
	if err != nil {
		msg := err.Error()
		pl.lastErr.Store(&msg)
		return nil, err
	}
	in.inst = ei
	pl.wd.add(in)
	return in, nil
}

// take returns a free instance, creating one when below Max, or waiting up
// to MaxWait. ctx cancellation ends the wait early.
func (pl *pool) take(ctx context.Context) (*instance, error) {
	if pl.closed.Load() {
		return nil, engine.ErrPoolClosed
	}
	select {
	case in := <-pl.idle:
		return in, nil
	default:
	}
	if pl.reserve() {
		in, err := pl.newInstance(context.Background())
		if err != nil {
			pl.live.Add(-1)
			return nil, err
		}
		return in, nil
	}
	pl.waiting.Add(1)
	defer pl.waiting.Add(-1)
	t := time.NewTimer(pl.cfg.MaxWait)
	defer t.Stop()
	select {
	case in := <-pl.idle:
		return in, nil
	case <-t.C:
		pl.exhausted.Add(1)
		return nil, fmt.Errorf("plugin %q: %w within %v (%d instances busy)", pl.p.name, engine.ErrPoolExhausted, pl.cfg.MaxWait, pl.cfg.Max)
	case <-pl.closing:
		return nil, engine.ErrPoolClosed
	case <-ctxDone(ctx):
		return nil, ctx.Err()
	}
}

func ctxDone(ctx context.Context) <-chan struct{} {
	if ctx == nil {
		return nil
	}
	return ctx.Done()
}

// put returns an instance after a call. broken instances are discarded; a
// replacement is made in the background while the pool is below Min.
func (pl *pool) put(in *instance, broken bool) {
	in.uses++
	if !broken && pl.cfg.MaxRequests > 0 && in.uses >= pl.cfg.MaxRequests {
		broken = true
		pl.recycled.Add(1)
	}
	if !broken && pl.cfg.MaxMemoryBytes > 0 && in.inst.MemoryBytes() > pl.cfg.MaxMemoryBytes {
		broken = true
		pl.recycled.Add(1)
	}
	if broken || pl.closed.Load() {
		pl.discard(in)
		return
	}
	pl.addIdle(in)
}

func (pl *pool) discard(in *instance) {
	pl.wd.remove(in)
	_ = in.inst.Close(context.Background())
	pl.live.Add(-1)
	if pl.closed.Load() || int(pl.live.Load()) >= pl.cfg.Min {
		return
	}
	pl.bg.Add(1)
	go func() {
		defer pl.bg.Done()
		if err := pl.fill(context.Background()); err != nil {
			pl.log.Error("replace instance", "err", err)
		}
	}()
}

// call runs one call on a free instance: request or job.
func (pl *pool) call(ctx context.Context, export string, reqID []byte, msg []byte, out []byte) ([]byte, error) {
	pl.inflight.Add(1)
	defer pl.inflight.Done()
	in, err := pl.take(ctx)
	if err != nil {
		return out, err
	}
	pl.busy.Add(1)
	pl.requests.Add(1)
	deadline := time.Now().Add(pl.limits.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	cctx := in.nextCallCtx()
	cctx.setParent(ctx)
	in.call.Ctx = cctx
	in.call.reqID = reqID
	pl.wd.arm(in, deadline)
	resp, err := in.inst.Call(cctx, export, msg, pl.limits.MaxResponseBytes)
	expired, killed := pl.wd.disarm(in)
	if err == nil && killed {
		// Stopped hard at its deadline, yet it returned (a sleep the stop
		// cut short, then no loop or call before the end): still a
		// timeout, as the stop says.
		err = fmt.Errorf("plugin %q: %w: answered after it was stopped", pl.p.name, engine.ErrInterrupted)
	}
	if err == nil {
		// After a soft stop the guest answered by itself (the Python SDK
		// with a 504) and the instance stays in the pool.
		out = append(out[:0], resp...)
	} else if expired && !errors.Is(err, engine.ErrInterrupted) {
		// A host call saw the deadline and the guest gave up: still a timeout.
		err = fmt.Errorf("plugin %q: %w: %v", pl.p.name, engine.ErrInterrupted, err)
	}
	in.call.End()
	cctx.setParent(nil)
	pl.busy.Add(-1)
	broken := killed // a hard-stopped instance is never reused
	if expired {
		pl.timeouts.Add(1)
	}
	if err != nil {
		switch {
		case errors.Is(err, engine.ErrInterrupted):
			if !expired {
				pl.timeouts.Add(1)
			}
			broken = true
		case errors.Is(err, engine.ErrTrap):
			pl.traps.Add(1)
			broken = true
		case errors.Is(err, engine.ErrResponseTooLarge):
			// the instance is fine; only its answer was refused
		default:
			broken = true
		}
	}
	pl.put(in, broken)
	return out, err
}

// drain stops new calls, waits for in-flight ones (until ctx ends), then
// closes every instance. Replacement goroutines are waited for too.
func (pl *pool) drain(ctx context.Context) error {
	if pl.closed.Swap(true) {
		return nil
	}
	close(pl.closing)
	done := make(chan struct{})
	go func() { pl.inflight.Wait(); pl.bg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("plugin %q: drain: %w (%d calls still running)", pl.p.name, ctx.Err(), pl.busy.Load())
	}
	pl.closeIdle()
	return err
}

func (pl *pool) stats() PoolStats {
	s := PoolStats{
		Min: pl.cfg.Min, Max: pl.cfg.Max,
		Live: int(pl.live.Load()), Idle: len(pl.idle), Busy: int(pl.busy.Load()), Waiting: int(pl.waiting.Load()),
		Requests: pl.requests.Load(), Recycled: pl.recycled.Load(), Traps: pl.traps.Load(),
		Timeouts: pl.timeouts.Load(), Exhausted: pl.exhausted.Load(),
	}
	if e := pl.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// jobExport is used by RunJob.
const jobExport = abi.ExportJob

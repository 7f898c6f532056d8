// Package memcache is the embedded cache and lock backend: an in-process,
// memory-bounded host.Cache with LRU eviction and TTLs, and a host.Locker of
// lease locks. It is the zero-config default; state lives only as long as
// the process.
//
// The cache is split into shards, each a map, an LRU list and a min-heap of
// expiry times under its own mutex, so concurrent requests on different keys
// rarely contend. Expired entries are removed when read (lazy) and by a
// background sweeper that pops the expiry heaps (periodic), so memory held by
// expired values is bounded in time even if they are never read again.
//
// Values are immutable once stored: Set copies the caller's bytes, and Get
// returns the stored slice without copying (callers must not modify it), which
// keeps a cache hit free of allocations.
package memcache

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxBytes      = 64 << 20
	DefaultMaxValueBytes = 1 << 20
	DefaultSweepInterval = time.Second
	maxShards            = 64
	// entryOverhead approximates the memory an entry costs besides its key
	// and value: the entry struct, the map slot and slice headers.
	entryOverhead = 128
	// maxKeyBytes is the key length the shard budget reserves room for; the
	// host refuses longer keys before they reach a backend.
	maxKeyBytes = 1024
	// sweepBatch bounds the entries removed per shard lock hold.
	sweepBatch = 1024
)

// Config configures a Cache. The zero value is valid and means every default.
type Config struct {
	// MaxBytes bounds the memory the cache accounts for (keys, values and a
	// fixed per-entry overhead). When a write takes a shard over its share,
	// the shard's least recently used entries are evicted. Default 64 MiB.
	MaxBytes int64
	// MaxValueBytes is the largest value Set and Add accept; a larger one
	// fails with an error wrapping host.ErrValueTooLarge. Default 1 MiB.
	MaxValueBytes int
	// Shards is the number of independently locked shards, a power of two.
	// Default: the largest power of two up to 64 that gives every shard at
	// least four times MaxValueBytes (16 for the default sizes).
	Shards int
	// SweepInterval is how often the background sweeper removes expired
	// entries. Default 1s; negative disables it (expiry is then lazy only).
	SweepInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Shards == 0 && c.MaxBytes > 0 && c.MaxValueBytes > 0 {
		need := 4 * int64(c.MaxValueBytes)
		c.Shards = maxShards
		for c.Shards > 1 && c.MaxBytes/int64(c.Shards) < need {
			c.Shards /= 2
		}
	}
	return c
}

// Validate reports the first invalid field of c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MaxBytes < 0:
		return fmt.Errorf("memcache: max_bytes %d is negative", c.MaxBytes)
	case c.MaxValueBytes < 0:
		return fmt.Errorf("memcache: max_value_bytes %d is negative", c.MaxValueBytes)
	case c.Shards < 1 || c.Shards&(c.Shards-1) != 0:
		return fmt.Errorf("memcache: shards %d is not a positive power of two", c.Shards)
	}
	if per := c.MaxBytes / int64(c.Shards); per < int64(c.MaxValueBytes+maxKeyBytes+entryOverhead) {
		return fmt.Errorf("memcache: max_bytes %d over %d shards leaves %d bytes per shard, less than one max_value_bytes (%d) entry",
			c.MaxBytes, c.Shards, per, c.MaxValueBytes)
	}
	return nil
}

// Cache is the in-memory host.Cache. It is safe for concurrent use; Close
// stops its sweeper. Create it with New.
type Cache struct {
	shards   []shard
	mask     uint64
	seed     maphash.Seed
	maxValue int
	now      func() int64 // unix nanoseconds; replaced by tests

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ host.Cache = (*Cache)(nil)

// shard is one independently locked part of the cache. Padding keeps two
// shards' mutexes off one cache line.
type shard struct {
	mu     sync.Mutex
	m      map[string]*entry
	head   *entry   // most recently used
	tail   *entry   // least recently used
	exp    []*entry // min-heap on entry.exp of the entries with a TTL
	bytes  int64
	max    int64
	evicts atomic.Uint64
	expire atomic.Uint64
	_      [64]byte
}

type entry struct {
	key        string
	val        []byte
	exp        int64 // unix nanoseconds; 0 never expires
	prev, next *entry
	hidx       int // index in shard.exp, or -1
}

func (e *entry) size() int64 { return int64(len(e.key)+len(e.val)) + entryOverhead }

// New returns a running Cache configured by cfg (see Config for defaults).
func New(cfg Config) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Cache{
		shards:   make([]shard, cfg.Shards),
		mask:     uint64(cfg.Shards - 1),
		seed:     maphash.MakeSeed(),
		maxValue: cfg.MaxValueBytes,
		now:      func() int64 { return time.Now().UnixNano() },
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
		c.shards[i].max = cfg.MaxBytes / int64(cfg.Shards)
	}
	if cfg.SweepInterval > 0 {
		go c.sweeper(cfg.SweepInterval)
	} else {
		close(c.done)
	}
	return c, nil
}

// Close stops the background sweeper. The cache stays usable (expiry
// becomes lazy only); Close is idempotent and always returns nil.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() { close(c.stop) })
	<-c.done
	return nil
}

// Stats is a snapshot of a Cache's size and counters.
type Stats struct {
	Entries     int    // live and not yet removed expired entries
	Bytes       int64  // accounted bytes (keys, values, overhead)
	Evictions   uint64 // entries dropped to stay under MaxBytes
	Expirations uint64 // expired entries removed (lazily or by the sweeper)
}

// Stats returns current totals over all shards.
func (c *Cache) Stats() Stats {
	var st Stats
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += len(s.m)
		st.Bytes += s.bytes
		s.mu.Unlock()
		st.Evictions += s.evicts.Load()
		st.Expirations += s.expire.Load()
	}
	return st
}

func (c *Cache) shard(key string) *shard {
	return &c.shards[maphash.String(c.seed, key)&c.mask]
}

func (c *Cache) expiry(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return c.now() + int64(ttl)
}

// lookup returns key's live entry, removing it when it has expired.
// The shard lock must be held.
func (s *shard) lookup(key string, now func() int64) *entry {
	e := s.m[key]
	if e == nil {
		return nil
	}
	if e.exp != 0 && e.exp <= now() {
		s.remove(e)
		s.expire.Add(1)
		return nil
	}
	return e
}

// Get returns key's value. The slice is shared with the cache: do not
// modify it. It never fails.
func (c *Cache) Get(_ context.Context, key string) ([]byte, bool, error) {
	s := c.shard(key)
	s.mu.Lock()
	e := s.lookup(key, c.now)
	if e == nil {
		s.mu.Unlock()
		return nil, false, nil
	}
	s.touch(e)
	v := e.val
	s.mu.Unlock()
	return v, true, nil
}

// GetMany returns one entry per key, nil for a miss. Entries are shared
// with the cache: do not modify them.
func (c *Cache) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i], _, _ = c.Get(ctx, k)
	}
	return out, nil
}

// Set stores a copy of val under key with ttl (0: no expiry), evicting
// least recently used entries of the key's shard as needed.
func (c *Cache) Set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	if len(val) > c.maxValue {
		return fmt.Errorf("memcache: set %q: %w (%d bytes, limit %d)", key, host.ErrValueTooLarge, len(val), c.maxValue)
	}
	v := append([]byte(nil), val...)
	s := c.shard(key)
	s.mu.Lock()
	s.put(key, v, c.expiry(ttl))
	s.mu.Unlock()
	return nil
}

// Add stores a copy of val only when key has no live entry, and reports
// whether it did.
func (c *Cache) Add(_ context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if len(val) > c.maxValue {
		return false, fmt.Errorf("memcache: add %q: %w (%d bytes, limit %d)", key, host.ErrValueTooLarge, len(val), c.maxValue)
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lookup(key, c.now) != nil {
		return false, nil
	}
	s.put(key, append([]byte(nil), val...), c.expiry(ttl))
	return true, nil
}

// Delete removes key and reports whether a live entry existed.
func (c *Cache) Delete(_ context.Context, key string) (bool, error) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookup(key, c.now)
	if e == nil {
		return false, nil
	}
	s.remove(e)
	return true, nil
}

// Incr adds delta to the decimal integer stored at key and returns the new
// value. A missing key counts as 0 and is created with ttl (0: no expiry);
// an existing key keeps its expiry. A value that is not a decimal int64, or
// a result that would overflow, fails with an error wrapping
// host.ErrNotInteger and leaves the value unchanged.
func (c *Cache) Incr(_ context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookup(key, c.now)
	if e == nil {
		s.put(key, strconv.AppendInt(nil, delta, 10), c.expiry(ttl))
		return delta, nil
	}
	cur, err := strconv.ParseInt(string(e.val), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memcache: incr %q: %w", key, host.ErrNotInteger)
	}
	if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
		return 0, fmt.Errorf("memcache: incr %q: %d%+d: %w", key, cur, delta, host.ErrNotInteger)
	}
	n := cur + delta
	s.put(key, strconv.AppendInt(nil, n, 10), e.exp)
	return n, nil
}

// put stores v (owned by the cache from now on) under key with absolute
// expiry exp, then evicts from the tail until the shard fits. The shard lock
// must be held.
func (s *shard) put(key string, v []byte, exp int64) {
	e := s.m[key]
	if e == nil {
		e = &entry{key: strings.Clone(key), val: v, exp: exp, hidx: -1}
		s.m[e.key] = e
		s.pushFront(e)
		s.bytes += e.size()
	} else {
		s.bytes += int64(len(v) - len(e.val))
		e.val = v
		e.exp = exp
		s.touch(e)
	}
	switch {
	case exp == 0 && e.hidx >= 0:
		s.heapRemove(e.hidx)
	case exp != 0 && e.hidx >= 0:
		s.heapFix(e.hidx)
	case exp != 0:
		s.heapPush(e)
	}
	for s.bytes > s.max && s.tail != nil && s.tail != e {
		s.remove(s.tail)
		s.evicts.Add(1)
	}
}

// remove drops e from the map, the LRU list and the expiry heap.
func (s *shard) remove(e *entry) {
	delete(s.m, e.key)
	s.unlink(e)
	if e.hidx >= 0 {
		s.heapRemove(e.hidx)
	}
	s.bytes -= e.size()
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// touch marks e most recently used.
func (s *shard) touch(e *entry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

// sweeper removes expired entries every interval until Close.
func (c *Cache) sweeper(interval time.Duration) {
	defer close(c.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sweep()
		}
	}
}

// sweep pops expired entries off every shard's heap, holding each shard's
// lock for at most sweepBatch removals at a time.
func (c *Cache) sweep() {
	for i := range c.shards {
		s := &c.shards[i]
		for {
			now := c.now()
			n := 0
			s.mu.Lock()
			for n < sweepBatch && len(s.exp) > 0 && s.exp[0].exp <= now {
				s.remove(s.exp[0])
				n++
			}
			s.mu.Unlock()
			s.expire.Add(uint64(n))
			if n < sweepBatch {
				break
			}
		}
	}
}

// The expiry heap: a binary min-heap on entry.exp, each entry knowing its
// index so an update or a removal is O(log n).

func (s *shard) heapPush(e *entry) {
	e.hidx = len(s.exp)
	s.exp = append(s.exp, e)
	s.heapUp(e.hidx)
}

func (s *shard) heapRemove(i int) {
	last := len(s.exp) - 1
	e := s.exp[i]
	if i != last {
		s.heapSwap(i, last)
	}
	s.exp[last] = nil
	s.exp = s.exp[:last]
	e.hidx = -1
	if i != last {
		s.heapFix(i)
	}
}

func (s *shard) heapFix(i int) {
	if !s.heapDown(i) {
		s.heapUp(i)
	}
}

func (s *shard) heapSwap(i, j int) {
	s.exp[i], s.exp[j] = s.exp[j], s.exp[i]
	s.exp[i].hidx = i
	s.exp[j].hidx = j
}

func (s *shard) heapUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if s.exp[p].exp <= s.exp[i].exp {
			return
		}
		s.heapSwap(i, p)
		i = p
	}
}

// heapDown sifts i down and reports whether it moved.
func (s *shard) heapDown(i int) bool {
	start := i
	n := len(s.exp)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s.exp[r].exp < s.exp[l].exp {
			m = r
		}
		if s.exp[i].exp <= s.exp[m].exp {
			break
		}
		s.heapSwap(i, m)
		i = m
	}
	return i > start
}

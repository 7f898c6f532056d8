package memcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
)

// fakeClock is a settable clock for deterministic expiry tests.
type fakeClock struct{ ns atomic.Int64 }

func (f *fakeClock) now() int64          { return f.ns.Load() }
func (f *fakeClock) add(d time.Duration) { f.ns.Add(int64(d)) }
func newFake() *fakeClock                { f := &fakeClock{}; f.ns.Store(1_000_000_000); return f }
func mustNew(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newFakeCache(t testing.TB, cfg Config) (*Cache, *fakeClock) {
	cfg.SweepInterval = -1
	c := mustNew(t, cfg)
	f := newFake()
	c.now = f.now
	return c, f
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
		shards  int
	}{
		{"zero means defaults", Config{}, false, 16},
		{"small cache one shard", Config{MaxBytes: 2 << 20}, false, 1},
		{"explicit shards", Config{Shards: 4}, false, 4},
		{"negative max bytes", Config{MaxBytes: -1}, true, 0},
		{"negative value limit", Config{MaxValueBytes: -1}, true, 0},
		{"shards not power of two", Config{Shards: 3}, true, 0},
		{"shard too small for a value", Config{MaxBytes: 1 << 20, MaxValueBytes: 1 << 20}, true, 0},
		{"too many shards for budget", Config{MaxBytes: 8 << 20, Shards: 64}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && tt.cfg.withDefaults().Shards != tt.shards {
				t.Fatalf("shards = %d, want %d", tt.cfg.withDefaults().Shards, tt.shards)
			}
			if _, nerr := New(tt.cfg); (nerr != nil) != tt.wantErr {
				t.Fatalf("New() error = %v, want error %v", nerr, tt.wantErr)
			}
		})
	}
}

func TestGetSetDelete(t *testing.T) {
	ctx := context.Background()
	c, _ := newFakeCache(t, Config{})
	if _, ok, err := c.Get(ctx, "a"); ok || err != nil {
		t.Fatalf("Get on empty cache = ok %v, err %v", ok, err)
	}
	val := []byte("hello")
	if err := c.Set(ctx, "a", val, 0); err != nil {
		t.Fatal(err)
	}
	val[0] = 'J' // the cache must have copied
	got, ok, err := c.Get(ctx, "a")
	if !ok || err != nil || string(got) != "hello" {
		t.Fatalf("Get = %q, %v, %v; want hello", got, ok, err)
	}
	if err := c.Set(ctx, "a", []byte("bye"), 0); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := c.Get(ctx, "a"); string(got) != "bye" {
		t.Fatalf("after overwrite Get = %q", got)
	}
	if existed, _ := c.Delete(ctx, "a"); !existed {
		t.Fatal("Delete of present key reported absent")
	}
	if existed, _ := c.Delete(ctx, "a"); existed {
		t.Fatal("second Delete reported present")
	}
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("stats after delete = %+v, want empty", st)
	}
	// An empty value is a hit, not a miss.
	c.Set(ctx, "empty", nil, 0)
	if got, ok, _ := c.Get(ctx, "empty"); !ok || len(got) != 0 {
		t.Fatalf("empty value: %q, %v", got, ok)
	}
}

func TestTTL(t *testing.T) {
	ctx := context.Background()
	c, clk := newFakeCache(t, Config{})
	c.Set(ctx, "short", []byte("1"), time.Second)
	c.Set(ctx, "long", []byte("2"), time.Hour)
	c.Set(ctx, "forever", []byte("3"), 0)
	clk.add(999 * time.Millisecond)
	if _, ok, _ := c.Get(ctx, "short"); !ok {
		t.Fatal("short expired early")
	}
	clk.add(time.Millisecond)
	if _, ok, _ := c.Get(ctx, "short"); ok {
		t.Fatal("short alive at its expiry")
	}
	// Re-setting with ttl 0 removes the expiry.
	c.Set(ctx, "long", []byte("2b"), 0)
	clk.add(2 * time.Hour)
	for _, k := range []string{"long", "forever"} {
		if _, ok, _ := c.Get(ctx, k); !ok {
			t.Fatalf("%s expired, want no expiry", k)
		}
	}
	if existed, _ := c.Delete(ctx, "short"); existed {
		t.Fatal("Delete of expired key reported present")
	}
	if st := c.Stats(); st.Expirations != 1 {
		t.Fatalf("expirations = %d, want 1", st.Expirations)
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	c, clk := newFakeCache(t, Config{Shards: 1})
	for i := range 3000 {
		ttl := time.Duration(1+i%3) * time.Second
		c.Set(ctx, strconv.Itoa(i), []byte("v"), ttl)
	}
	c.Set(ctx, "keep", []byte("v"), 0)
	clk.add(2 * time.Second)
	c.sweep()
	st := c.Stats()
	if st.Entries != 1000+1 || st.Expirations != 2000 {
		t.Fatalf("after sweep at 2s: %+v, want 1001 entries and 2000 expirations", st)
	}
	clk.add(time.Second)
	c.sweep()
	if st := c.Stats(); st.Entries != 1 {
		t.Fatalf("after sweep at 3s: %d entries, want 1", st.Entries)
	}
	if _, ok, _ := c.Get(ctx, "keep"); !ok {
		t.Fatal("sweep removed an entry without TTL")
	}
}

func TestSweeperRunsInBackground(t *testing.T) {
	ctx := context.Background()
	c := mustNew(t, Config{SweepInterval: 5 * time.Millisecond})
	c.Set(ctx, "k", []byte("v"), time.Millisecond)
	for c.Stats().Entries != 0 {
		time.Sleep(2 * time.Millisecond) // the test timeout bounds this
	}
	if st := c.Stats(); st.Expirations != 1 {
		t.Fatalf("expirations = %d, want 1", st.Expirations)
	}
	c.Close()
	c.Close() // idempotent
}

func TestLRUEviction(t *testing.T) {
	ctx := context.Background()
	// One shard with room for exactly four 1 KiB values with 1 KiB keys.
	per := int64(DefaultMaxValueBytes + maxKeyBytes + entryOverhead)
	c, _ := newFakeCache(t, Config{MaxBytes: per, Shards: 1})
	c.shards[0].max = 4 * (1024 + 1 + entryOverhead)
	v := bytes.Repeat([]byte("x"), 1024)
	for _, k := range []string{"a", "b", "c", "d"} {
		c.Set(ctx, k, v, 0)
	}
	if st := c.Stats(); st.Entries != 4 || st.Evictions != 0 {
		t.Fatalf("stats = %+v, want 4 entries, no eviction", st)
	}
	c.Get(ctx, "a") // a is now most recently used; b is the LRU
	c.Set(ctx, "e", v, 0)
	if _, ok, _ := c.Get(ctx, "b"); ok {
		t.Fatal("b survived; want it evicted as least recently used")
	}
	for _, k := range []string{"a", "c", "d", "e"} {
		if _, ok, _ := c.Get(ctx, k); !ok {
			t.Fatalf("%s evicted", k)
		}
	}
	if st := c.Stats(); st.Evictions != 1 || st.Bytes > c.shards[0].max {
		t.Fatalf("stats = %+v, want 1 eviction within %d bytes", st, c.shards[0].max)
	}
}

func TestTooLarge(t *testing.T) {
	ctx := context.Background()
	c, _ := newFakeCache(t, Config{MaxValueBytes: 10})
	if err := c.Set(ctx, "k", make([]byte, 11), 0); !errors.Is(err, host.ErrValueTooLarge) {
		t.Fatalf("Set 11 bytes: %v, want ErrValueTooLarge", err)
	}
	if _, err := c.Add(ctx, "k", make([]byte, 11), 0); !errors.Is(err, host.ErrValueTooLarge) {
		t.Fatalf("Add 11 bytes: %v, want ErrValueTooLarge", err)
	}
	if err := c.Set(ctx, "k", make([]byte, 10), 0); err != nil {
		t.Fatalf("Set 10 bytes: %v", err)
	}
}

func TestAdd(t *testing.T) {
	ctx := context.Background()
	c, clk := newFakeCache(t, Config{})
	if ok, _ := c.Add(ctx, "k", []byte("1"), time.Second); !ok {
		t.Fatal("Add on absent key = false")
	}
	if ok, _ := c.Add(ctx, "k", []byte("2"), 0); ok {
		t.Fatal("Add on present key = true")
	}
	if got, _, _ := c.Get(ctx, "k"); string(got) != "1" {
		t.Fatalf("value = %q, want 1 (Add must not overwrite)", got)
	}
	clk.add(time.Second)
	if ok, _ := c.Add(ctx, "k", []byte("3"), 0); !ok {
		t.Fatal("Add on expired key = false")
	}
}

func TestIncr(t *testing.T) {
	ctx := context.Background()
	c, clk := newFakeCache(t, Config{})
	tests := []struct {
		key     string
		delta   int64
		want    int64
		wantErr error
	}{
		{"n", 5, 5, nil},
		{"n", -7, -2, nil},
		{"n", 0, -2, nil},
		{"text", 1, 0, host.ErrNotInteger},
		{"max", 1, 0, host.ErrNotInteger},
		{"min", -1, 0, host.ErrNotInteger},
	}
	c.Set(ctx, "text", []byte("abc"), 0)
	c.Set(ctx, "max", []byte(strconv.FormatInt(math.MaxInt64, 10)), 0)
	c.Set(ctx, "min", []byte(strconv.FormatInt(math.MinInt64, 10)), 0)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s%+d", tt.key, tt.delta), func(t *testing.T) {
			got, err := c.Incr(ctx, tt.key, tt.delta, 0)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Incr err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("Incr = %d, want %d", got, tt.want)
			}
		})
	}
	if got, _, _ := c.Get(ctx, "n"); string(got) != "-2" {
		t.Fatalf("stored counter = %q, want -2", got)
	}
	// The TTL applies when incr creates the key; later incrs keep it.
	c.Incr(ctx, "win", 1, time.Second)
	clk.add(500 * time.Millisecond)
	c.Incr(ctx, "win", 1, time.Hour)
	clk.add(500 * time.Millisecond)
	if _, ok, _ := c.Get(ctx, "win"); ok {
		t.Fatal("counter outlived the TTL it was created with")
	}
}

func TestGetMany(t *testing.T) {
	ctx := context.Background()
	c, _ := newFakeCache(t, Config{})
	c.Set(ctx, "a", []byte("1"), 0)
	c.Set(ctx, "c", []byte("3"), 0)
	got, err := c.GetMany(ctx, []string{"a", "b", "c"})
	if err != nil || len(got) != 3 || string(got[0]) != "1" || got[1] != nil || string(got[2]) != "3" {
		t.Fatalf("GetMany = %q, %v", got, err)
	}
}

// TestHeapModel runs random operations and checks every shard invariant
// (map, LRU list, heap order and indexes, byte accounting) against a model.
func TestHeapModel(t *testing.T) {
	ctx := context.Background()
	c, clk := newFakeCache(t, Config{Shards: 2})
	type mv struct {
		v   string
		exp int64
	}
	model := map[string]mv{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		k := strconv.Itoa(r.IntN(200))
		switch r.IntN(6) {
		case 0, 1:
			ttl := time.Duration(r.IntN(4)) * time.Second
			v := strconv.Itoa(i)
			c.Set(ctx, k, []byte(v), ttl)
			m := mv{v: v}
			if ttl > 0 {
				m.exp = clk.now() + int64(ttl)
			}
			model[k] = m
		case 2:
			c.Delete(ctx, k)
			delete(model, k)
		case 3:
			got, ok, _ := c.Get(ctx, k)
			m, live := model[k]
			live = live && (m.exp == 0 || m.exp > clk.now())
			if ok != live || (ok && string(got) != m.v) {
				t.Fatalf("op %d: Get(%s) = %q,%v; model %+v live %v", i, k, got, ok, m, live)
			}
		case 4:
			clk.add(time.Duration(r.IntN(300)) * time.Millisecond)
		case 5:
			c.sweep()
		}
		if i%500 == 0 {
			checkInvariants(t, c)
		}
	}
	checkInvariants(t, c)
}

func checkInvariants(t *testing.T, c *Cache) {
	t.Helper()
	for si := range c.shards {
		s := &c.shards[si]
		s.mu.Lock()
		var bytes int64
		n := 0
		var prev *entry
		for e := s.head; e != nil; e = e.next {
			if e.prev != prev {
				t.Fatalf("shard %d: broken prev link at %q", si, e.key)
			}
			if s.m[e.key] != e {
				t.Fatalf("shard %d: list entry %q not in map", si, e.key)
			}
			bytes += e.size()
			n++
			prev = e
		}
		if s.tail != prev || n != len(s.m) || bytes != s.bytes {
			t.Fatalf("shard %d: list %d entries %d bytes, map %d, accounted %d", si, n, bytes, len(s.m), s.bytes)
		}
		withTTL := 0
		for _, e := range s.m {
			if e.exp != 0 {
				withTTL++
				if e.hidx < 0 || s.exp[e.hidx] != e {
					t.Fatalf("shard %d: %q has a TTL but a bad heap index %d", si, e.key, e.hidx)
				}
			} else if e.hidx != -1 {
				t.Fatalf("shard %d: %q has no TTL but heap index %d", si, e.key, e.hidx)
			}
		}
		if withTTL != len(s.exp) {
			t.Fatalf("shard %d: heap holds %d, %d entries have TTLs", si, len(s.exp), withTTL)
		}
		for i := 1; i < len(s.exp); i++ {
			if s.exp[(i-1)/2].exp > s.exp[i].exp {
				t.Fatalf("shard %d: heap order broken at %d", si, i)
			}
		}
		s.mu.Unlock()
	}
}

func TestCacheHammer(t *testing.T) {
	ctx := context.Background()
	c := mustNew(t, Config{MaxBytes: 4 << 20, MaxValueBytes: 4 << 10, SweepInterval: time.Millisecond})
	const workers, iters = 8, 3000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range iters {
				k := "k" + strconv.Itoa(r.IntN(500))
				switch r.IntN(5) {
				case 0:
					c.Set(ctx, k, bytes.Repeat([]byte{byte(w)}, r.IntN(4096)), time.Duration(r.IntN(3))*time.Millisecond)
				case 1:
					if v, ok, _ := c.Get(ctx, k); ok && len(v) > 0 {
						// A value is never torn: all bytes come from one writer.
						if bytes.Count(v, v[:1]) != len(v) {
							t.Errorf("torn value for %s", k)
							return
						}
					}
				case 2:
					c.Delete(ctx, k)
				case 3:
					c.Add(ctx, k, bytes.Repeat([]byte{byte(100 + w)}, 16), 0)
				case 4:
					if _, err := c.Incr(ctx, "counter", 1, 0); err != nil {
						t.Errorf("incr: %v", err)
						return
					}
				}
				_ = i
			}
		}()
	}
	wg.Wait()
	checkInvariants(t, c)
	if st := c.Stats(); st.Bytes > 4<<20 {
		t.Fatalf("cache holds %d bytes, over its 4 MiB bound", st.Bytes)
	}
}

func TestIncrHammer(t *testing.T) {
	ctx := context.Background()
	c := mustNew(t, Config{})
	const workers, iters = 8, 2000
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range iters {
				c.Incr(ctx, "n", 1, 0)
			}
		}()
	}
	wg.Wait()
	if got, _, _ := c.Get(ctx, "n"); string(got) != strconv.Itoa(workers*iters) {
		t.Fatalf("counter = %s, want %d (lost increments)", got, workers*iters)
	}
}

func TestGetHitDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	c := mustNew(t, Config{})
	c.Set(ctx, "page:42", bytes.Repeat([]byte("x"), 2048), time.Hour)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok, _ := c.Get(ctx, "page:42"); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("Get hit allocates %.1f times, want 0", allocs)
	}
}

func BenchmarkGetHit(b *testing.B) {
	ctx := context.Background()
	c := mustNew(b, Config{})
	c.Set(ctx, "page:42", bytes.Repeat([]byte("x"), 2048), time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		c.Get(ctx, "page:42")
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	ctx := context.Background()
	c := mustNew(b, Config{})
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "page:" + strconv.Itoa(i)
		c.Set(ctx, keys[i], bytes.Repeat([]byte("x"), 512), time.Hour)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(ctx, keys[i&1023])
			i++
		}
	})
}

func BenchmarkSet(b *testing.B) {
	ctx := context.Background()
	c := mustNew(b, Config{})
	v := bytes.Repeat([]byte("x"), 512)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "page:" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Set(ctx, keys[i&1023], v, time.Hour)
		i++
	}
}

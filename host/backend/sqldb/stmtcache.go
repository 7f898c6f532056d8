package sqldb

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// DefaultStmtCacheSize is the number of prepared statements cached per pool
// when Config.StmtCacheSize is 0. database/sql prepares a cached statement
// once per connection, so a MySQL pool holds at most this many times its
// open connections server-side (64 x 32 = 2048 by default; the server-wide
// max_prepared_stmt_count defaults to 16382).
const DefaultStmtCacheSize = 64

// CachedStmt is a prepared statement borrowed from a Set's statement cache.
// The borrower must call Release when done with it (after closing its
// rows); the statement stays open until every borrower has released it,
// even if the cache evicts it meanwhile.
type CachedStmt struct {
	// Stmt is the prepared statement, bound to the pool it was asked for.
	Stmt *sql.Stmt

	key  string
	refs atomic.Int32 // borrowers + 1 while in the cache
	used atomic.Bool  // CLOCK reference bit
}

// Release returns the statement.
func (c *CachedStmt) Release() {
	if c.refs.Add(-1) == 0 {
		c.Stmt.Close()
	}
}

// stmtCache is one pool's statement cache: a map for lookups, a CLOCK ring
// for eviction, and an admission filter so a query is prepared only the
// second time it is seen: one-off SQL keeps costing one round trip, not a
// prepare, an execute and a close.
type stmtCache struct {
	pool *sql.DB
	max  int

	mu    sync.RWMutex
	stmts map[string]*CachedStmt
	ring  []*CachedStmt
	hand  int
	seen  map[string]struct{}
}

func newStmtCache(pool *sql.DB, size int) *stmtCache {
	return &stmtCache{pool: pool, max: size, stmts: make(map[string]*CachedStmt, size), seen: map[string]struct{}{}}
}

// get returns a borrowed statement for query, or nil when query should run
// unprepared (first sighting, or the prepare failed).
func (c *stmtCache) get(ctx context.Context, query string) *CachedStmt {
	c.mu.RLock()
	e := c.stmts[query]
	if e != nil {
		e.refs.Add(1) // under the read lock: eviction cannot run concurrently
		c.mu.RUnlock()
		e.used.Store(true)
		return e
	}
	c.mu.RUnlock()

	c.mu.Lock()
	if e = c.stmts[query]; e != nil {
		e.refs.Add(1)
		c.mu.Unlock()
		return e
	}
	if _, ok := c.seen[query]; !ok {
		if len(c.seen) >= 4*c.max {
			clear(c.seen) // crude bound: forget the one-offs
		}
		c.seen[query] = struct{}{}
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()

	st, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		// Not preparable (or the database is down): run it unprepared,
		// which reports a real error itself; try again after two more
		// sightings.
		c.mu.Lock()
		delete(c.seen, query)
		c.mu.Unlock()
		return nil
	}
	e = &CachedStmt{Stmt: st, key: query}
	e.refs.Store(2) // the cache's and the caller's
	c.mu.Lock()
	if old := c.stmts[query]; old != nil { // prepared concurrently
		old.refs.Add(1)
		c.mu.Unlock()
		st.Close()
		return old
	}
	delete(c.seen, query)
	var victim *CachedStmt
	if len(c.ring) < c.max {
		c.ring = append(c.ring, e)
	} else {
		for {
			v := c.ring[c.hand]
			if v.used.Swap(false) {
				c.hand = (c.hand + 1) % len(c.ring)
				continue
			}
			victim = v
			c.ring[c.hand] = e
			c.hand = (c.hand + 1) % len(c.ring)
			delete(c.stmts, v.key)
			break
		}
	}
	c.stmts[query] = e
	c.mu.Unlock()
	if victim != nil {
		victim.Release() // the cache's reference
	}
	return e
}

// close drops every cached statement (each closes when its last borrower
// releases it).
func (c *stmtCache) close() {
	c.mu.Lock()
	ring := c.ring
	c.ring, c.stmts, c.seen = nil, map[string]*CachedStmt{}, map[string]struct{}{}
	c.mu.Unlock()
	for _, e := range ring {
		e.Release()
	}
}

func (c *stmtCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.stmts)
}

package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

func memPool(t *testing.T) *sql.DB {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStmtCacheAdmissionAndEviction(t *testing.T) {
	ctx := context.Background()
	c := newStmtCache(memPool(t), 3)
	q := func(i int) string { return fmt.Sprintf("SELECT %d", i) }

	if e := c.get(ctx, q(1)); e != nil {
		t.Fatal("first sighting was prepared")
	}
	e := c.get(ctx, q(1))
	if e == nil {
		t.Fatal("second sighting not prepared")
	}
	var v int
	if err := e.Stmt.QueryRow().Scan(&v); err != nil || v != 1 {
		t.Fatalf("cached statement: %d, %v", v, err)
	}
	e.Release()
	if again := c.get(ctx, q(1)); again != e {
		t.Fatal("third use did not hit the cache")
	} else {
		again.Release()
	}
	// Fill the cache, then one more: the CLOCK evicts an entry whose
	// reference bit is clear, never the one just used.
	for i := 2; i <= 3; i++ {
		c.get(ctx, q(i))
		c.get(ctx, q(i)).Release()
	}
	if n := c.len(); n != 3 {
		t.Fatalf("%d cached, want 3", n)
	}
	c.get(ctx, q(3)).Release() // q(3) recently used
	c.get(ctx, q(4))
	c.get(ctx, q(4)).Release()
	if n := c.len(); n != 3 {
		t.Fatalf("%d cached after eviction, want 3", n)
	}
	c.mu.RLock()
	_, has4 := c.stmts[q(4)]
	c.mu.RUnlock()
	if !has4 {
		t.Fatal("newest statement not cached")
	}
	// A statement that cannot be prepared is not cached and the caller runs
	// it unprepared (which reports the error).
	c.get(ctx, "SELEKT")
	if e := c.get(ctx, "SELEKT"); e != nil {
		t.Fatal("a failed prepare returned a statement")
	}
	c.close()
	if n := c.len(); n != 0 {
		t.Fatalf("%d cached after close", n)
	}
}

// A statement evicted while borrowed stays usable until released.
func TestStmtCacheEvictWhileBorrowed(t *testing.T) {
	ctx := context.Background()
	c := newStmtCache(memPool(t), 1)
	c.get(ctx, "SELECT 1")
	held := c.get(ctx, "SELECT 1")
	c.get(ctx, "SELECT 2")
	c.get(ctx, "SELECT 2").Release() // evicts SELECT 1
	var v int
	if err := held.Stmt.QueryRow().Scan(&v); err != nil || v != 1 {
		t.Fatalf("evicted but borrowed statement: %d, %v", v, err)
	}
	held.Release()
	if err := held.Stmt.QueryRow().Scan(&v); err == nil {
		t.Fatal("statement still open after its last release")
	}
}

func TestStmtCacheHammer(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/h.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := newStmtCache(db, 4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				n := (g + i) % 7 // more queries than slots: constant eviction
				q := fmt.Sprintf("SELECT %d", n)
				var v int
				if e := c.get(context.Background(), q); e != nil {
					err := e.Stmt.QueryRow().Scan(&v)
					e.Release()
					if err != nil || v != n {
						t.Errorf("%s: %d, %v", q, v, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := c.len(); n > 4 {
		t.Fatalf("%d cached, limit 4", n)
	}
	c.close()
}

package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/wasmcorn/wasmcorn/host/backend/sqldb"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// BenchmarkSQLiteWriters compares SQLite write strategies under concurrent
// writers, each running BEGIN; SELECT; INSERT; COMMIT:
//
//   - one_writer: what Open builds (one writer connection, BEGIN IMMEDIATE).
//   - pool8_immediate: 8 read-write connections, BEGIN IMMEDIATE and a 5 s
//     busy timeout: writers wait inside SQLite (sleep-and-retry) instead of
//     in database/sql's queue.
//   - pool8_deferred: 8 connections with the default deferred BEGIN: the
//     read-then-write upgrade fails with SQLITE_BUSY at once.
//
// It reports errors per op; the chosen strategy must report 0.
func BenchmarkSQLiteWriters(b *testing.B) {
	strategies := []struct {
		name string
		open func(b *testing.B, dir string) *sql.DB
	}{
		{"one_writer", func(b *testing.B, dir string) *sql.DB {
			s, err := sqldb.Open(dir, map[string]sqldb.Config{"w": {}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			p, _, _ := s.Pools("w")
			return p
		}},
		{"pool8_immediate", func(b *testing.B, dir string) *sql.DB {
			return rawSQLite(b, filepath.Join(dir, "x.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)&_txlock=immediate", 8)
		}},
		{"pool8_deferred", func(b *testing.B, dir string) *sql.DB {
			return rawSQLite(b, filepath.Join(dir, "x.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)", 8)
		}},
	}
	for _, st := range strategies {
		b.Run(st.name, func(b *testing.B) {
			db := st.open(b, b.TempDir())
			if _, err := db.Exec("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, g INTEGER, s TEXT)"); err != nil {
				b.Fatal(err)
			}
			if _, err := db.Exec("CREATE INDEX IF NOT EXISTS items_g ON items (g)"); err != nil {
				b.Fatal(err)
			}
			var errs, gid atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(8) // 8 x GOMAXPROCS writers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				g := gid.Add(1)
				ctx := context.Background()
				for pb.Next() {
					if err := writeTx(ctx, db, g); err != nil {
						errs.Add(1)
					}
				}
			})
			b.ReportMetric(float64(errs.Load())/float64(b.N), "errors/op")
		})
	}
}

func rawSQLite(b *testing.B, dsn string, n int) *sql.DB {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	b.Cleanup(func() { db.Close() })
	return db
}

func writeTx(ctx context.Context, db *sql.DB, g int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM items WHERE g = ?", g).Scan(&n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO items (g, s) VALUES (?, ?)", g, "x"); err != nil {
		return err
	}
	return tx.Commit()
}

// BenchmarkMySQLPKLookup measures one-row primary-key lookups through
// database/sql on a throwaway MariaDB with the driver's two parameter
// modes: interpolateParams=true (one text-protocol round trip) and false
// (server-side prepare, execute and close per query: two round trips plus
// a fire-and-forget close), and, for reference, a reused prepared
// statement (one binary-protocol round trip, but per-connection statement
// state the host would have to cache).
func BenchmarkMySQLPKLookup(b *testing.B) {
	if testing.Short() {
		b.Skip("starts MariaDB")
	}
	m := testsvc.StartMariaDB(b)
	m.Exec("CREATE TABLE test.users (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), created DATETIME)")
	for i := 1; i <= 1000; i++ {
		m.Exec("INSERT INTO test.users VALUES (?, ?, ?, NOW())", i, fmt.Sprint("user", i), fmt.Sprint("u", i, "@example.com"))
	}
	const q = "SELECT id, name, email, created FROM users WHERE id = ?"
	open := func(b *testing.B, interpolate bool) *sql.DB {
		cfg, err := mysql.ParseDSN(m.DSN("test"))
		if err != nil {
			b.Fatal(err)
		}
		cfg.ParseTime, cfg.InterpolateParams = true, interpolate
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			b.Fatal(err)
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		b.Cleanup(func() { db.Close() })
		return db
	}
	run := func(b *testing.B, lookup func(ctx context.Context, id int) error) {
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if err := lookup(ctx, int(n.Add(1)%1000)+1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	scan := func(r *sql.Row) error {
		var id int
		var name, email string
		var created sql.NullTime
		return r.Scan(&id, &name, &email, &created)
	}
	for _, interpolate := range []bool{true, false} {
		b.Run(fmt.Sprintf("interpolateParams=%v", interpolate), func(b *testing.B) {
			db := open(b, interpolate)
			run(b, func(ctx context.Context, id int) error { return scan(db.QueryRowContext(ctx, q, id)) })
		})
	}
	b.Run("reused_prepared_stmt", func(b *testing.B) {
		db := open(b, false)
		st, err := db.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		run(b, func(ctx context.Context, id int) error { return scan(st.QueryRowContext(ctx, id)) })
	})
}

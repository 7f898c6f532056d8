package metrics

import (
	"database/sql"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// SQL host operations and connection pools.
var (
	// DBOps counts SQL host operations by database, operation (an ABI op
	// name such as "db.query") and outcome (an ABI reply code name: "ok",
	// "sql", "timeout", "unavailable", "denied", "invalid", "too_large",
	// "internal"). Operations refused before a database is known (bad
	// arguments, unknown handle) count under db="".
	DBOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_db_operations_total",
		Help: "SQL host operations by database, operation and outcome.",
	}, []string{"db", "op", "outcome"})

	// DBOpDuration observes the wall time of SQL host operations that
	// reached the database, by database and operation; for queries it
	// includes reading every row into the reply.
	DBOpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wasmcorn_db_operation_duration_seconds",
		Help:    "Duration of SQL host operations that reached the database.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"db", "op"})
)

// DBPool describes one connection pool for the pool collector. Role is
// "primary", "replica" (one per replica, Index telling them apart) or, for
// SQLite, "writer" and "reader".
type DBPool struct {
	DB    string
	Role  string
	Index int
	Pool  *sql.DB
	// Opened returns the number of connections the pool has opened since it
	// was created (successful dials), or nil when unknown.
	Opened func() int64
}

var dbPoolSources = struct {
	sync.Mutex
	next int
	m    map[int][]DBPool
}{m: map[int][]DBPool{}}

// WatchDBPools adds pools to the pool collector until the returned function
// is called (the SQL backend calls it when it closes the pools). Safe for
// concurrent use.
func WatchDBPools(pools []DBPool) (unwatch func()) {
	dbPoolSources.Lock()
	id := dbPoolSources.next
	dbPoolSources.next++
	dbPoolSources.m[id] = pools
	dbPoolSources.Unlock()
	return func() {
		dbPoolSources.Lock()
		delete(dbPoolSources.m, id)
		dbPoolSources.Unlock()
	}
}

var (
	dbLabels        = []string{"db", "role", "index"}
	dbPoolOpen      = prometheus.NewDesc("wasmcorn_db_pool_open_connections", "Connections open in the pool (in use plus idle).", dbLabels, nil)
	dbPoolInUse     = prometheus.NewDesc("wasmcorn_db_pool_in_use_connections", "Connections currently in use.", dbLabels, nil)
	dbPoolIdle      = prometheus.NewDesc("wasmcorn_db_pool_idle_connections", "Idle connections.", dbLabels, nil)
	dbPoolMaxOpen   = prometheus.NewDesc("wasmcorn_db_pool_max_open_connections", "Configured maximum of open connections (0 = unlimited).", dbLabels, nil)
	dbPoolWaits     = prometheus.NewDesc("wasmcorn_db_pool_waits_total", "Times a caller waited for a free connection.", dbLabels, nil)
	dbPoolWaitSecs  = prometheus.NewDesc("wasmcorn_db_pool_wait_seconds_total", "Total time spent waiting for a free connection.", dbLabels, nil)
	dbPoolOpened    = prometheus.NewDesc("wasmcorn_db_pool_connections_opened_total", "Connections opened (dialled) by the pool.", dbLabels, nil)
	dbPoolClosedIdl = prometheus.NewDesc("wasmcorn_db_pool_closed_max_idle_total", "Connections closed because the idle pool was full.", dbLabels, nil)
	dbPoolClosedLif = prometheus.NewDesc("wasmcorn_db_pool_closed_max_lifetime_total", "Connections closed at their maximum lifetime.", dbLabels, nil)
	dbPoolClosedIdT = prometheus.NewDesc("wasmcorn_db_pool_closed_max_idle_time_total", "Connections closed after their maximum idle time.", dbLabels, nil)
)

// dbPoolCollector turns sql.DBStats of the watched pools into metrics at
// scrape time.
type dbPoolCollector struct{}

func (dbPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dbPoolOpen, dbPoolInUse, dbPoolIdle, dbPoolMaxOpen, dbPoolWaits,
		dbPoolWaitSecs, dbPoolOpened, dbPoolClosedIdl, dbPoolClosedLif, dbPoolClosedIdT} {
		ch <- d
	}
}

// Collect reads every watched pool's statistics. Pools with the same labels
// (an old and a new backend during a reload) are summed, so a scrape never
// sees a duplicate series.
func (dbPoolCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		db, role string
		index    int
	}
	type agg struct {
		s      sql.DBStats
		opened int64
		known  bool // some pool reported Opened
	}
	dbPoolSources.Lock()
	var order []key
	sums := map[key]*agg{}
	for _, ps := range dbPoolSources.m {
		for _, p := range ps {
			k := key{p.DB, p.Role, p.Index}
			a := sums[k]
			if a == nil {
				a = &agg{}
				sums[k] = a
				order = append(order, k)
			}
			s := p.Pool.Stats()
			a.s.MaxOpenConnections += s.MaxOpenConnections
			a.s.OpenConnections += s.OpenConnections
			a.s.InUse += s.InUse
			a.s.Idle += s.Idle
			a.s.WaitCount += s.WaitCount
			a.s.WaitDuration += s.WaitDuration
			a.s.MaxIdleClosed += s.MaxIdleClosed
			a.s.MaxIdleTimeClosed += s.MaxIdleTimeClosed
			a.s.MaxLifetimeClosed += s.MaxLifetimeClosed
			if p.Opened != nil {
				a.opened += p.Opened()
				a.known = true
			}
		}
	}
	dbPoolSources.Unlock()
	for _, k := range order {
		a := sums[k]
		lv := []string{k.db, k.role, strconv.Itoa(k.index)}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
		}
		gauge(dbPoolOpen, float64(a.s.OpenConnections))
		gauge(dbPoolInUse, float64(a.s.InUse))
		gauge(dbPoolIdle, float64(a.s.Idle))
		gauge(dbPoolMaxOpen, float64(a.s.MaxOpenConnections))
		counter(dbPoolWaits, float64(a.s.WaitCount))
		counter(dbPoolWaitSecs, a.s.WaitDuration.Seconds())
		counter(dbPoolClosedIdl, float64(a.s.MaxIdleClosed))
		counter(dbPoolClosedLif, float64(a.s.MaxLifetimeClosed))
		counter(dbPoolClosedIdT, float64(a.s.MaxIdleTimeClosed))
		if a.known {
			counter(dbPoolOpened, float64(a.opened))
		}
	}
}

func init() {
	Registry.MustRegister(DBOps, DBOpDuration, dbPoolCollector{})
}

package suite

import (
	"net/http"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/workload"
)

// Scenario is one workload the suite measures on every target that
// supports it.
type Scenario struct {
	// Name identifies the scenario in flags, reports and JSON.
	Name string `json:"name"`
	// Description says what one request does.
	Description string `json:"description"`
	// Path is the workload path (bench/workload); targets map it to their
	// own route.
	Path   string `json:"path"`
	Method string `json:"method"`
	Body   []byte `json:"-"`
	// IDs spreads requests over Path?id=1..workload.Rows.
	IDs bool `json:"ids,omitempty"`
	// NeedsDB: the scenario reads MariaDB (and Redis); it is skipped when
	// they cannot be started.
	NeedsDB bool `json:"needs_db,omitempty"`
	// NeedsRedis: the scenario uses Redis.
	NeedsRedis bool `json:"needs_redis,omitempty"`
	// Cache is the cache backend the target is started with: "memory" or
	// "redis".
	Cache string `json:"cache,omitempty"`
	// Queue is the queue backend: "redis" or "sqlite" (wasmcorn only).
	Queue string `json:"queue,omitempty"`
	// Connections overrides the run's connection count (c10k).
	Connections int `json:"connections,omitempty"`
	// Reload replaces the plugin file continuously during the run.
	Reload bool `json:"reload,omitempty"`
	// Python marks scenarios served by a Python plugin on wasmcorn.
	Python bool `json:"python,omitempty"`
	// NoClassic: the classic stacks do not implement this workload.
	NoClassic bool `json:"no_classic,omitempty"`
	// Trusted runs the wasmcorn plugin with deadline_enforced = false.
	Trusted bool `json:"trusted,omitempty"`
	// Fast serves the scenario from the plugins on the Go SDK's
	// zero-allocation APIs (wasmcorn.ServeFast, db.Query, cache.AppendGet):
	// plugins/hellofast instead of hello, bench/plugins/benchfast instead
	// of benchapp.
	Fast bool `json:"fast,omitempty"`
	// Timeout overrides the per-request timeout.
	Timeout time.Duration `json:"-"`
	// SameAs names the scenario whose measurements stand for this one on
	// targets other than wasmcorn (they do the same work either way), so
	// they are not run twice and ratios compare with them.
	SameAs string `json:"same_as,omitempty"`
}

// base is the scenario whose native and classic results this one's
// wasmcorn result is compared with.
func (s *Scenario) base() string {
	if s.SameAs != "" {
		return s.SameAs
	}
	return s.Name
}

// C10kConnections is the connection count of the c10k scenario.
const C10kConnections = 10_000

// Scenarios returns every scenario in report order.
func Scenarios() []Scenario {
	get := http.MethodGet
	return []Scenario{
		{Name: "json", Path: "/json", Method: get,
			Description: "small fixed JSON document (thin handler)"},
		{Name: "json-trusted", Path: "/json", Method: get, Trusted: true, SameAs: "json",
			Description: "json with deadline enforcement turned off for the plugin (wasmcorn only)"},
		{Name: "json-fast", Path: "/json", Method: get, Fast: true, SameAs: "json",
			Description: "json from the same handler on the Go SDK's zero-allocation API, ServeFast, instead of net/http (wasmcorn only)"},
		{Name: "json-fast-trusted", Path: "/json", Method: get, Fast: true, Trusted: true, SameAs: "json",
			Description: "json-fast with deadline enforcement turned off for the plugin (wasmcorn only)"},
		{Name: "jsonstruct", Path: "/jsonstruct", Method: get,
			Description: "10 items built and encoded from Go structs (encoding/json)"},
		{Name: "jsonbig", Path: "/jsonbig", Method: get, NoClassic: true,
			Description: "100 items built and encoded from Go structs (guest-compute-heavy; not on the classic stacks)"},
		{Name: "db", Path: "/db", Method: get, IDs: true, NeedsDB: true, NeedsRedis: true, Cache: "redis",
			Description: "one MariaDB row by primary key + one Redis GET, over 1,000 ids"},
		{Name: "db-fast", Path: "/db", Method: get, IDs: true, NeedsDB: true, NeedsRedis: true, Cache: "redis", Fast: true, SameAs: "db",
			Description: "db from the same handler on the Go SDK's zero-allocation APIs (ServeFast, db.Query, cache.AppendGet) (wasmcorn only)"},
		{Name: "cached", Path: "/cached", Method: get, IDs: true, NeedsDB: true, Cache: "memory",
			Description: "row from the in-process cache (loaded from MariaDB on a miss)"},
		{Name: "cached-fast", Path: "/cached", Method: get, IDs: true, NeedsDB: true, Cache: "memory", Fast: true, SameAs: "cached",
			Description: "cached from the same handler on the Go SDK's zero-allocation APIs (wasmcorn only)"},
		{Name: "cached-redis", Path: "/cached", Method: get, IDs: true, NeedsDB: true, NeedsRedis: true, Cache: "redis",
			Description: "row from Redis (loaded from MariaDB on a miss)"},
		{Name: "queue", Path: "/queue", Method: http.MethodPost, Body: []byte(workload.JobPayload),
			NeedsRedis: true, Queue: "redis",
			Description: "submit one small job to a Redis-backed queue; native (Redis Streams) and wasmcorn execute the jobs in-process, the classic stacks only LPUSH them (the broker half of celery/RQ)"},
		{Name: "queue-sqlite", Path: "/queue", Method: http.MethodPost, Body: []byte(workload.JobPayload),
			Queue: "sqlite", SameAs: "queue",
			Description: "submit one small job to wasmcorn's embedded SQLite queue (wasmcorn only)"},
		{Name: "static", Path: "/static/" + workload.StaticName, Method: get,
			Description: "a 10 KiB static file"},
		{Name: "c10k", Path: "/json", Method: get, Connections: C10kConnections, Timeout: 30 * time.Second,
			Description: "json over 10,000 concurrent keep-alive connections"},
		{Name: "reload", Path: "/json", Method: get, Reload: true, SameAs: "json",
			Description: "json while a new version of the plugin is deployed every second (two versions alternate, compiled before the run: a warm compilation cache) (wasmcorn only)"},
		{Name: "py-json", Path: "/json", Method: get, Python: true, SameAs: "json",
			Description: "json from a Python handler (wasmcorn only)"},
		{Name: "py-db", Path: "/db", Method: get, IDs: true, NeedsDB: true, NeedsRedis: true, Cache: "redis", Python: true, SameAs: "db",
			Description: "db from a Python handler (wasmcorn only)"},
	}
}

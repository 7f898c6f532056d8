package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
)

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	c, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:8080" || c.Admin.Listen != "127.0.0.1:9090" || c.Plugins.Dir != "plugins" {
		t.Fatalf("zero config defaults wrong: %+v %+v %+v", c.Server.Listen, c.Admin, c.Plugins)
	}
}

func TestParseFull(t *testing.T) {
	src := `
[server]
listen = "0.0.0.0:80"
read_timeout = "5s"
max_body_bytes = "1MiB"
max_header_bytes = 16384
security_headers = { "X-Frame-Options" = "", "Strict-Transport-Security" = "max-age=63072000" }
[server.gzip]
level = 9
[admin]
listen = ""
[[static]]
prefix = "/assets/"
dir = "."
max_age = "1h"
[databases.main]
dsn = "data/main.db"
[databases.replica_set]
driver = "mysql"
dsn = "u:p@tcp(127.0.0.1:3306)/app"
replicas = ["u:p@tcp(127.0.0.2:3306)/app"]
[cache]
backend = "redis"
[cache.redis]
addrs = ["127.0.0.1:6379"]
[jobs]
lease = "10m"
`
	c, err := Parse("full.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Server.ReadTimeout.D() != 5*time.Second || c.Server.MaxBodyBytes != 1<<20 || c.Server.MaxHeaderBytes != 16384 {
		t.Fatalf("server: %+v", c.Server)
	}
	if c.Server.WriteTimeout.D() != 30*time.Second {
		t.Fatalf("unset key lost its default: %v", c.Server.WriteTimeout)
	}
	h := c.Server.EffectiveSecurityHeaders()
	if _, ok := h["X-Frame-Options"]; ok || h["X-Content-Type-Options"] != "nosniff" || h["Strict-Transport-Security"] == "" {
		t.Fatalf("security headers: %v", h)
	}
	if c.Admin.Listen != "" {
		t.Fatal("admin not disabled")
	}
	if c.Databases["main"].DriverName() != "sqlite" || len(c.Databases["replica_set"].Replicas) != 1 {
		t.Fatalf("databases: %+v", c.Databases)
	}
	if c.Jobs.Options().Lease != 10*time.Minute || c.Jobs.Options().MaxAttempts != 5 {
		t.Fatalf("jobs: %+v", c.Jobs.Options())
	}
}

func TestStrictUnknownKeys(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // substrings of the error
	}{
		{"typo", "[server]\nlisten = \"x:1\"\nlistn = \"y\"\n", []string{"t.toml", "server.listn", "unknown key", `did you mean "listen"`}},
		{"nested", "[server.gzip]\nlevl = 3\n", []string{"server.gzip.levl", `"level"`}},
		{"table", "[sever]\nlisten = \"x\"\n", []string{"sever: unknown key", `"server"`}},
		{"in map entry", "[databases.main]\ndsn = \"a\"\nmax_conns = 3\n", []string{"databases.main.max_conns"}},
		{"array of tables", "[[static]]\nprefix = \"/s/\"\ndirectory = \".\"\n", []string{"static.directory"}},
		{"top level", "engine = \"wazero\"\n", []string{"engine: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tt.src))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("%v does not wrap ErrUnknownKey", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// A table of unknown keys is reported once, not once per key.
	_, err := Parse("t.toml", []byte("[nope]\na = 1\nb = 2\n"))
	if n := strings.Count(err.Error(), "unknown key"); n != 1 {
		t.Errorf("unknown table reported %d times: %v", n, err)
	}
}

func TestTypeErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"duration int", "[server]\nread_timeout = 30\n", `t.toml:2: server.read_timeout: want a duration string`},
		{"duration bad", "[server]\nread_timeout = \"30 seconds\"\n", `bad duration`},
		{"size bad", "[server]\nmax_body_bytes = \"4 parsecs\"\n", `bad size`},
		{"size negative", "[server]\nmax_body_bytes = -1\n", `negative size`},
		{"string for int", "[server]\nmax_connections = \"many\"\n", `server.max_connections`},
		{"syntax", "[server\n", `t.toml:2: expected`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"512", 512, true}, {"64KiB", 64 << 10, true}, {"4 MiB", 4 << 20, true},
		{"1GiB", 1 << 30, true}, {"10KB", 10000, true}, {"3MB", 3e6, true}, {"7B", 7, true},
		{"", 0, false}, {"MiB", 0, false}, {"-1", 0, false}, {"1.5MiB", 0, false}, {"99999999999999TiB", 0, false},
	}
	for _, tt := range tests {
		var s ByteSize
		err := s.UnmarshalText([]byte(tt.in))
		if (err == nil) != tt.ok || (tt.ok && uint64(s) != tt.want) {
			t.Errorf("%q: %d, %v", tt.in, s, err)
		}
	}
	if got := ByteSize(4 << 20).String(); got != "4MiB" {
		t.Errorf("String = %q", got)
	}
	if got := ByteSize(1000).String(); got != "1000" {
		t.Errorf("String = %q", got)
	}
}

func TestApplyEnv(t *testing.T) {
	c := Default()
	unknown, err := ApplyEnv(c, []string{
		"WASMCORN_SERVER_LISTEN=0.0.0.0:9000",
		"WASMCORN_SERVER_READ_TIMEOUT=2s",
		"WASMCORN_SERVER_MAX_BODY_BYTES=1MiB",
		"WASMCORN_SERVER_MAX_CONNECTIONS_PER_IP=7",
		"WASMCORN_SERVER_MAX_CONNECTIONS=100",
		"WASMCORN_SERVER_KEEP_ALIVE=false",
		"WASMCORN_SERVER_TLS_CERT_FILE=/c.pem",
		"WASMCORN_SERVER_GZIP_TYPES=text/, application/json",
		"WASMCORN_ACCESS_LOG_SAMPLE=0.25",
		"WASMCORN_DATABASES_MAIN_DSN=/tmp/x.db",
		"WASMCORN_DATABASES_MY_DB_MAX_OPEN_CONNS=9",
		"WASMCORN_CACHE_REDIS_ADDRS=127.0.0.1:6379",
		"WASMCORN_CONFIG=/ignored.toml",
		"WASMCORN_NOT_A_KEY=1",
		"OTHER=1",
		"WASMCORN_SERVER_NOPE=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server
	if s.Listen != "0.0.0.0:9000" || s.ReadTimeout.D() != 2*time.Second || s.MaxBodyBytes != 1<<20 ||
		s.MaxConnectionsPerIP != 7 || s.MaxConnections != 100 || s.KeepAlive || s.TLS.CertFile != "/c.pem" {
		t.Fatalf("server: %+v", s)
	}
	if strings.Join(s.Gzip.Types, "|") != "text/|application/json" {
		t.Fatalf("types: %q", s.Gzip.Types)
	}
	if c.AccessLog.Sample != 0.25 || c.Databases["main"].DSN != "/tmp/x.db" || c.Databases["my_db"].MaxOpenConns != 9 {
		t.Fatalf("access log %v, databases %+v", c.AccessLog, c.Databases)
	}
	if len(c.Cache.Redis.Addrs) != 1 {
		t.Fatalf("redis addrs %v", c.Cache.Redis.Addrs)
	}
	if strings.Join(unknown, ",") != "WASMCORN_NOT_A_KEY,WASMCORN_SERVER_NOPE" {
		t.Fatalf("unknown = %v", unknown)
	}

	_, err = ApplyEnv(Default(), []string{"WASMCORN_SERVER_READ_TIMEOUT=soon", "WASMCORN_SERVER_KEEP_ALIVE=maybe"})
	if err == nil || !strings.Contains(err.Error(), "WASMCORN_SERVER_READ_TIMEOUT") || !strings.Contains(err.Error(), "WASMCORN_SERVER_KEEP_ALIVE") {
		t.Fatalf("bad values: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		key    string
	}{
		{"listen", func(c *Config) { c.Server.Listen = "nope" }, "server.listen"},
		{"admin same as public", func(c *Config) { c.Admin.Listen = c.Server.Listen }, "admin.listen"},
		{"admin wildcard same port", func(c *Config) { c.Server.Listen = "0.0.0.0:80"; c.Admin.Listen = "127.0.0.1:80" }, "admin.listen"},
		{"body", func(c *Config) { c.Server.MaxBodyBytes = 0 }, "server.max_body_bytes"},
		{"header", func(c *Config) { c.Server.MaxHeaderBytes = 10 }, "server.max_header_bytes"},
		{"tls half", func(c *Config) { c.Server.TLS.CertFile = "/etc/hostname" }, "server.tls"},
		{"tls missing", func(c *Config) { c.Server.TLS = TLS{"/nope.pem", "/nope.key"} }, "server.tls.cert_file"},
		{"gzip level", func(c *Config) { c.Server.Gzip.Level = 0 }, "server.gzip.level"},
		{"sec header", func(c *Config) { c.Server.SecurityHeaders = map[string]string{"Bad Name": "x"} }, "server.security_headers.Bad Name"},
		{"sec header value", func(c *Config) { c.Server.SecurityHeaders = map[string]string{"X-A": "a\r\nb"} }, "server.security_headers.X-A"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"sample", func(c *Config) { c.AccessLog.Sample = 2 }, "access_log.sample"},
		{"static root", func(c *Config) { c.Static = []Static{{Prefix: "/", Dir: "."}} }, "static[0].prefix"},
		{"static dir", func(c *Config) { c.Static = []Static{{Prefix: "/s/", Dir: "/does/not/exist"}} }, "static[0].dir"},
		{"static dup", func(c *Config) { c.Static = []Static{{Prefix: "/s/", Dir: "."}, {Prefix: "/s/", Dir: "."}} }, "static[1].prefix"},
		{"db driver", func(c *Config) { c.Databases = map[string]Database{"m": {Driver: "pg", DSN: "x"}} }, "databases.m.driver"},
		{"db dsn", func(c *Config) { c.Databases = map[string]Database{"m": {Driver: "mysql"}} }, "databases.m.dsn"},
		{"db name", func(c *Config) { c.Databases = map[string]Database{"M M": {DSN: "x"}} }, "databases.M M"},
		{"cache backend", func(c *Config) { c.Cache.Backend = "disk" }, "cache.backend"},
		{"redis addrs", func(c *Config) { c.Cache.Backend = "redis" }, "cache.redis.addrs"},
		{"sentinel", func(c *Config) {
			c.Queue.Backend = "redis"
			c.Queue.Redis = Redis{Mode: "sentinel", Addrs: []string{"h:26379"}}
		}, "queue.redis.master_name"},
		{"jobs", func(c *Config) { c.Jobs.BackoffMin = Duration(time.Hour) }, "jobs.backoff_min"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.File = "w.toml"
			tt.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), "w.toml: "+tt.key+":") {
				t.Fatalf("error %q does not name %q", err, tt.key)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("not a KeyError: %T", err)
			}
		})
	}
	// Every problem is reported, not just the first.
	c := Default()
	c.Server.Listen, c.Log.Format = "bad", "xml"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "server.listen") || !strings.Contains(err.Error(), "log.format") {
		t.Fatalf("not all problems reported: %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wasmcorn.toml")
	if err := os.WriteFile(path, []byte("[server]\nlisten = \"127.0.0.1:0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != path || c.Server.Listen != "127.0.0.1:0" {
		t.Fatalf("%+v", c)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := `
engine = "wazero"
[[routes]]
path = "/api/items/{id}"
methods = ["GET", "post"]
host = "api.example.com"
[pool]
min = 1
max = 4
max_wait = "250ms"
[limits]
max_memory_bytes = "100KiB"
timeout = "2s"
deadline_enforced = false
[grants]
databases = ["main"]
queues = ["emails"]
env = { TZ = "UTC" }
config = { greeting = "hi" }
dirs = [{ guest = "/data", host = "data" }]
[[jobs]]
queue = "emails"
concurrency = 3
[[periodic]]
name = "cleanup"
schedule = "@every 1h"
queue = "maint"
payload = "{}"
`
	path := filepath.Join(dir, "items.toml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	spec := m.Spec("items", []byte("wasm"))
	def := host.DefaultPoolConfig()
	if spec.Name != "items" || spec.Engine != "wazero" || spec.Pool.Min != 1 || spec.Pool.Max != 4 ||
		spec.Pool.MaxWait != 250*time.Millisecond || spec.Pool.MaxRequests != def.MaxRequests {
		t.Fatalf("pool: %+v", spec.Pool)
	}
	if spec.Limits.MaxMemoryPages != 2 || spec.Limits.Timeout != 2*time.Second || spec.Limits.DeadlineEnforced ||
		spec.Limits.MaxResponseBytes != host.DefaultLimits().MaxResponseBytes {
		t.Fatalf("limits: %+v", spec.Limits)
	}
	if spec.Grants.CacheNamespace != "items" || !spec.Grants.HasDatabase("main") || !spec.Grants.HasQueue("emails") ||
		spec.Grants.Config["greeting"] != "hi" || spec.Env["TZ"] != "UTC" {
		t.Fatalf("grants: %+v env %v", spec.Grants, spec.Env)
	}
	if len(spec.Dirs) != 1 || spec.Dirs[0].HostPath != filepath.Join(dir, "data") || spec.Dirs[0].ReadWrite {
		t.Fatalf("dirs: %+v", spec.Dirs)
	}
	if rs := m.EffectiveRoutes("items"); len(rs) != 1 || rs[0].Host != "api.example.com" {
		t.Fatalf("routes: %+v", rs)
	}
	if q := m.QueueConfigs(); len(q) != 1 || q[0].Concurrency != 3 {
		t.Fatalf("queues: %+v", q)
	}
	if p := m.PeriodicJobs("items"); len(p) != 1 || p[0].Name != "items.cleanup" || string(p[0].Payload) != "{}" {
		t.Fatalf("periodic: %+v", p)
	}
	c := Default()
	if err := m.CheckGrants(c); err == nil || !strings.Contains(err.Error(), `database "main" is not configured`) {
		t.Fatalf("CheckGrants: %v", err)
	}
	c.Databases = map[string]Database{"main": {DSN: "x"}}
	if err := m.CheckGrants(c); err != nil {
		t.Fatal(err)
	}
	// A job timeout must stay below the server's job lease.
	m.Jobs[0].Timeout = c.Jobs.Lease
	if err := m.CheckGrants(c); err == nil || !strings.Contains(err.Error(), "jobs[0].timeout") {
		t.Fatalf("CheckGrants with a job timeout equal to the lease: %v", err)
	}
}

func TestManifestDefaults(t *testing.T) {
	m, err := ParseManifest("x.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := m.Spec("hello", nil)
	if spec.Pool != host.DefaultPoolConfig() || spec.Limits != host.DefaultLimits() {
		t.Fatalf("defaults: %+v %+v", spec.Pool, spec.Limits)
	}
	rs := m.EffectiveRoutes("hello")
	if len(rs) != 2 || rs[0].Path != "/hello" || rs[1].Path != "/hello/*" {
		t.Fatalf("default routes: %+v", rs)
	}
	var none Manifest
	if len(none.EffectiveRoutes("hello")) != 2 {
		t.Fatal("no manifest: default routes expected")
	}
	m, err = ParseManifest("x.toml", []byte("routes = []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.EffectiveRoutes("hello")) != 0 {
		t.Fatal("routes = [] must mean no routes")
	}
	// min above the default max raises max; max below the default min lowers min.
	m, _ = ParseManifest("x.toml", []byte("[pool]\nmin = 40\n"))
	if s := m.Spec("p", nil); s.Pool.Max != 40 {
		t.Fatalf("max = %d", s.Pool.Max)
	}
	m, _ = ParseManifest("x.toml", []byte("[pool]\nmax = 1\n"))
	if s := m.Spec("p", nil); s.Pool.Min != 1 || m.Validate() != nil {
		t.Fatalf("min = %d, %v", s.Pool.Min, m.Validate())
	}
}

func TestManifestErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown key", "[pool]\nmaxx = 3\n", `m.toml: pool.maxx: unknown key (did you mean "max"?)`},
		{"unknown section", "[grant]\ndatabases = []\n", `grant: unknown key (did you mean "grants"?)`},
		{"route pattern", "[[routes]]\npath = \"items\"\n", "m.toml: routes[0].path: bad route pattern"},
		{"route method", "[[routes]]\npath = \"/x\"\nmethods = [\"FETCH\"]\n", "routes[0].methods"},
		{"pool", "[pool]\nmin = 5\nmax = 2\n", "pool.min: min 5 exceeds max 2"},
		{"memory both", "[limits]\nmax_memory_pages = 10\nmax_memory_bytes = \"1MiB\"\n", "limits: give max_memory_bytes or max_memory_pages"},
		{"memory pages", "[limits]\nmax_memory_pages = 70000\n", "limits.max_memory_pages"},
		{"timeout", "[limits]\ntimeout = \"0s\"\n", "limits.timeout"},
		{"queue name", "[grants]\nqueues = [\"a b\"]\n", "grants.queues[0]"},
		{"cache namespace", "[grants]\ncache_namespace = \"a:b\"\n", "grants.cache_namespace: must not contain ':'"},
		{"dir", "[grants]\ndirs = [{ guest = \"data\", host = \"/nonexistent\" }]\n", "grants.dirs[0].guest"},
		{"dir host", "[grants]\ndirs = [{ guest = \"/d\", host = \"/nonexistent\" }]\n", "grants.dirs[0].host"},
		{"jobs dup", "[[jobs]]\nqueue = \"q\"\n[[jobs]]\nqueue = \"q\"\n", "jobs[1].queue"},
		{"schedule", "[[periodic]]\nname = \"p\"\nschedule = \"every hour\"\nqueue = \"q\"\n", "periodic[0].schedule"},
		{"periodic dup", "[[periodic]]\nname = \"p\"\nschedule = \"@hourly\"\nqueue = \"q\"\n[[periodic]]\nname = \"p\"\nschedule = \"@daily\"\nqueue = \"q\"\n", "periodic[1].name"},
		{"deadline type", "[limits]\ndeadline_enforced = \"no\"\n", "limits.deadline_enforced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest("m.toml", []byte(tt.src))
			if err == nil {
				err = m.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"hello.wasm", "hello.toml", "echo.wasm", "Bad Name.wasm", "orphan.toml", "README.md", ".hidden.wasm"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.wasm"), 0o755); err != nil {
		t.Fatal(err)
	}
	found, problems, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].Name != "echo" || found[0].Manifest != "" || found[1].Name != "hello" || found[1].Manifest == "" {
		t.Fatalf("found %+v", found)
	}
	if len(problems) != 2 {
		t.Fatalf("problems %v", problems)
	}
	joined := errors.Join(problems...).Error()
	if !strings.Contains(joined, "Bad Name.wasm") || !strings.Contains(joined, "orphan.toml") {
		t.Fatalf("problems %v", joined)
	}
	if !errors.Is(errors.Join(problems...), ErrOrphanManifest) {
		t.Fatal("orphan manifest error does not wrap ErrOrphanManifest")
	}
	if _, _, err := Discover(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing dir accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("[server]\nlisten = \"127.0.0.1:1\"\nread_timeout = \"1s\"\nmax_body_bytes = \"1MiB\"\n"))
	f.Add([]byte("[databases.main]\ndsn = \"x\"\n[[static]]\nprefix = \"/s/\"\n"))
	f.Add([]byte("[server\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			return
		}
		_ = c.Validate() // must not panic
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("[[routes]]\npath = \"/a/{id}\"\nmethods = [\"GET\"]\n[pool]\nmin = 1\n"))
	f.Add([]byte("[limits]\nmax_memory_bytes = \"1GiB\"\n[[periodic]]\nname = \"x\"\nschedule = \"*/5 * * * *\"\nqueue = \"q\"\n"))
	f.Add([]byte("routes = []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest("fuzz.toml", data)
		if err != nil {
			return
		}
		if m.Validate() == nil {
			spec := m.Spec("fuzz", nil)
			if spec.Pool.Min > spec.Pool.Max {
				t.Fatalf("valid manifest gave min %d > max %d", spec.Pool.Min, spec.Pool.Max)
			}
		}
	})
}

// TestExampleMatchesDefaults keeps wasmcorn.example.toml, the documented
// defaults, in step with Default.
func TestExampleMatchesDefaults(t *testing.T) {
	c, err := Load("wasmcorn.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	c.File = ""
	// Lists written empty in the example decode as empty, not nil.
	if len(c.Cache.Redis.Addrs) == 0 && len(c.Queue.Redis.Addrs) == 0 {
		c.Cache.Redis.Addrs, c.Queue.Redis.Addrs = nil, nil
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("example differs from Default():\nexample %+v\ndefault %+v", *c, *Default())
	}
}

// TestSameAddr: the admin listener is refused on any spelling of the public
// listener's socket (with reuse_port both would bind, sharing connections).
func TestSameAddr(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{"0.0.0.0:8080", "127.0.0.1:8080", true},
		{":8080", "[::1]:8080", true},
		{"[::]:8080", "10.0.0.1:8080", true},
		{"0.0.0.0:18491", "0.0.0.0:018491", true},
		{"localhost:9090", "127.0.0.1:9090", true},
		{"LOCALHOST:9090", "[::1]:9090", true},
		{"[::ffff:127.0.0.1]:9090", "127.0.0.1:9090", true},
		{"127.0.0.1:8080", "127.0.0.1:9090", false},
		{"127.0.0.1:8080", "127.0.0.2:8080", false},
		{"localhost:9090", "10.0.0.1:9090", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{"127.0.0.1:00", "127.0.0.1:0", false},
		{"nonsense", "127.0.0.1:8080", false},
	} {
		if got := sameAddr(c.a, c.b); got != c.same {
			t.Errorf("sameAddr(%q, %q) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// Package config is wasmcorn's configuration model: the server config file
// (wasmcorn.toml), its WASMCORN_* environment overrides, and plugin
// manifests (plugins/NAME.toml).
//
// Life cycle: Default returns the documented defaults; Load decodes a TOML
// file over them strictly (an unknown key is an error naming the key);
// ApplyEnv applies WASMCORN_* variables; the CLI applies its flags; then
// Validate checks the whole thing and reports every problem at once.
// Parsing never validates and validation never parses. Once the server
// starts, a Config is treated as immutable: a reload builds a new one.
//
// Every duration is a string such as "30s" and every size an integer of
// bytes or a string such as "4MiB"; field names carry their unit
// (read_timeout, max_body_bytes).
package config

import (
	"os"
	"path/filepath"
	"time"

	"github.com/wasmcorn/wasmcorn/host/jobs"
)

// Config is the whole server configuration. The zero value is not useful;
// start from Default. A Config is not safe for concurrent mutation; the
// server never mutates the one it was given.
type Config struct {
	// DataDir holds the embedded backends' files (SQLite databases given
	// by relative path, the job queue). Relative to the working directory.
	// Default "data".
	DataDir string `toml:"data_dir"`

	Server    Server    `toml:"server"`
	Admin     Admin     `toml:"admin"`
	Plugins   Plugins   `toml:"plugins"`
	Log       Log       `toml:"log"`
	AccessLog AccessLog `toml:"access_log"`
	// Static lists directories served as static files, without Wasm.
	Static []Static `toml:"static"`

	// Databases are the SQL databases plugins may be granted, by name
	// ([databases.NAME]). There is always one named "default", an embedded
	// SQLite database (data/default.db) unless [databases.default] says
	// otherwise; a config adds the others.
	Databases map[string]Database `toml:"databases"`
	// Cache configures the cache and lock backend ([cache]).
	Cache Cache `toml:"cache"`
	// Queue configures the job queue backend ([queue]).
	Queue Queue `toml:"queue"`
	// Jobs configures the job runner ([jobs]).
	Jobs Jobs `toml:"jobs"`

	// File is the path the config was read from; "" when none was.
	File string `toml:"-"`
}

// Server configures the public HTTP listener ([server]).
type Server struct {
	// Listen is the public address. Default "127.0.0.1:8080".
	Listen string `toml:"listen"`
	// ReadTimeout bounds reading one request (headers and body), and the
	// wait for the first request on a new connection; "0s" disables it.
	// Default "30s".
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout bounds writing one response; "0s" disables it.
	// Default "30s".
	WriteTimeout Duration `toml:"write_timeout"`
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection; "0s" uses ReadTimeout. Default "60s".
	IdleTimeout Duration `toml:"idle_timeout"`
	// ShutdownTimeout bounds the graceful shutdown: in-flight requests get
	// this long to finish before their plugin calls are cancelled.
	// Default "30s".
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// MaxBodyBytes is the largest request body accepted; larger ones get
	// 413. Default 4MiB.
	MaxBodyBytes ByteSize `toml:"max_body_bytes"`
	// MaxHeaderBytes is the largest request line plus headers accepted;
	// larger ones get 431. It is also the per-connection read buffer size.
	// Default 8KiB.
	MaxHeaderBytes ByteSize `toml:"max_header_bytes"`
	// MaxConnections caps concurrent connections; connections beyond it are
	// answered 503 and closed. Default 65536.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP caps concurrent connections from one client IP;
	// 0 means no cap. Default 0.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxRequestsPerConn closes a keep-alive connection after that many
	// requests; 0 means no limit. Default 0.
	MaxRequestsPerConn int `toml:"max_requests_per_conn"`
	// KeepAlive enables HTTP keep-alive. Default true.
	KeepAlive bool `toml:"keep_alive"`
	// Name is sent as the Server response header; "" sends none.
	// Default "wasmcorn".
	Name string `toml:"name"`
	// HealthEndpoints also answers /healthz and /readyz on the public
	// listener (they always exist on the admin listener). Those two paths
	// then take precedence over plugin routes. Default true.
	HealthEndpoints bool `toml:"health_endpoints"`
	// TrustRequestID keeps a client's X-Request-Id when it is sane (1 to
	// 128 characters of [A-Za-z0-9._:-]); otherwise, or when false, the
	// server generates one. Default true.
	TrustRequestID bool `toml:"trust_request_id"`
	// TLS enables HTTPS on Listen when both files are set.
	TLS TLS `toml:"tls"`
	// Gzip configures response compression.
	Gzip Gzip `toml:"gzip"`
	// SecurityHeaders are set on every response unless the plugin set the
	// same header. Keys given here replace or add to the defaults; a key
	// set to "" removes that default. Defaults:
	// X-Content-Type-Options = "nosniff", X-Frame-Options = "SAMEORIGIN",
	// Referrer-Policy = "strict-origin-when-cross-origin".
	SecurityHeaders map[string]string `toml:"security_headers"`
	// DebugHeaders adds X-Wasmcorn-Plugin: NAME@HASH12 (the plugin's
	// name and the first 12 hex digits of its module's SHA-256) to every
	// response a plugin produced. Default false.
	DebugHeaders bool `toml:"debug_headers"`
	// ReusePort opens the listeners with SO_REUSEPORT, so several
	// independent processes can share the port. Default false.
	ReusePort bool `toml:"reuse_port"`
	// PidFile, when set, receives the server's process id once it serves
	// (and is updated by the new process after a binary upgrade).
	// Default "" (none).
	PidFile string `toml:"pid_file"`
	// UpgradeTimeout bounds how long a binary upgrade (SIGUSR2) waits for
	// the new process to report ready before giving up and keeping the
	// old process serving. Default "60s".
	UpgradeTimeout Duration `toml:"upgrade_timeout"`
}

// TLS names a certificate and key in PEM files ([server.tls]).
type TLS struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Gzip configures response compression ([server.gzip]). A response is
// compressed when the client accepts gzip, the response has no
// Content-Encoding yet, its Content-Type starts with (or, for entries
// starting with "+", ends with) one of Types, and its body is at least
// MinBytes long.
type Gzip struct {
	// Enabled turns compression on. Default true.
	Enabled bool `toml:"enabled"`
	// MinBytes is the smallest body worth compressing. Default 1KiB.
	MinBytes ByteSize `toml:"min_bytes"`
	// Level is the gzip level, 1 (fastest) to 9 (smallest). Default 5.
	Level int `toml:"level"`
	// Types are Content-Type prefixes to compress. Default: text/,
	// application/json, application/javascript, application/xml,
	// application/wasm, image/svg+xml, +json and +xml.
	Types []string `toml:"types"`
}

// Admin configures the admin listener ([admin]): /healthz, /readyz,
// /metrics, /status, /status.json and POST /admin/reload. It has no
// authentication and must never be reachable from outside the host.
type Admin struct {
	// Listen is the admin address; "" disables the admin listener.
	// Default "127.0.0.1:9090".
	Listen string `toml:"listen"`
}

// Plugins configures plugin discovery and the Wasm engine ([plugins]).
type Plugins struct {
	// Dir holds NAME.wasm files and their optional NAME.toml manifests.
	// Relative paths are relative to the working directory. Default "plugins".
	Dir string `toml:"dir"`
	// Engine is the default WebAssembly engine. Default "wazero".
	Engine string `toml:"engine"`
	// CacheDir holds the on-disk compilation cache; "" uses
	// $XDG_CACHE_HOME/wasmcorn (os.UserCacheDir). Default "".
	CacheDir string `toml:"cache_dir"`
	// CompileCache enables the on-disk compilation cache. Default true.
	CompileCache bool `toml:"compile_cache"`
	// Watch reloads the plugins directory when a file in it changes
	// (added, replaced, renamed or removed .wasm and .toml files).
	// Default true.
	Watch bool `toml:"watch"`
	// WatchDebounce is the quiet period after the last change in the
	// directory before a reload starts; a burst of writes (cp, an editor's
	// save) is one reload. A .wasm file still being written when the
	// period ends (its sections do not add up to its size, or it changed
	// moments ago) holds the reload back further. Default "50ms".
	WatchDebounce Duration `toml:"watch_debounce"`
}

// Log configures the process log ([log]).
type Log struct {
	// Level is "debug", "info", "warn" or "error". Default "info".
	Level string `toml:"level"`
	// Format is "text" or "json". Default "text".
	Format string `toml:"format"`
}

// AccessLog configures the per-request log line ([access_log]).
type AccessLog struct {
	// Enabled logs one line per request. Default true.
	Enabled bool `toml:"enabled"`
	// Sample is the fraction (0..1) of requests answered below 500 that are
	// logged; 5xx answers are always logged. Default 1.
	Sample float64 `toml:"sample"`
}

// Static serves the files under Dir at URL Prefix ([[static]]), without
// touching Wasm. Static prefixes take precedence over plugin routes.
type Static struct {
	// Prefix is the URL path prefix, starting and ending with "/".
	Prefix string `toml:"prefix"`
	// Dir is the directory served; relative paths are relative to the
	// working directory.
	Dir string `toml:"dir"`
	// IndexNames are tried for a directory request; empty means
	// ["index.html"].
	IndexNames []string `toml:"index_names"`
	// Browse generates a listing for directories without an index file.
	// Default false.
	Browse bool `toml:"browse"`
	// Compress serves gzip copies of compressible files to clients that
	// accept them. The copies are cached under the plugins cache
	// directory (the temporary directory when there is none), never
	// written next to the files. Default false.
	Compress bool `toml:"compress"`
	// MaxAge sets Cache-Control: public, max-age=N when non-zero.
	// Default "0s" (no Cache-Control header).
	MaxAge Duration `toml:"max_age"`
}

// Database is one SQL database plugins may be granted ([databases.NAME]).
// The SQL backend maps it to its own configuration.
type Database struct {
	// Driver is "sqlite" (embedded) or "mysql" (MySQL/MariaDB); "" means
	// "sqlite". Use DriverName to read it.
	Driver string `toml:"driver"`
	// DSN is the data source: for sqlite a file path (created if missing;
	// relative to DataDir; "" means NAME.db), for mysql a go-sql-driver DSN such as
	// "user:pw@tcp(127.0.0.1:3306)/app".
	DSN string `toml:"dsn"`
	// Replicas are read-only DSNs plain reads are spread over (mysql only).
	Replicas []string `toml:"replicas"`
	// MaxOpenConns caps open connections per pool; 0 = backend default.
	MaxOpenConns int `toml:"max_open_conns"`
	// MaxIdleConns caps idle connections per pool; 0 = backend default.
	MaxIdleConns int `toml:"max_idle_conns"`
	// ConnMaxLifetime recycles connections older than this; 0 = never.
	ConnMaxLifetime Duration `toml:"conn_max_lifetime"`
	// ConnMaxIdleTime closes connections idle longer than this; 0 = never.
	ConnMaxIdleTime Duration `toml:"conn_max_idle_time"`
	// QueryTimeout bounds one statement below the request deadline;
	// 0 = only the request deadline.
	QueryTimeout Duration `toml:"query_timeout"`
}

// DriverName returns Driver with its default applied.
func (d Database) DriverName() string {
	if d.Driver == "" {
		return "sqlite"
	}
	return d.Driver
}

// Redis locates a Redis deployment, shared by [cache.redis] and
// [queue.redis].
type Redis struct {
	// Mode is "standalone", "sentinel" or "cluster"; "" means standalone.
	Mode string `toml:"mode"`
	// Addrs are host:port addresses: the server (standalone), the
	// sentinels, or cluster seed nodes.
	Addrs []string `toml:"addrs"`
	// MasterName is the sentinel master set name (sentinel mode only).
	MasterName string `toml:"master_name"`
	// Username and Password authenticate (ACL user, or password only).
	Username string `toml:"username"`
	Password string `toml:"password"`
	// DB is the database number (standalone and sentinel only).
	DB int `toml:"db"`
	// PoolSize caps connections per node; 0 = client default.
	PoolSize int `toml:"pool_size"`
	// DialTimeout, ReadTimeout and WriteTimeout bound network operations;
	// 0 = client default.
	DialTimeout  Duration `toml:"dial_timeout"`
	ReadTimeout  Duration `toml:"read_timeout"`
	WriteTimeout Duration `toml:"write_timeout"`
	// KeyPrefix is prepended to every key wasmcorn writes; "" means none.
	KeyPrefix string `toml:"key_prefix"`
}

// Cache configures the cache and lock backend ([cache]).
type Cache struct {
	// Backend is "memory" (in-process, bounded) or "redis". Default "memory".
	Backend string `toml:"backend"`
	// MaxBytes bounds the in-memory cache (memory backend). Default 64MiB.
	MaxBytes ByteSize `toml:"max_bytes"`
	// Redis is used when Backend is "redis".
	Redis Redis `toml:"redis"`
}

// Queue configures the job queue backend ([queue]).
type Queue struct {
	// Backend is "sqlite" (durable, embedded) or "redis" (Streams).
	// Default "sqlite".
	Backend string `toml:"backend"`
	// Path is the SQLite file of the embedded queue; a relative path is
	// relative to DataDir. Default "queue.db".
	Path string `toml:"path"`
	// Redis is used when Backend is "redis".
	Redis Redis `toml:"redis"`
}

// Jobs configures the job runner ([jobs]); it maps to jobs.Options.
type Jobs struct {
	// Enabled runs the plugins' [[jobs]] consumers and [[periodic]]
	// schedules in this process. Default true.
	Enabled bool `toml:"enabled"`
	// MaxAttempts is how many deliveries a job gets before it is
	// dead-lettered. Default 5.
	MaxAttempts int `toml:"max_attempts"`
	// BackoffMin and BackoffMax bound the exponential retry delay.
	// Defaults "1s" and "5m".
	BackoffMin Duration `toml:"backoff_min"`
	BackoffMax Duration `toml:"backoff_max"`
	// Lease is how long a claimed job belongs to its worker; after that
	// (the worker is presumed dead) another worker may claim it. It must
	// exceed every queue's timeout. Default "5m".
	Lease Duration `toml:"lease"`
	// ClaimWait is how long one claim waits for a job. Default "1s".
	ClaimWait Duration `toml:"claim_wait"`
	// BackendTimeout bounds each acknowledge, retry and periodic submit.
	// Default "10s".
	BackendTimeout Duration `toml:"backend_timeout"`
}

// Options returns the job runner options j describes (without a logger).
func (j Jobs) Options() jobs.Options {
	return jobs.Options{
		MaxAttempts:    j.MaxAttempts,
		BackoffMin:     j.BackoffMin.D(),
		BackoffMax:     j.BackoffMax.D(),
		Lease:          j.Lease.D(),
		ClaimWait:      j.ClaimWait.D(),
		BackendTimeout: j.BackendTimeout.D(),
	}
}

// Default returns the documented defaults: a server on 127.0.0.1:8080
// serving plugins/, admin on 127.0.0.1:9090, embedded backends.
func Default() *Config {
	return &Config{
		DataDir: "data",
		Server: Server{
			Listen:          "127.0.0.1:8080",
			ReadTimeout:     Duration(30 * time.Second),
			WriteTimeout:    Duration(30 * time.Second),
			IdleTimeout:     Duration(time.Minute),
			ShutdownTimeout: Duration(30 * time.Second),
			MaxBodyBytes:    4 << 20,
			MaxHeaderBytes:  8 << 10,
			MaxConnections:  65536,
			KeepAlive:       true,
			Name:            "wasmcorn",
			HealthEndpoints: true,
			TrustRequestID:  true,
			UpgradeTimeout:  Duration(time.Minute),
			Gzip: Gzip{
				Enabled:  true,
				MinBytes: 1 << 10,
				Level:    5,
				Types:    DefaultGzipTypes(),
			},
		},
		Admin: Admin{Listen: "127.0.0.1:9090"},
		Plugins: Plugins{Dir: "plugins", Engine: "wazero", CompileCache: true,
			Watch: true, WatchDebounce: Duration(50 * time.Millisecond)},
		Log:       Log{Level: "info", Format: "text"},
		AccessLog: AccessLog{Enabled: true, Sample: 1},
		// Zero config gives plugins an embedded SQLite database named
		// "default" (data/default.db), as the example plugins expect.
		Databases: map[string]Database{"default": {Driver: "sqlite"}},
		Cache:     Cache{Backend: "memory", MaxBytes: 64 << 20},
		Queue:     Queue{Backend: "sqlite", Path: "queue.db"},
		Jobs: Jobs{
			Enabled:        true,
			MaxAttempts:    5,
			BackoffMin:     Duration(time.Second),
			BackoffMax:     Duration(5 * time.Minute),
			Lease:          Duration(5 * time.Minute),
			ClaimWait:      Duration(time.Second),
			BackendTimeout: Duration(10 * time.Second),
		},
	}
}

// QueuePath returns the embedded queue's file with DataDir applied.
func (c *Config) QueuePath() string {
	if filepath.IsAbs(c.Queue.Path) {
		return c.Queue.Path
	}
	return filepath.Join(c.DataDir, c.Queue.Path)
}

// DefaultGzipTypes returns the default compressible Content-Type prefixes.
func DefaultGzipTypes() []string {
	return []string{"text/", "application/json", "application/javascript",
		"application/xml", "application/wasm", "image/svg+xml", "+json", "+xml"}
}

// DefaultSecurityHeaders returns the headers set on every response unless
// the config removes them.
func DefaultSecurityHeaders() map[string]string {
	return map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "SAMEORIGIN",
		"Referrer-Policy":        "strict-origin-when-cross-origin",
	}
}

// EffectiveSecurityHeaders merges c.SecurityHeaders over the defaults and
// drops keys whose value is "".
func (s *Server) EffectiveSecurityHeaders() map[string]string {
	out := DefaultSecurityHeaders()
	for k, v := range s.SecurityHeaders {
		for dk := range out {
			if equalFold(dk, k) {
				delete(out, dk)
			}
		}
		if v != "" {
			out[k] = v
		}
	}
	return out
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// CompileCacheDir returns the directory of the on-disk compilation cache,
// or "" when it is disabled or no user cache directory exists.
func (p *Plugins) CompileCacheDir() string {
	if !p.CompileCache {
		return ""
	}
	if p.CacheDir != "" {
		return p.CacheDir
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "wasmcorn")
}

package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// problems collects validation errors, each naming its key.
type problems struct {
	file string
	errs []error
}

func (p *problems) add(key, format string, args ...any) {
	p.errs = append(p.errs, &KeyError{File: p.file, Key: key, Err: fmt.Errorf(format, args...)})
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// Validate checks c and returns every problem found, joined; each is a
// *KeyError naming the file (when c came from one) and the key. It reads
// the filesystem to check that referenced files and directories exist,
// but does not touch plugins (see LoadManifest and the check command).
func (c *Config) Validate() error {
	p := &problems{file: c.File}
	if c.DataDir == "" {
		p.add("data_dir", "must not be empty")
	}
	s := &c.Server
	checkAddr(p, "server.listen", s.Listen, false)
	for key, d := range map[string]Duration{
		"server.read_timeout": s.ReadTimeout, "server.write_timeout": s.WriteTimeout,
		"server.idle_timeout": s.IdleTimeout,
	} {
		if d != 0 && d.D() < 1e6 {
			p.add(key, "%s is below 1ms; use \"0s\" to disable the timeout", d)
		}
	}
	if s.ShutdownTimeout <= 0 {
		p.add("server.shutdown_timeout", "must be positive")
	}
	if s.UpgradeTimeout <= 0 {
		p.add("server.upgrade_timeout", "must be positive")
	}
	if s.MaxBodyBytes < 1 || s.MaxBodyBytes > 1<<31-1 {
		p.add("server.max_body_bytes", "%d is outside 1..2GiB", s.MaxBodyBytes)
	}
	if s.MaxHeaderBytes < 1<<10 || s.MaxHeaderBytes > 1<<20 {
		p.add("server.max_header_bytes", "%d is outside 1KiB..1MiB", s.MaxHeaderBytes)
	}
	if s.MaxConnections < 1 {
		p.add("server.max_connections", "must be at least 1")
	}
	if s.MaxConnectionsPerIP < 0 {
		p.add("server.max_connections_per_ip", "must not be negative (0 means no cap)")
	}
	if s.MaxRequestsPerConn < 0 {
		p.add("server.max_requests_per_conn", "must not be negative (0 means no limit)")
	}
	if strings.ContainsAny(s.Name, "\r\n") {
		p.add("server.name", "must not contain line breaks")
	}
	if s.TLS.Enabled() {
		if s.TLS.CertFile == "" || s.TLS.KeyFile == "" {
			p.add("server.tls", "cert_file and key_file must both be set")
		}
		checkFile(p, "server.tls.cert_file", s.TLS.CertFile)
		checkFile(p, "server.tls.key_file", s.TLS.KeyFile)
	}
	if s.Gzip.Level < 1 || s.Gzip.Level > 9 {
		p.add("server.gzip.level", "%d is outside 1..9", s.Gzip.Level)
	}
	for i, t := range s.Gzip.Types {
		if strings.TrimSpace(t) == "" {
			p.add(fmt.Sprintf("server.gzip.types[%d]", i), "empty type")
		}
	}
	for _, k := range sortedKeys(s.SecurityHeaders) {
		if !validToken(k) {
			p.add("server.security_headers."+k, "not a valid header name")
		}
		if strings.ContainsAny(s.SecurityHeaders[k], "\r\n\x00") {
			p.add("server.security_headers."+k, "value contains a line break or NUL")
		}
	}

	if c.Admin.Listen != "" {
		checkAddr(p, "admin.listen", c.Admin.Listen, false)
		if sameAddr(c.Admin.Listen, s.Listen) {
			p.add("admin.listen", "%q is also server.listen; the admin endpoints must not be on the public listener", c.Admin.Listen)
		}
	}

	if c.Plugins.Dir == "" {
		p.add("plugins.dir", "must not be empty")
	}
	if c.Plugins.Engine == "" {
		p.add("plugins.engine", "must not be empty")
	}
	if d := c.Plugins.WatchDebounce.D(); d < 10*time.Millisecond || d > time.Minute {
		p.add("plugins.watch_debounce", "%s is outside 10ms..1m", c.Plugins.WatchDebounce)
	}

	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "warning", "error":
	default:
		p.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		p.add("log.format", "%q is not text or json", c.Log.Format)
	}
	if c.AccessLog.Sample < 0 || c.AccessLog.Sample > 1 {
		p.add("access_log.sample", "%v is outside 0..1", c.AccessLog.Sample)
	}

	prefixes := map[string]int{}
	for i, st := range c.Static {
		key := fmt.Sprintf("static[%d]", i)
		switch {
		case !strings.HasPrefix(st.Prefix, "/") || !strings.HasSuffix(st.Prefix, "/"):
			p.add(key+".prefix", "%q must start and end with /", st.Prefix)
		case st.Prefix == "/":
			p.add(key+".prefix", "\"/\" would hide every plugin route; serve static files under a prefix such as \"/static/\"")
		case strings.Contains(st.Prefix, "//") || strings.ContainsAny(st.Prefix, "{}*?#"):
			p.add(key+".prefix", "%q must be a plain path", st.Prefix)
		}
		if j, dup := prefixes[st.Prefix]; dup {
			p.add(key+".prefix", "%q is also the prefix of static[%d]", st.Prefix, j)
		}
		prefixes[st.Prefix] = i
		if st.Dir == "" {
			p.add(key+".dir", "must be set")
		} else if fi, err := os.Stat(st.Dir); err != nil {
			p.add(key+".dir", "%v", err)
		} else if !fi.IsDir() {
			p.add(key+".dir", "%s is not a directory", st.Dir)
		}
	}

	for _, name := range sortedKeys(c.Databases) {
		db := c.Databases[name]
		key := "databases." + name
		if !ValidName(name) {
			p.add(key, "database name must be lower-case letters, digits, - and _")
		}
		switch db.DriverName() {
		case "sqlite":
			if len(db.Replicas) > 0 {
				p.add(key+".replicas", "replicas are only supported with driver \"mysql\"")
			}
		case "mysql":
		default:
			p.add(key+".driver", "%q is not sqlite or mysql", db.Driver)
		}
		if db.DSN == "" && db.DriverName() == "mysql" {
			p.add(key+".dsn", "must be set for mysql (user:password@tcp(host:port)/dbname)")
		}
		if db.MaxOpenConns < 0 || db.MaxIdleConns < 0 {
			p.add(key, "connection counts must not be negative")
		}
	}

	switch c.Cache.Backend {
	case "memory":
		if c.Cache.MaxBytes == 0 {
			p.add("cache.max_bytes", "must be positive")
		}
	case "redis":
		checkRedis(p, "cache.redis", &c.Cache.Redis)
	default:
		p.add("cache.backend", "%q is not memory or redis", c.Cache.Backend)
	}
	switch c.Queue.Backend {
	case "sqlite":
		if c.Queue.Path == "" {
			p.add("queue.path", "must be set for the sqlite backend")
		}
	case "redis":
		checkRedis(p, "queue.redis", &c.Queue.Redis)
	default:
		p.add("queue.backend", "%q is not sqlite or redis", c.Queue.Backend)
	}

	j := &c.Jobs
	if j.MaxAttempts < 1 {
		p.add("jobs.max_attempts", "must be at least 1")
	}
	if j.BackoffMin <= 0 || j.BackoffMax < j.BackoffMin {
		p.add("jobs.backoff_min", "need 0 < backoff_min <= backoff_max (have %s, %s)", j.BackoffMin, j.BackoffMax)
	}
	if j.Lease < Duration(time.Second) {
		p.add("jobs.lease", "must be at least 1s")
	}
	if j.ClaimWait < Duration(time.Millisecond) || j.ClaimWait > j.Lease {
		p.add("jobs.claim_wait", "must be between 1ms and jobs.lease")
	}
	if j.BackendTimeout < Duration(time.Millisecond) {
		p.add("jobs.backend_timeout", "must be at least 1ms")
	}
	return p.err()
}

func checkRedis(p *problems, key string, r *Redis) {
	switch r.Mode {
	case "", "standalone", "cluster":
	case "sentinel":
		if r.MasterName == "" {
			p.add(key+".master_name", "must be set in sentinel mode")
		}
	default:
		p.add(key+".mode", "%q is not standalone, sentinel or cluster", r.Mode)
	}
	if len(r.Addrs) == 0 {
		p.add(key+".addrs", "must list at least one host:port")
	}
	for i, a := range r.Addrs {
		checkAddr(p, fmt.Sprintf("%s.addrs[%d]", key, i), a, true)
	}
	if r.DB < 0 {
		p.add(key+".db", "must not be negative")
	}
	if r.Mode == "cluster" && r.DB != 0 {
		p.add(key+".db", "cluster mode has only database 0")
	}
	if r.PoolSize < 0 {
		p.add(key+".pool_size", "must not be negative")
	}
}

func checkAddr(p *problems, key, addr string, needHost bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(key, "%q is not host:port (%v)", addr, err)
		return
	}
	if needHost && host == "" {
		p.add(key, "%q has no host", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (needHost && n == 0) {
		p.add(key, "%q has a bad port", addr)
	}
}

// sameAddr reports whether two listen addresses can name the same socket;
// port 0 (any free port) never collides. Ports compare as numbers ("018491"
// is 18491) and hosts as the addresses they stand for ("localhost" is
// 127.0.0.1 and ::1): with reuse_port both listeners would bind, and the
// kernel would hand the admin endpoints some of the public connections.
func sameAddr(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	na, err3 := strconv.ParseUint(pa, 10, 16)
	nb, err4 := strconv.ParseUint(pb, 10, 16)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || na != nb || na == 0 {
		return false
	}
	ipsA, ipsB := hostIPs(ha), hostIPs(hb)
	if ipsA == nil || ipsB == nil { // a wildcard
		return true
	}
	for _, x := range ipsA {
		for _, y := range ipsB {
			if x.Equal(y) {
				return true
			}
		}
	}
	return strings.EqualFold(ha, hb)
}

// hostIPs returns the addresses a listen host binds, nil for a wildcard.
// A name is looked up (the server would resolve it to bind anyway); one
// that does not resolve yields no address.
func hostIPs(h string) []net.IP {
	if ip := net.ParseIP(h); ip != nil {
		if ip.IsUnspecified() {
			return nil
		}
		return []net.IP{ip}
	}
	if h == "" {
		return nil
	}
	if strings.EqualFold(h, "localhost") {
		return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	ips, err := net.LookupIP(h)
	if err != nil || len(ips) == 0 {
		return []net.IP{} // not a wildcard: compared by name only
	}
	return ips
}

func checkFile(p *problems, key, path string) {
	if path == "" {
		return
	}
	if fi, err := os.Stat(path); err != nil {
		p.add(key, "%v", err)
	} else if fi.IsDir() {
		p.add(key, "%s is a directory", path)
	}
}

// validToken reports whether s is an HTTP token (a valid header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// ValidName reports whether s is a valid plugin, database or queue name:
// 1 to 64 bytes of lower-case letters, digits, '-' and '_', starting with
// a letter or digit.
func ValidName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Package classic runs the classic Python deployments the benchmark
// compares wasmcorn with: nginx in front of a Django project served by
// gunicorn (sync workers), gunicorn with gevent workers, or uwsgi, all from
// Debian's packages (`make bench-classic` installs them through
// scripts/deps.sh classic). Everything lives in a directory the caller
// owns and listens on 127.0.0.1 only; nginx serves /static/ itself and
// proxies the rest to the application server over a unix socket.
//
// The Django project (django/benchapp, embedded) implements the endpoints
// of bench/workload with the ORM, django-redis and LocMemCache, and no
// middleware: the most generous configuration for these stacks.
package classic

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/internal/proc"
	"github.com/wasmcorn/wasmcorn/bench/workload"
)

//go:embed django
var djangoFS embed.FS

// Python is Debian's interpreter, the one the python3-* packages serve
// (not a pyenv or virtualenv python3 that may come first on PATH).
const Python = "/usr/bin/python3"

// Stack is one classic deployment.
type Stack string

// The stacks, as in docs and the DESIGN table.
const (
	GunicornSync   Stack = "gunicorn-sync"   // nginx -> gunicorn, 5 sync workers
	GunicornGevent Stack = "gunicorn-gevent" // nginx -> gunicorn, 5 gevent workers
	UWSGI          Stack = "uwsgi"           // nginx -> uwsgi, 4 processes x 2 threads
)

// Stacks lists every stack in report order.
var Stacks = []Stack{GunicornSync, GunicornGevent, UWSGI}

// Describe is a stack's one-line description for reports.
func (s Stack) Describe() string {
	switch s {
	case GunicornSync:
		return "nginx -> gunicorn sync x5"
	case GunicornGevent:
		return "nginx -> gunicorn gevent x5"
	case UWSGI:
		return "nginx -> uwsgi 4 processes x 2 threads"
	}
	return string(s)
}

// ErrMissing is wrapped by Available when a package is not installed.
var ErrMissing = errors.New("classic stack not installed (run make bench-classic)")

// Available checks that nginx, gunicorn, uwsgi with its python3 plugin and
// the Python modules are installed, and returns their versions.
func Available(ctx context.Context) (versions map[string]string, err error) {
	for _, bin := range []string{"/usr/sbin/nginx", "/usr/bin/uwsgi", Python, "/usr/lib/uwsgi/plugins/python3_plugin.so"} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrMissing, bin)
		}
	}
	out, err := exec.CommandContext(ctx, Python, "-c",
		"import django, gunicorn, gevent, MySQLdb, redis, django_redis, sys; "+
			"print(sys.version.split()[0], django.get_version(), gunicorn.__version__, gevent.__version__)").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: python modules: %s", ErrMissing, strings.TrimSpace(string(out)))
	}
	f := strings.Fields(string(out))
	if len(f) != 4 {
		return nil, fmt.Errorf("classic: unexpected version output %q", out)
	}
	v := map[string]string{"python": f[0], "django": f[1], "gunicorn": f[2], "gevent": f[3]}
	if out, err := exec.CommandContext(ctx, "/usr/sbin/nginx", "-v").CombinedOutput(); err == nil {
		v["nginx"] = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: nginx/")
	}
	if out, err := exec.CommandContext(ctx, "/usr/bin/uwsgi", "--version").Output(); err == nil {
		v["uwsgi"] = strings.TrimSpace(string(out))
	}
	return v, nil
}

// Options configures one start of a stack.
type Options struct {
	// Dir holds the project, configs, sockets and logs; created if missing.
	Dir string
	// StaticDir is served by nginx under /static/.
	StaticDir string
	// MySQLPort is the MariaDB on 127.0.0.1 holding database bench.
	MySQLPort int
	// RedisAddr is the Redis host:port.
	RedisAddr string
	// Cache is the backend of /cached: "memory" (LocMemCache, one per
	// worker process) or "redis" (django-redis).
	Cache string
}

// Running is a started stack: nginx and the application server.
type Running struct {
	// URL is the nginx base URL, http://127.0.0.1:PORT.
	URL   string
	procs []*proc.Process
}

// Pids returns the root processes (nginx master, app server master); their
// workers are their descendants.
func (r *Running) Pids() []int {
	var p []int
	for _, pr := range r.procs {
		p = append(p, pr.Pid())
	}
	return p
}

// Stop stops nginx, then the application server.
func (r *Running) Stop() error {
	var errs []error
	for _, p := range r.procs {
		if err := p.Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Start writes the project and configs into opts.Dir and starts the
// application server and nginx, returning once nginx answers /json.
func Start(ctx context.Context, stack Stack, opts Options) (*Running, error) {
	if opts.Cache == "" {
		opts.Cache = "memory"
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	projDir := filepath.Join(opts.Dir, "django")
	if err := writeProject(projDir); err != nil {
		return nil, fmt.Errorf("classic: write django project: %w", err)
	}
	sock := filepath.Join(opts.Dir, "app.sock")
	_ = os.Remove(sock)
	app, err := startApp(stack, opts, projDir, sock)
	if err != nil {
		return nil, err
	}
	r := &Running{procs: []*proc.Process{app}}
	if err := waitSocket(ctx, sock, app); err != nil {
		_ = r.Stop()
		return nil, err
	}
	var lastErr error
	for range 3 { // the probed port may be taken before nginx binds it
		port, err := proc.FreePort()
		if err != nil {
			_ = r.Stop()
			return nil, err
		}
		ngx, err := startNginx(stack, opts, sock, port)
		if err != nil {
			_ = r.Stop()
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if lastErr = proc.WaitTCP(ctx, addr, ngx, 30*time.Second); lastErr == nil {
			r.procs = append([]*proc.Process{ngx}, r.procs...)
			r.URL = "http://" + addr
			return r, nil
		}
		_ = ngx.Stop(5 * time.Second)
	}
	_ = r.Stop()
	return nil, fmt.Errorf("classic %s: nginx: %w", stack, lastErr)
}

func writeProject(dir string) error {
	return fs.WalkDir(djangoFS, "django", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, "django"), "/")
		target := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := djangoFS.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// env is the application server's whole environment: nothing inherited,
// so a pyenv or virtualenv of the caller cannot leak in.
func env(opts Options, projDir string) []string {
	return []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + opts.Dir,
		"LANG=C.UTF-8",
		"PYTHONPATH=" + projDir,
		"PYTHONDONTWRITEBYTECODE=1",
		"DJANGO_SETTINGS_MODULE=benchapp.settings",
		"BENCH_MYSQL_PORT=" + strconv.Itoa(opts.MySQLPort),
		"BENCH_REDIS_ADDR=" + opts.RedisAddr,
		"BENCH_CACHE=" + opts.Cache,
	}
}

func startApp(stack Stack, opts Options, projDir, sock string) (*proc.Process, error) {
	var args []string
	switch stack {
	case GunicornSync, GunicornGevent:
		worker := "sync"
		if stack == GunicornGevent {
			worker = "gevent"
		}
		args = []string{Python, "-m", "gunicorn",
			"--workers", "5",
			"--worker-class", worker,
			"--bind", "unix:" + sock,
			"--chdir", projDir,
			"--backlog", "4096",
			"--timeout", "60",
			"--graceful-timeout", "5",
			"benchapp.wsgi:application",
		}
	case UWSGI:
		args = []string{"/usr/bin/uwsgi",
			"--plugin", "python3",
			"--master",
			"--processes", "4",
			"--threads", "2",
			"--socket", sock,
			"--chmod-socket=666",
			"--listen", "1024",
			"--chdir", projDir,
			"--module", "benchapp.wsgi:application",
			"--disable-logging",
			"--die-on-term",
			"--need-app",
		}
	default:
		return nil, fmt.Errorf("classic: unknown stack %q", stack)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env(opts, projDir)
	cmd.Dir = projDir
	return proc.Start(string(stack), cmd, filepath.Join(opts.Dir, string(stack)+".log"))
}

func dialUnix(sock string) (net.Conn, error) { return net.DialTimeout("unix", sock, time.Second) }

// waitSocket waits for the application server's unix socket to accept.
func waitSocket(ctx context.Context, sock string, p *proc.Process) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := dialUnix(sock); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("classic: %s exited during start-up; log tail:\n%s", p.Name, p.LogTail(25))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("classic: %s not listening on %s after 60s; log tail:\n%s", p.Name, sock, p.LogTail(25))
		}
	}
}

var nginxConf = template.Must(template.New("nginx").Parse(`# generated by bench/classic for {{.Stack}}
{{if .Root}}user root;
{{end}}worker_processes 2;
worker_rlimit_nofile {{.NoFile}};
daemon off;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/nginx-error.log warn;
events {
    worker_connections {{.WorkerConns}};
    multi_accept on;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
    client_body_temp_path {{.Dir}}/nginx-tmp/body;
    proxy_temp_path {{.Dir}}/nginx-tmp/proxy;
    fastcgi_temp_path {{.Dir}}/nginx-tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/nginx-tmp/uwsgi;
    scgi_temp_path {{.Dir}}/nginx-tmp/scgi;
    types {
        application/octet-stream bin;
    }
    default_type application/octet-stream;
    upstream app {
        server unix:{{.Sock}};
    }
    server {
        listen 127.0.0.1:{{.Port}} backlog=4096;
        location /static/ {
            alias {{.Static}}/;
        }
        location / {
{{if .UWSGI}}            uwsgi_pass app;
            uwsgi_param QUERY_STRING $query_string;
            uwsgi_param REQUEST_METHOD $request_method;
            uwsgi_param CONTENT_TYPE $content_type;
            uwsgi_param CONTENT_LENGTH $content_length;
            uwsgi_param REQUEST_URI $request_uri;
            uwsgi_param PATH_INFO $document_uri;
            uwsgi_param DOCUMENT_ROOT $document_root;
            uwsgi_param SERVER_PROTOCOL $server_protocol;
            uwsgi_param REQUEST_SCHEME $scheme;
            uwsgi_param REMOTE_ADDR $remote_addr;
            uwsgi_param REMOTE_PORT $remote_port;
            uwsgi_param SERVER_PORT $server_port;
            uwsgi_param SERVER_NAME $server_name;
{{else}}            proxy_pass http://app;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
{{end}}        }
    }
}
`))

func startNginx(stack Stack, opts Options, sock string, port int) (*proc.Process, error) {
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, "nginx-tmp", d), 0o755); err != nil {
			return nil, err
		}
	}
	var lim syscall.Rlimit
	noFile := 4096
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		noFile = int(min(lim.Max, 1<<20))
	}
	conf := filepath.Join(opts.Dir, "nginx.conf")
	f, err := os.Create(conf)
	if err != nil {
		return nil, err
	}
	err = nginxConf.Execute(f, map[string]any{
		"Stack":  stack,
		"Root":   os.Geteuid() == 0,
		"Dir":    opts.Dir,
		"Sock":   sock,
		"Port":   port,
		"Static": opts.StaticDir,
		"UWSGI":  stack == UWSGI,
		// The most this process may give its children: a c10k run needs a
		// descriptor per client plus one per upstream connection.
		"NoFile":      noFile,
		"WorkerConns": max(1024, noFile-64),
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("classic: write nginx.conf: %w", err)
	}
	// -e: the error log before the config is read (default /var/log/nginx).
	cmd := exec.Command("/usr/sbin/nginx", "-e", filepath.Join(opts.Dir, "nginx-error.log"), "-p", opts.Dir, "-c", conf)
	return proc.Start("nginx", cmd, filepath.Join(opts.Dir, "nginx.log"))
}

// QueueKey is the Redis list the Django project's /queue pushes jobs on.
const QueueKey = "classic:bench"

// WorldCacheEntry is the Redis key and raw value under which the Django
// project's cache (django-redis, KEY_PREFIX "", version 1, JSON serializer)
// finds workload.WorldKey(id).
func WorldCacheEntry(id int) (key, value string) {
	return ":1:" + workload.WorldKey(id), strconv.Quote(workload.WorldValue(id))
}

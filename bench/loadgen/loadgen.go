// Package loadgen is an HTTP/1.1 load generator: a fixed number of
// connections, each driven by one goroutine, sending pre-serialized requests
// and parsing responses with fasthttp's parser, recording latencies in a
// log-linear histogram (see Histogram) and errors by kind.
//
// Two modes:
//   - closed loop (Config.Rate == 0): each connection sends its next request
//     as soon as the previous response arrived; throughput is what the server
//     sustains at that concurrency.
//   - target rate (Config.Rate > 0): requests are scheduled at fixed
//     intervals and latency is measured from the intended send time, not the
//     actual one, so a server stall counts against every request that should
//     have been sent during it (the coordinated-omission correction of wrk2).
//
// Run is the library entry point; bench/cmd/loadgen is the command line.
// The generator is built to stay cheap when it shares the CPU with the
// server under test: requests are serialized once, nothing allocates per
// request, and each connection costs one write and usually one read syscall
// per request.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Header is one request header.
type Header struct {
	Name, Value string
}

// Config describes one load run. The zero value of every field but URL is a
// usable default. A Config must not be changed while Run uses it.
type Config struct {
	// URL is the target, http://host[:port]/path?query. Required; https is
	// not supported.
	URL string
	// Paths, when set, replaces URL's path and query: connections cycle
	// through these request targets ("/db?id=17"), each starting at a
	// different offset. Use it to spread requests over many keys.
	Paths []string
	// Method defaults to GET.
	Method string
	// Headers are added to every request (Host comes from URL).
	Headers []Header
	// Body is sent with every request.
	Body []byte
	// Connections is the number of concurrent connections, each with its own
	// goroutine; default 1.
	Connections int
	// Duration of the measured part of the run. When Requests is also set the
	// run stops at whichever comes first. Default 10s when both are zero.
	Duration time.Duration
	// Requests stops the run after this many measured requests (0: no limit).
	Requests int64
	// Warmup runs the load for this long before measuring; its requests and
	// errors are not counted.
	Warmup time.Duration
	// Rate is the target total request rate per second, spread evenly over
	// the connections; 0 runs a closed loop as fast as the server answers.
	Rate float64
	// Timeout bounds connecting and each request (write plus full response);
	// default 5s.
	Timeout time.Duration
	// DisableKeepAlive sends "Connection: close" and dials a new connection
	// for every request.
	DisableKeepAlive bool
	// Check, when set, judges every response that has a 2xx status: a
	// non-nil error counts the request as a check error. It is called
	// concurrently from every connection's goroutine and must not retain
	// body. When nil, any 2xx response is a success.
	Check func(status int, body []byte) error
	// Progress, when set, receives one status line per ProgressInterval
	// (default 1s).
	Progress         io.Writer
	ProgressInterval time.Duration
	// ReadBufferSize per connection; default 4096. Responses larger than the
	// buffer are still read whole.
	ReadBufferSize int
	// MaxBodyBytes caps a response body; a larger one is an "other" error.
	// Default 64 MiB.
	MaxBodyBytes int
	// Stop, when set, ends the run when it is closed, like reaching
	// Duration (the measured period ends there; not an error).
	Stop <-chan struct{}
	// OnMeasure, when set, is called once when the warm-up ends (before
	// the first request without a warm-up), from Run's goroutine; callers
	// snapshot server-side counters in it. The measured period (requests,
	// Duration, ClientCPU) begins when it returns; the workers keep going
	// meanwhile.
	OnMeasure func()
	// MaxConcurrentDials bounds connection attempts in flight, so that
	// thousands of connections ramp up without overflowing the server's
	// listen backlog; default 512.
	MaxConcurrentDials int
}

// Errors counts failed requests by kind.
type Errors struct {
	// Connect: dialing the target failed (refused, timed out).
	Connect int64 `json:"connect"`
	// Timeout: the response did not arrive within Config.Timeout.
	Timeout int64 `json:"timeout"`
	// Status: a complete response with a status outside 200-299.
	Status int64 `json:"status"`
	// Check: a 2xx response that Config.Check rejected.
	Check int64 `json:"check"`
	// Other: write errors, connections closed or reset mid-request,
	// malformed or oversized responses.
	Other int64 `json:"other"`
}

// Total is the sum of all kinds.
func (e Errors) Total() int64 { return e.Connect + e.Timeout + e.Status + e.Check + e.Other }

func (e *Errors) add(o Errors) {
	e.Connect += o.Connect
	e.Timeout += o.Timeout
	e.Status += o.Status
	e.Check += o.Check
	e.Other += o.Other
}

// Latency summarizes the latencies of every measured request that received a
// complete response (successes, status and check errors). Requests that
// failed before a response (connect, timeout, other) have no latency.
// Percentiles are within RelativeError of exact; Min, Max, Mean are exact.
type Latency struct {
	Min    time.Duration `json:"min_ns"`
	Mean   time.Duration `json:"mean_ns"`
	StdDev time.Duration `json:"stddev_ns"`
	P50    time.Duration `json:"p50_ns"`
	P90    time.Duration `json:"p90_ns"`
	P99    time.Duration `json:"p99_ns"`
	P999   time.Duration `json:"p999_ns"`
	Max    time.Duration `json:"max_ns"`
}

// Result is the outcome of one run. Only the measured period counts (not the
// warm-up, and not requests cut off when the run stopped).
type Result struct {
	URL         string  `json:"url"`
	Connections int     `json:"connections"`
	KeepAlive   bool    `json:"keep_alive"`
	Rate        float64 `json:"rate,omitempty"`
	// Duration is the measured wall time.
	Duration time.Duration `json:"duration_ns"`
	// Requests is every measured request that ended, successful or not.
	Requests  int64  `json:"requests"`
	Successes int64  `json:"successes"`
	Errors    Errors `json:"errors"`
	// ErrorSamples holds the first error message seen for each error kind.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// StatusCodes counts complete responses by status code.
	StatusCodes map[int]int64 `json:"status_codes"`
	// Throughput is successful requests per second of Duration.
	Throughput float64 `json:"throughput"`
	// BytesRead counts response bytes (headers and body).
	BytesRead int64 `json:"bytes_read"`
	// Connects is the number of connections opened while measuring.
	Connects int64   `json:"connects"`
	Latency  Latency `json:"latency"`
	// ClientCPU is the user+system CPU time this process used while
	// measuring (the generator's own cost when the server runs elsewhere),
	// and ClientCPUPerRequest that divided by Requests.
	ClientCPU           time.Duration `json:"client_cpu_ns"`
	ClientCPUPerRequest time.Duration `json:"client_cpu_per_request_ns"`

	hist *Histogram
}

// Histogram returns the merged latency histogram of the run (nil for a zero
// Result). The caller may read it but must not record into it.
func (r *Result) Histogram() *Histogram { return r.hist }

// SuccessRate is Successes/Requests, or 0 without requests.
func (r *Result) SuccessRate() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Successes) / float64(r.Requests)
}

// ErrBadConfig is wrapped by Run's error for an invalid Config.
var ErrBadConfig = errors.New("loadgen: bad config")

// Run drives the target described by cfg and returns the measured result.
// It returns an error only for a bad config or when ctx ends before the run
// does; then the Result holds what was measured so far. Failed requests are
// counted in Result.Errors, not returned.
func Run(ctx context.Context, cfg Config) (Result, error) {
	r, err := newRunner(cfg)
	if err != nil {
		return Result{}, err
	}
	return r.run(ctx)
}

// kinds of per-request outcome, indexes into shard counters.
const (
	outSuccess = iota
	outConnect
	outTimeout
	outStatus
	outCheck
	outOther
	numOutcomes
)

var kindNames = [numOutcomes]string{"", "connect", "timeout", "status", "check", "other"}

// shard holds the statistics of a group of connections. Connections on
// different shards never contend; a few per shard rarely do.
type shard struct {
	mu       sync.Mutex
	hist     *Histogram
	outcomes [numOutcomes]int64
	status   [600]int64
	bytes    int64
	connects int64
	warm     int64 // requests that ended during the warm-up
	samples  [numOutcomes]string
	_        [64]byte // keep neighbouring shards off one cache line
}

type runner struct {
	cfg      Config
	addr     string
	reqs     [][]byte
	interval time.Duration // per connection, rate mode only

	start     time.Time
	measuring atomic.Bool // set when the measured period begins
	// measureEnd is when a timed measured period ends (unix ns; 0 until it
	// begins or without Duration). In rate mode no request is scheduled
	// past it, even if the end timer fires late on a loaded machine.
	measureEnd atomic.Int64
	remaining  atomic.Int64
	stopped    atomic.Bool
	stopCh     chan struct{}
	stopCtx    context.Context
	dialSem    chan struct{}
	dialer     net.Dialer

	shards  []*shard
	workers []*worker
}

func newRunner(cfg Config) (*runner, error) {
	if cfg.Method == "" {
		cfg.Method = fasthttp.MethodGet
	}
	if cfg.Connections <= 0 {
		cfg.Connections = 1
	}
	if cfg.Duration <= 0 && cfg.Requests <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = time.Second
	}
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = 4096
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 20
	}
	if cfg.MaxConcurrentDials <= 0 {
		cfg.MaxConcurrentDials = 512
	}
	if cfg.Rate < 0 || cfg.Warmup < 0 || cfg.Duration < 0 || cfg.Requests < 0 {
		return nil, fmt.Errorf("%w: negative rate, warm-up, duration or request count", ErrBadConfig)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: url %q: %w", ErrBadConfig, cfg.URL, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%w: url %q: want http://host[:port]/path", ErrBadConfig, cfg.URL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	targets := cfg.Paths
	if len(targets) == 0 {
		targets = []string{u.RequestURI()}
	}
	r := &runner{
		cfg:     cfg,
		addr:    addr,
		stopCh:  make(chan struct{}),
		dialSem: make(chan struct{}, cfg.MaxConcurrentDials),
		dialer:  net.Dialer{Timeout: cfg.Timeout},
	}
	for _, p := range targets {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("%w: path %q must start with /", ErrBadConfig, p)
		}
		b, err := serialize(&cfg, u.Host, p)
		if err != nil {
			return nil, fmt.Errorf("%w: request %s %s: %w", ErrBadConfig, cfg.Method, p, err)
		}
		r.reqs = append(r.reqs, b)
	}
	if cfg.Rate > 0 {
		r.interval = time.Duration(float64(cfg.Connections) / cfg.Rate * float64(time.Second))
		if r.interval <= 0 {
			r.interval = 1
		}
	}
	nshards := min(cfg.Connections, 64)
	for range nshards {
		r.shards = append(r.shards, &shard{hist: NewHistogram()})
	}
	return r, nil
}

// serialize renders one request once; connections write these bytes as is.
func serialize(cfg *Config, host, target string) ([]byte, error) {
	var req fasthttp.Request
	req.Header.DisableNormalizing()
	req.SetRequestURI("http://" + host + target)
	req.Header.SetMethod(cfg.Method)
	for _, h := range cfg.Headers {
		req.Header.Add(h.Name, h.Value)
	}
	if len(cfg.Body) > 0 {
		req.SetBody(cfg.Body)
	}
	if cfg.DisableKeepAlive {
		req.SetConnectionClose()
	}
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := req.Write(bw); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (r *runner) run(ctx context.Context) (Result, error) {
	cfg := &r.cfg
	stopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.stopCtx = stopCtx
	r.start = time.Now()
	if cfg.Requests > 0 {
		r.remaining.Store(cfg.Requests)
	} else {
		r.remaining.Store(1 << 62)
	}

	// The measured period starts when this goroutine says so (after
	// OnMeasure), not at a precomputed instant: on an overloaded machine it
	// may run late, and requests, CPU time and the caller's snapshots must
	// all cover the same window.
	var cpuStart time.Duration
	var measureAt time.Time
	var endC <-chan time.Time
	var endTimer *time.Timer
	beginMeasure := func() {
		if cfg.OnMeasure != nil {
			cfg.OnMeasure()
		}
		cpuStart = processCPU()
		measureAt = time.Now()
		if cfg.Warmup == 0 {
			// No warm-up: the schedule starts with the measured window
			// (workers are not running yet, so they read the new start).
			r.start = measureAt
		}
		if cfg.Duration > 0 {
			r.measureEnd.Store(measureAt.Add(cfg.Duration).UnixNano())
		}
		r.measuring.Store(true)
		if cfg.Duration > 0 {
			endTimer = time.NewTimer(cfg.Duration)
			endC = endTimer.C
		}
	}
	defer func() {
		if endTimer != nil {
			endTimer.Stop()
		}
	}()
	if cfg.Warmup == 0 {
		beginMeasure()
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	for i := range cfg.Connections {
		w := &worker{
			r:     r,
			id:    i,
			shard: r.shards[i%len(r.shards)],
			next:  (i * 7919) % len(r.reqs),
		}
		r.workers = append(r.workers, w)
	}
	for _, w := range r.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop()
		}()
	}
	go func() {
		wg.Wait()
		close(done)
	}()

	var progress <-chan time.Time
	if cfg.Progress != nil {
		t := time.NewTicker(cfg.ProgressInterval)
		defer t.Stop()
		progress = t.C
	}
	var measureC <-chan time.Time
	if !r.measuring.Load() {
		measureTimer := time.NewTimer(cfg.Warmup)
		defer measureTimer.Stop()
		measureC = measureTimer.C
	}

	var runErr error
	var lastDone int64
	lastTick := r.start
loop:
	for {
		select {
		case <-measureC:
			beginMeasure()
		case <-endC:
			break loop
		case <-cfg.Stop:
			break loop
		case <-done:
			break loop
		case <-ctx.Done():
			runErr = fmt.Errorf("loadgen: run of %s interrupted: %w", cfg.URL, ctx.Err())
			break loop
		case now := <-progress:
			lastDone = r.printProgress(now, lastTick, lastDone)
			lastTick = now
		}
	}
	stopAt := time.Now()
	if !r.measuring.Load() { // ended during warm-up
		cpuStart, measureAt = processCPU(), stopAt
	}
	cpu := processCPU() - cpuStart
	r.stop()
	<-done

	res := r.collect()
	res.Duration = stopAt.Sub(measureAt)
	if res.Duration > 0 {
		res.Throughput = float64(res.Successes) / res.Duration.Seconds()
	}
	res.ClientCPU = cpu
	if res.Requests > 0 {
		res.ClientCPUPerRequest = cpu / time.Duration(res.Requests)
	}
	return res, runErr
}

// stop makes every worker return: the flag ends loops, the channel ends
// sleeps, and an expired deadline ends blocked reads and writes.
func (r *runner) stop() {
	r.stopped.Store(true)
	close(r.stopCh)
	past := time.Unix(1, 0)
	for _, w := range r.workers {
		w.mu.Lock()
		if w.conn != nil {
			_ = w.conn.SetDeadline(past)
		}
		w.mu.Unlock()
	}
}

// snapshot sums the shards' counters: requests ended (warm-up included) and
// measured errors.
func (r *runner) snapshot() (done, errs int64) {
	for _, s := range r.shards {
		s.mu.Lock()
		done += s.warm
		for k, n := range s.outcomes {
			done += n
			if k != outSuccess {
				errs += n
			}
		}
		s.mu.Unlock()
	}
	return done, errs
}

func (r *runner) printProgress(now, last time.Time, lastDone int64) int64 {
	done, errs := r.snapshot()
	phase := "run"
	if !r.measuring.Load() {
		phase = "warm-up"
	}
	rate := float64(done-lastDone) / now.Sub(last).Seconds()
	fmt.Fprintf(r.cfg.Progress, "loadgen %s %6.1fs %-7s %9.0f req/s  %10d done  %8d errors\n",
		r.cfg.URL, now.Sub(r.start).Seconds(), phase, rate, done, errs)
	return done
}

func (r *runner) collect() Result {
	cfg := &r.cfg
	res := Result{
		URL:         cfg.URL,
		Connections: cfg.Connections,
		KeepAlive:   !cfg.DisableKeepAlive,
		Rate:        cfg.Rate,
		StatusCodes: map[int]int64{},
		hist:        NewHistogram(),
	}
	for _, s := range r.shards {
		s.mu.Lock()
		res.hist.Merge(s.hist)
		res.Successes += s.outcomes[outSuccess]
		e := Errors{
			Connect: s.outcomes[outConnect],
			Timeout: s.outcomes[outTimeout],
			Status:  s.outcomes[outStatus],
			Check:   s.outcomes[outCheck],
			Other:   s.outcomes[outOther],
		}
		res.Errors.add(e)
		for code, n := range s.status {
			if n > 0 {
				res.StatusCodes[code] += n
			}
		}
		res.BytesRead += s.bytes
		res.Connects += s.connects
		for k, msg := range s.samples {
			if msg == "" {
				continue
			}
			if res.ErrorSamples == nil {
				res.ErrorSamples = map[string]string{}
			}
			if _, ok := res.ErrorSamples[kindNames[k]]; !ok {
				res.ErrorSamples[kindNames[k]] = msg
			}
		}
		s.mu.Unlock()
	}
	res.Requests = res.Successes + res.Errors.Total()
	h := res.hist
	res.Latency = Latency{
		Min:    h.Min(),
		Mean:   h.Mean(),
		StdDev: h.StdDev(),
		P50:    h.Percentile(50),
		P90:    h.Percentile(90),
		P99:    h.Percentile(99),
		P999:   h.Percentile(99.9),
		Max:    h.Max(),
	}
	return res
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// worker drives one connection.
type worker struct {
	r     *runner
	id    int
	shard *shard
	next  int

	mu   sync.Mutex // guards conn against runner.stop
	conn net.Conn
	cr   countingReader // reads conn, counts bytes
	br   *bufio.Reader  // reads cr
	resp fasthttp.Response
}

func (w *worker) loop() {
	r := w.r
	cfg := &r.cfg
	w.br = bufio.NewReaderSize(&w.cr, cfg.ReadBufferSize)
	defer w.closeConn()

	var intended time.Time
	if r.interval > 0 {
		// Stagger the connections evenly over one interval.
		intended = r.start.Add(r.interval * time.Duration(w.id) / time.Duration(cfg.Connections))
	}
	for !r.stopped.Load() {
		var now time.Time
		if r.interval > 0 {
			if d := time.Until(intended); d > 0 {
				if !w.sleep(d) {
					return
				}
			}
			now = intended
			intended = intended.Add(r.interval)
			if end := r.measureEnd.Load(); end != 0 && now.UnixNano() > end {
				return // the schedule ends with the measured window
			}
		} else {
			now = time.Now()
		}
		measured := r.measuring.Load()
		if measured && r.remaining.Add(-1) < 0 {
			return
		}
		out, status, n, latency, err := w.do(now, measured)
		if r.stopped.Load() && out != outSuccess {
			return // cut off by the end of the run; not the server's fault
		}
		// A timed window counts what completes inside it: a request sent
		// during the warm-up that ends after the window began is the
		// window's (otherwise every connection loses one request per run,
		// and throughput reads low by Connections/Duration). A request
		// count is of requests sent in the window.
		if !measured && cfg.Requests <= 0 && r.measuring.Load() {
			measured = true
		}
		w.record(measured, out, status, n, latency, err)
		if out == outConnect && !w.sleep(10*time.Millisecond) {
			return
		}
	}
}

// sleep waits d or until the run stops, and reports whether to go on.
func (w *worker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.r.stopCh:
		return false
	}
}

func (w *worker) record(measured bool, out, status int, n int64, latency time.Duration, err error) {
	s := w.shard
	s.mu.Lock()
	if !measured {
		s.warm++
		s.mu.Unlock()
		return
	}
	s.outcomes[out]++
	if status > 0 && status < len(s.status) {
		s.status[status]++
	}
	s.bytes += n
	if status > 0 {
		s.hist.Record(latency)
	}
	if err != nil && s.samples[out] == "" {
		s.samples[out] = err.Error()
	}
	s.mu.Unlock()
}

// do sends one request and reads its response. start is when the request
// was (or should have been) sent; the latency is measured from it.
func (w *worker) do(start time.Time, measured bool) (out, status int, n int64, latency time.Duration, err error) {
	r := w.r
	cfg := &r.cfg
	if w.conn == nil {
		if err := w.dial(); err != nil {
			return outConnect, 0, 0, 0, err
		}
		if measured {
			w.shard.mu.Lock()
			w.shard.connects++
			w.shard.mu.Unlock()
		}
	}
	conn := w.conn
	req := r.reqs[w.next]
	if w.next++; w.next == len(r.reqs) {
		w.next = 0
	}
	deadline := start
	if r.interval > 0 { // start may be long past when behind schedule
		deadline = time.Now()
	}
	if err := conn.SetDeadline(deadline.Add(cfg.Timeout)); err != nil {
		w.closeConn()
		return outOther, 0, 0, 0, err
	}
	if _, err := conn.Write(req); err != nil {
		w.closeConn()
		return classify(err), 0, 0, 0, fmt.Errorf("write: %w", err)
	}
	w.resp.Reset()
	consumed := w.cr.n - int64(w.br.Buffered())
	err = w.resp.ReadLimitBody(w.br, cfg.MaxBodyBytes)
	end := time.Now()
	n = w.cr.n - int64(w.br.Buffered()) - consumed
	if err != nil {
		w.closeConn()
		return classify(err), 0, n, 0, fmt.Errorf("read: %w", err)
	}
	status = w.resp.StatusCode()
	latency = end.Sub(start)
	if cfg.DisableKeepAlive || w.resp.ConnectionClose() {
		w.closeConn()
	}
	if status < 200 || status > 299 {
		return outStatus, status, n, latency, statusError(status, w.resp.Body())
	}
	if cfg.Check != nil {
		if err := cfg.Check(status, w.resp.Body()); err != nil {
			return outCheck, status, n, latency, err
		}
	}
	return outSuccess, status, n, latency, nil
}

func (w *worker) dial() error {
	r := w.r
	select {
	case r.dialSem <- struct{}{}:
	case <-r.stopCh:
		return errStopped
	}
	conn, err := r.dialer.DialContext(r.stopCtx, "tcp", r.addr)
	<-r.dialSem
	if err != nil {
		return fmt.Errorf("dial %s: %w", r.addr, err)
	}
	w.mu.Lock()
	w.conn = conn
	w.cr.Reader = conn
	w.br.Reset(&w.cr)
	stopped := r.stopped.Load()
	w.mu.Unlock()
	if stopped {
		return errStopped
	}
	return nil
}

var errStopped = errors.New("run stopped")

// statusError describes a non-2xx response with the start of its body.
func statusError(status int, body []byte) error {
	body = bytes.TrimSpace(body)
	if len(body) > 120 {
		body = body[:120]
	}
	if len(body) == 0 {
		return fmt.Errorf("status %d", status)
	}
	return fmt.Errorf("status %d: %q", status, body)
}

func (w *worker) closeConn() {
	w.mu.Lock()
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn = nil
	}
	w.mu.Unlock()
}

// classify maps a transport error to an outcome kind.
func classify(err error) int {
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return outTimeout
	}
	return outOther
}

// countingReader counts bytes read from the connection.
type countingReader struct {
	io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.n += int64(n)
	return n, err
}

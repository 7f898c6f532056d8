package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wasmcorn/wasmcorn/host/jobs"
)

// Admin endpoints of the job queues (served on the admin listener, which
// has no authentication and must stay local):
//
//	GET  /admin/jobs                          the consumed queues' stats
//	GET  /admin/jobs/dead?queue=Q[&n=N]       Q's newest dead letters (default 50)
//	POST /admin/jobs/requeue?queue=Q&id=ID... run dead letters again (all=1: every one)
//	POST /admin/jobs/purge?queue=Q&id=ID...   delete dead letters (all=1: every one)
//
// `wasmcorn jobs` is their command-line client.
const (
	adminJobsPath    = "/admin/jobs"
	adminDeadPath    = "/admin/jobs/dead"
	adminRequeuePath = "/admin/jobs/requeue"
	adminPurgePath   = "/admin/jobs/purge"

	defaultDeadList = 50
	maxDeadList     = 1000
)

// adminRoutes returns the job queues' admin endpoints.
func (s *services) adminRoutes() map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{
		adminJobsPath:    s.serveJobStats,
		adminDeadPath:    s.serveDeadLetters,
		adminRequeuePath: func(ctx *fasthttp.RequestCtx) { s.serveManageDead(ctx, "requeued") },
		adminPurgePath:   func(ctx *fasthttp.RequestCtx) { s.serveManageDead(ctx, "purged") },
	}
}

func adminJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		ctx.Error("encode: "+err.Error()+"\n", fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

func adminError(ctx *fasthttp.RequestCtx, status int, msg string) {
	adminJSON(ctx, status, map[string]string{"error": msg})
}

func allowMethod(ctx *fasthttp.RequestCtx, method string) bool {
	if string(ctx.Method()) == method || (method == fasthttp.MethodGet && ctx.IsHead()) {
		return true
	}
	ctx.Response.Header.Set("Allow", method)
	adminError(ctx, fasthttp.StatusMethodNotAllowed, "use "+method)
	return false
}

func (s *services) serveJobStats(ctx *fasthttp.RequestCtx) {
	if !allowMethod(ctx, fasthttp.MethodGet) {
		return
	}
	if s.runner == nil {
		adminError(ctx, fasthttp.StatusNotFound, "no job runner: no [queue] backend, or [jobs] enabled = false")
		return
	}
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adminJSON(ctx, fasthttp.StatusOK, map[string]any{"queues": s.runner.Stats(c)})
}

// deadQueue returns the dead-letter manager and the validated queue of a
// request, or answers the error itself.
func (s *services) deadQueue(ctx *fasthttp.RequestCtx) (jobs.DeadLetterManager, string, bool) {
	dm, ok := s.queue.(jobs.DeadLetterManager)
	if !ok {
		adminError(ctx, fasthttp.StatusNotFound, "no queue backend that manages dead letters is configured")
		return nil, "", false
	}
	queue := string(ctx.QueryArgs().Peek("queue"))
	if err := jobs.CheckQueueName(queue); err != nil {
		adminError(ctx, fasthttp.StatusBadRequest, "queue parameter: "+err.Error())
		return nil, "", false
	}
	return dm, queue, true
}

func (s *services) serveDeadLetters(ctx *fasthttp.RequestCtx) {
	if !allowMethod(ctx, fasthttp.MethodGet) {
		return
	}
	dm, queue, ok := s.deadQueue(ctx)
	if !ok {
		return
	}
	n := defaultDeadList
	if v := ctx.QueryArgs().Peek("n"); len(v) > 0 {
		var err error
		if n, err = strconv.Atoi(string(v)); err != nil || n < 1 || n > maxDeadList {
			adminError(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("n must be 1..%d", maxDeadList))
			return
		}
	}
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dl, err := dm.DeadLetters(c, queue, n)
	if err != nil {
		adminError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return
	}
	if dl == nil {
		dl = []jobs.DeadLetter{}
	}
	adminJSON(ctx, fasthttp.StatusOK, map[string]any{"queue": queue, "dead": dl})
}

// serveManageDead requeues or purges dead letters: those named by id
// parameters, or all of the queue's with all=1 (one of the two is required,
// so a bare request never empties a queue).
func (s *services) serveManageDead(ctx *fasthttp.RequestCtx, verb string) {
	if !allowMethod(ctx, fasthttp.MethodPost) {
		return
	}
	dm, queue, ok := s.deadQueue(ctx)
	if !ok {
		return
	}
	var ids []string
	for _, v := range ctx.QueryArgs().PeekMulti("id") {
		if len(v) > 0 {
			ids = append(ids, string(v))
		}
	}
	all := string(ctx.QueryArgs().Peek("all"))
	switch {
	case all != "" && all != "1" && all != "true":
		adminError(ctx, fasthttp.StatusBadRequest, "all must be 1 or true")
		return
	case all != "" && len(ids) > 0:
		adminError(ctx, fasthttp.StatusBadRequest, "give id parameters or all=1, not both")
		return
	case all == "" && len(ids) == 0:
		adminError(ctx, fasthttp.StatusBadRequest, "name the dead letters with id=JOB_ID (repeatable), or all=1 for every one")
		return
	}
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var n int
	var err error
	if verb == "requeued" {
		n, err = dm.RequeueDead(c, queue, ids)
	} else {
		n, err = dm.PurgeDead(c, queue, ids)
	}
	if err != nil {
		adminError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return
	}
	s.log.Info("dead letters "+verb, "queue", queue, "count", n, "ids", len(ids), "all", all != "")
	adminJSON(ctx, fasthttp.StatusOK, map[string]any{"queue": queue, verb: n})
}

// jobsCmd is `wasmcorn jobs`: a client of the admin endpoints above.
func (e *Env) jobsCmd(ctx context.Context, args []string) error {
	const usage = "[-config file] [-admin addr] [stats | dead QUEUE [-n N] | requeue QUEUE (-all | ID...) | purge QUEUE (-all | ID...)]"
	fs := e.flagSet("jobs", usage)
	cf := configFlags{fs: fs}
	fs.StringVar(&cf.file, "config", "", "config `file` whose admin.listen is used (default $WASMCORN_CONFIG, else ./"+DefaultConfigFile+" when present)")
	admin := fs.String("admin", "", "admin `address` host:port of the running server (default: admin.listen of the config)")
	if err := parse(fs, args); err != nil {
		return err
	}
	addr := *admin
	if addr == "" {
		cfg, _, err := e.loadConfig(&cf)
		if err != nil {
			return err
		}
		addr = cfg.Admin.Listen
		if addr == "" {
			return fmt.Errorf("%w: the admin listener is disabled (admin.listen is empty); give -admin", ErrUsage)
		}
	}
	rest := fs.Args()
	cmd := "stats"
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	c := &adminClient{base: "http://" + addr}
	switch cmd {
	case "stats":
		if len(rest) > 0 {
			return fmt.Errorf("%w: jobs stats takes no arguments", ErrUsage)
		}
		return e.jobStats(ctx, c)
	case "dead":
		sub := e.flagSet("jobs dead", "QUEUE [-n N]")
		n := sub.Int("n", defaultDeadList, "how many of the newest dead letters to list (1.."+strconv.Itoa(maxDeadList)+")")
		pos, err := parseInterleaved(sub, rest)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			sub.Usage()
			return fmt.Errorf("%w: jobs dead takes one queue (got %q)", ErrUsage, pos)
		}
		return e.deadLetters(ctx, c, pos[0], *n)
	case "requeue", "purge":
		sub := e.flagSet("jobs "+cmd, "QUEUE (-all | ID...)")
		all := sub.Bool("all", false, "every dead letter of the queue")
		pos, err := parseInterleaved(sub, rest)
		if err != nil {
			return err
		}
		if len(pos) == 0 || *all == (len(pos) > 1) {
			sub.Usage()
			return fmt.Errorf("%w: jobs %s: give a queue, then job ids or -all (not both)", ErrUsage, cmd)
		}
		q := url.Values{"queue": {pos[0]}}
		if *all {
			q.Set("all", "1")
		} else {
			q["id"] = pos[1:]
		}
		verb := cmd + "d"
		var res map[string]any
		if err := c.do(ctx, http.MethodPost, "/admin/jobs/"+cmd+"?"+q.Encode(), &res); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "%s: %v dead letter(s) %s\n", pos[0], res[verb], verb)
		return nil
	}
	fs.Usage()
	return fmt.Errorf("%w: unknown jobs command %q (want stats, dead, requeue or purge)", ErrUsage, cmd)
}

func (e *Env) jobStats(ctx context.Context, c *adminClient) error {
	var res struct {
		Queues []jobs.QueueStats `json:"queues"`
	}
	if err := c.do(ctx, http.MethodGet, adminJobsPath, &res); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "QUEUE\tREADY\tDELAYED\tIN FLIGHT\tRETRYING\tDEAD\tCOMPLETED\tRUNNING\tCONCURRENCY\t")
	for _, q := range res.Queues {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t", q.Queue, q.Ready, q.Delayed, q.InFlight,
			q.Retrying, q.Dead, q.Completed, q.Running, q.Concurrency)
		if q.Error != "" {
			fmt.Fprintf(tw, "error: %s", q.Error)
		}
		fmt.Fprintln(tw)
	}
	if len(res.Queues) == 0 {
		fmt.Fprintln(tw, "(no queue consumed)")
	}
	return tw.Flush()
}

func (e *Env) deadLetters(ctx context.Context, c *adminClient, queue string, n int) error {
	var res struct {
		Dead []jobs.DeadLetter `json:"dead"`
	}
	q := url.Values{"queue": {queue}, "n": {strconv.Itoa(n)}}
	if err := c.do(ctx, http.MethodGet, adminDeadPath+"?"+q.Encode(), &res); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB ID\tATTEMPTS\tDEAD SINCE\tREASON\tPAYLOAD")
	for _, d := range res.Dead {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", d.Job.ID, d.Job.Attempt, d.At.UTC().Format(time.RFC3339),
			oneLine(d.Reason, 80), oneLine(string(d.Job.Payload), 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%d dead letter(s) of queue %s shown\n", len(res.Dead), queue)
	return nil
}

// oneLine quotes s when it holds control characters and cuts it to max
// runes.
func oneLine(s string, max int) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		s = strconv.Quote(s)
	}
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

// adminClient calls the admin endpoints of a running server.
type adminClient struct {
	base string
}

func (c *adminClient) do(ctx context.Context, method, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin endpoint (is the server running, with this admin address?): %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s", method, path, e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

package host

import (
	"context"
	"log/slog"

	"github.com/wasmcorn/wasmcorn/abi"
)

// Grants is what a plugin's manifest allows it to reach. The zero value
// grants nothing: no database, no queue, no config keys; the cache is always
// available but confined to the plugin's namespace.
type Grants struct {
	// Databases names the configured databases the plugin may use.
	Databases []string
	// CacheNamespace prefixes every cache and lock key; defaults to the
	// plugin name, so two plugins' keys never collide.
	CacheNamespace string
	// Queues the plugin may submit to.
	Queues []string
	// Config is returned by config.get.
	Config map[string]string
}

// HasDatabase reports whether name is granted.
func (g *Grants) HasDatabase(name string) bool { return contains(g.Databases, name) }

// HasQueue reports whether name is granted.
func (g *Grants) HasQueue(name string) bool { return contains(g.Queues, name) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Call is the host-side state of one call into a guest: one HTTP request or
// one job. Host operations receive it. It is owned by the goroutine running
// the call and reset between calls; nothing in it outlives the call except
// what a cleanup hands back (a transaction is rolled back, a statement
// closed). The zero value is not usable; the pool prepares one per instance.
type Call struct {
	// Ctx carries the call's deadline; backends must honour it.
	Ctx context.Context
	// Plugin is the plugin's name, for errors and logs.
	Plugin string
	// Grants is the plugin's manifest grants.
	Grants *Grants
	// Services are the backends this process was configured with.
	Services *Services
	// Log is the plugin's logger (plugin=name attribute set).
	Log *slog.Logger
	// reqID is the HTTP request id, or the job id for a job; it aliases
	// the call's message and is turned into a string only when used.
	reqID []byte

	args     abi.Values // the current op's arguments (see dispatch)
	handles  map[int64]Handle
	nextID   int64
	cleanups []func()
}

// RequestID returns the HTTP request id of the call, or the job id of a job.
func (c *Call) RequestID() string { return string(c.reqID) }

// Handle is a per-call resource a guest refers to by number (an open
// transaction, a prepared statement). Release is called when the guest
// closes it or, at the latest, when the call ends.
type Handle interface {
	Release()
}

// AddHandle registers h and returns the number the guest will use for it.
// Numbers are never reused on the same Call (one per instance): a handle a
// guest kept from an earlier call, e.g. a leaked transaction rolled back
// late by database/sql, can never name a handle of a later call.
func (c *Call) AddHandle(h Handle) int64 {
	if c.handles == nil {
		c.handles = make(map[int64]Handle)
	}
	c.nextID++
	c.handles[c.nextID] = h
	return c.nextID
}

// LookupHandle returns the handle numbered id, or nil.
func (c *Call) LookupHandle(id int64) Handle { return c.handles[id] }

// DropHandle forgets id without releasing it (the op already did).
func (c *Call) DropHandle(id int64) { delete(c.handles, id) }

// OnEnd registers f to run when the call ends, after open handles are
// released, in reverse order of registration.
func (c *Call) OnEnd(f func()) { c.cleanups = append(c.cleanups, f) }

// End releases every open handle (rolling back transactions the guest did
// not commit) and runs OnEnd functions. The pool calls it after each call.
func (c *Call) End() {
	for id, h := range c.handles {
		h.Release()
		delete(c.handles, id)
	}
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
	c.cleanups = c.cleanups[:0]
	c.Ctx = nil
	c.reqID = nil
}

// OpFunc implements one host operation. args reads the guest's argument
// values; the function appends a complete reply (abi.AppendReplyOK plus
// values, or abi.AppendReplyError) to reply and returns it.
type OpFunc func(c *Call, args *abi.Values, reply []byte) []byte

var ops [256]OpFunc

// registerOp installs fn for op. Every op is registered from an init
// function in this package (one file per capability: ops_*.go), so the
// complete set is visible in one place: the ops variable.
func registerOp(op abi.Op, fn OpFunc) {
	if op >= abi.Op(len(ops)) || ops[op] != nil {
		panic("host: bad or duplicate op registration: " + op.String())
	}
	ops[op] = fn
}

// dispatch runs op for the call and returns the reply.
func dispatch(c *Call, op uint32, in []byte, reply []byte) []byte {
	reply = reply[:0]
	if op >= uint32(len(ops)) || ops[op] == nil {
		return abi.AppendReplyError(reply, abi.ErrUnknownOp, "this host does not implement "+abi.Op(op).String())
	}
	// The argument reader lives in the Call: a local would escape through
	// the indirect call and cost an allocation per host call.
	c.args = abi.NewValues(in)
	return ops[op](c, &c.args, reply)
}

// Services are the backends host operations use. A nil field means the
// capability is not configured; its ops reply ErrUnavailable.
type Services struct {
	SQL    SQL
	Cache  Cache
	Locker Locker
	Queue  Queue
}

package router

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrConflict is wrapped by Builder.Add when two routes would answer the
// same request.
var ErrConflict = errors.New("route conflict")

// Route is one entry of a table.
type Route[T any] struct {
	// Owner names who declared the route (a plugin), for conflict errors.
	Owner string
	// Host restricts the route to one Host header (case-insensitive, port
	// ignored); "" matches any host.
	Host string
	// Methods the route answers; 0 or AllMethods means every method.
	Methods MethodSet
	// Pattern is the path pattern.
	Pattern Pattern
	// Value is returned by Lookup.
	Value T
}

func (r *Route[T]) describe() string {
	host := ""
	if r.Host != "" {
		host = " host " + r.Host
	}
	return fmt.Sprintf("%s %s%s (%s)", r.Methods.String(), r.Pattern.raw, host, r.Owner)
}

// Builder accumulates routes for a Table. The zero value is ready to use.
// It is not safe for concurrent use.
type Builder[T any] struct {
	routes []*Route[T]
}

// Add adds a route. It fails, wrapping ErrConflict and naming both
// owners, when an earlier route has the same host, the same pattern shape
// and a method in common.
func (b *Builder[T]) Add(r Route[T]) error {
	if r.Methods == 0 {
		r.Methods = AllMethods
	}
	r.Host = normalizeHost(r.Host)
	if r.Pattern.raw == "" {
		return fmt.Errorf("%w: route of %s has no pattern", ErrPattern, r.Owner)
	}
	shape := r.Pattern.shape()
	for _, o := range b.routes {
		if o.Host == r.Host && o.Methods&r.Methods != 0 && o.Pattern.shape() == shape {
			return fmt.Errorf("%w: %s and %s both answer %s %s", ErrConflict,
				o.describe(), r.describe(), (o.Methods & r.Methods).String(), shape)
		}
	}
	b.routes = append(b.routes, &r)
	return nil
}

// AddAll adds every route of rs or, when any of them conflicts with an
// earlier route or with another of rs, none of them.
func (b *Builder[T]) AddAll(rs []Route[T]) error {
	n := len(b.routes)
	for _, r := range rs {
		if err := b.Add(r); err != nil {
			clear(b.routes[n:])
			b.routes = b.routes[:n]
			return err
		}
	}
	return nil
}

// Routes returns the routes added so far, in order.
func (b *Builder[T]) Routes() []Route[T] {
	out := make([]Route[T], len(b.routes))
	for i, r := range b.routes {
		out[i] = *r
	}
	return out
}

// Build returns an immutable table of the routes added so far. The
// builder may be reused afterwards; the table does not share state with it.
func (b *Builder[T]) Build() *Table[T] {
	t := &Table[T]{any: &node[T]{}, routes: make([]Route[T], 0, len(b.routes))}
	for _, r := range b.routes {
		rc := new(Route[T])
		*rc = *r
		t.routes = append(t.routes, *rc)
		root := t.any
		if rc.Host != "" {
			if t.hosts == nil {
				t.hosts = make(map[string]*node[T])
			}
			if t.hosts[rc.Host] == nil {
				t.hosts[rc.Host] = &node[T]{}
			}
			root = t.hosts[rc.Host]
		}
		root.insert(rc)
	}
	return t
}

// Table is an immutable route table, safe for concurrent Lookup.
type Table[T any] struct {
	hosts  map[string]*node[T] // routes with a Host, by lower-case host
	any    *node[T]            // routes for any host
	routes []Route[T]
}

// Routes returns the table's routes in the order they were added.
func (t *Table[T]) Routes() []Route[T] { return t.routes }

// Len is the number of routes.
func (t *Table[T]) Len() int { return len(t.routes) }

// Params holds the parameters captured by one Lookup. Reuse one per
// request (it is a fixed-size array, never allocated by Lookup). Values
// alias the path passed to Lookup.
type Params struct {
	names []string
	vals  [MaxParams][]byte
	n     int
}

// Len is the number of captured parameters.
func (p *Params) Len() int { return p.n }

// Name returns the i-th parameter's name.
func (p *Params) Name(i int) string { return p.names[i] }

// Value returns the i-th parameter's value (still percent-decoded exactly
// as the path given to Lookup was).
func (p *Params) Value(i int) []byte { return p.vals[i] }

// Get returns the value of the parameter called name, or nil.
func (p *Params) Get(name string) []byte {
	for i := 0; i < p.n; i++ {
		if p.names[i] == name {
			return p.vals[i]
		}
	}
	return nil
}

// Reset empties p.
func (p *Params) Reset() {
	for i := 0; i < p.n; i++ {
		p.vals[i] = nil
	}
	p.n = 0
	p.names = nil
}

// Lookup finds the route for a request. host is the Host header (any case,
// port allowed), method the request method, path the decoded,
// normalized path. On a match it returns the route's value, ok = true and
// the parameters in p. Otherwise, allow is non-zero when the path matched
// routes that do not answer method (a 405, with these methods in Allow),
// and zero for a 404. Routes for a specific host are tried before routes
// for any host. Lookup does not allocate.
func (t *Table[T]) Lookup(host, method, path []byte, p *Params) (v T, ok bool, allow MethodSet) {
	p.Reset()
	m := MethodOf(method)
	if len(path) == 0 || path[0] != '/' {
		return v, false, 0
	}
	if len(t.hosts) > 0 {
		var buf [256]byte
		if h, fits := lowerHost(buf[:0], host); fits {
			if root := t.hosts[string(h)]; root != nil {
				if r := root.match(path[1:], m, p, &allow); r != nil {
					p.names = r.Pattern.params
					return r.Value, true, 0
				}
			}
		}
	}
	if r := t.any.match(path[1:], m, p, &allow); r != nil {
		p.names = r.Pattern.params
		return r.Value, true, 0
	}
	if allow&GET != 0 {
		allow |= HEAD
	}
	return v, false, allow
}

// lowerHost appends host without its port, lower-cased, to dst; fits is
// false when it does not fit dst's capacity (such a host matches nothing).
func lowerHost(dst, host []byte) ([]byte, bool) {
	if i := hostPortIndex(host); i >= 0 {
		host = host[:i]
	}
	if len(host) > cap(dst) {
		return dst, false
	}
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}

// hostPortIndex returns the index of the ':' before a port, or -1;
// bracketed IPv6 literals keep their inner colons.
func hostPortIndex(h []byte) int {
	for i := len(h) - 1; i >= 0; i-- {
		switch h[i] {
		case ':':
			return i
		case ']':
			return -1
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		default:
			return -1
		}
	}
	return -1
}

func normalizeHost(h string) string {
	b, _ := lowerHost(make([]byte, 0, len(h)), []byte(strings.TrimSpace(h)))
	return string(b)
}

// node is one path segment position in the tree.
type node[T any] struct {
	// static children: a short sorted slice is scanned, a long one is
	// indexed by the map (both hold the same nodes).
	statics   []staticChild[T]
	staticMap map[string]*node[T]
	param     *node[T]
	ends      endpoints[T] // routes ending exactly here
	wild      endpoints[T] // routes ending here with /*
}

type staticChild[T any] struct {
	seg  string
	node *node[T]
}

const staticMapThreshold = 8

type endpoints[T any] struct {
	methods  MethodSet
	byMethod [numMethods]*Route[T]
	all      *Route[T] // a route for every method also takes unknown ones
}

func (e *endpoints[T]) add(r *Route[T]) {
	for i := 0; i < numMethods; i++ {
		if r.Methods&(1<<i) != 0 {
			e.byMethod[i] = r
		}
	}
	e.methods |= r.Methods
	if r.Methods == AllMethods {
		e.all = r
	}
}

// get returns the route answering m; HEAD falls back to GET. When none
// does, it adds the methods present to allow.
func (e *endpoints[T]) get(m MethodSet, allow *MethodSet) *Route[T] {
	if e.methods == 0 {
		return nil
	}
	if m == 0 {
		if e.all != nil {
			return e.all
		}
	} else {
		if r := e.byMethod[m.index()]; r != nil {
			return r
		}
		if m == HEAD {
			if r := e.byMethod[0]; r != nil { // GET
				return r
			}
		}
	}
	*allow |= e.methods
	return nil
}

func (n *node[T]) insert(r *Route[T]) {
	cur := n
	for _, s := range r.Pattern.segs {
		if s.param {
			if cur.param == nil {
				cur.param = &node[T]{}
			}
			cur = cur.param
			continue
		}
		cur = cur.staticChild(s.static)
	}
	if r.Pattern.wildcard {
		cur.wild.add(r)
	} else {
		cur.ends.add(r)
	}
}

func (n *node[T]) staticChild(seg string) *node[T] {
	for _, c := range n.statics {
		if c.seg == seg {
			return c.node
		}
	}
	child := &node[T]{}
	n.statics = append(n.statics, staticChild[T]{seg: seg, node: child})
	sort.Slice(n.statics, func(i, j int) bool { return n.statics[i].seg < n.statics[j].seg })
	if len(n.statics) > staticMapThreshold {
		n.staticMap = make(map[string]*node[T], len(n.statics))
		for _, c := range n.statics {
			n.staticMap[c.seg] = c.node
		}
	}
	return child
}

func (n *node[T]) findStatic(seg []byte) *node[T] {
	if n.staticMap != nil {
		return n.staticMap[string(seg)]
	}
	for i := range n.statics {
		if n.statics[i].seg == string(seg) {
			return n.statics[i].node
		}
	}
	return nil
}

// match matches rest, the path after the "/" that leads to this node's
// children. It returns the route or nil, recording unmatched methods in
// allow and captured parameters in p.
func (n *node[T]) match(rest []byte, m MethodSet, p *Params, allow *MethodSet) *Route[T] {
	seg, tail, more := rest, []byte(nil), false
	for i, c := range rest {
		if c == '/' {
			seg, tail, more = rest[:i], rest[i+1:], true
			break
		}
	}
	if child := n.findStatic(seg); child != nil {
		if r := child.next(tail, more, m, p, allow); r != nil {
			return r
		}
	}
	if n.param != nil && len(seg) > 0 && p.n < MaxParams {
		p.vals[p.n] = seg
		p.n++
		if r := n.param.next(tail, more, m, p, allow); r != nil {
			return r
		}
		p.n--
		p.vals[p.n] = nil
	}
	// The wildcard of this node matches whatever follows its "/".
	return n.wild.get(m, allow)
}

// next continues at child n after one segment: the path ends here, or the
// rest follows a "/".
func (n *node[T]) next(tail []byte, more bool, m MethodSet, p *Params, allow *MethodSet) *Route[T] {
	if !more {
		return n.ends.get(m, allow)
	}
	return n.match(tail, m, p, allow)
}

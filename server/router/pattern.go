// Package router is wasmcorn's HTTP route table: host + method + path
// pattern to a value, built once, then read concurrently without locks or
// allocations. A new table is built for every change and swapped in
// atomically by the server, so requests in flight keep the table they
// started with.
//
// Pattern syntax (a path always starts with "/"):
//
//	/items             exactly /items
//	/items/            exactly /items/ (a trailing slash is significant)
//	/items/{id}        one non-empty segment, captured as parameter "id"
//	/items/{id}/tags   parameters may sit anywhere, one segment each
//	/files/*           /files/ and everything below it (not /files itself)
//
// Precedence when several patterns match a path: at each segment a static
// segment beats a parameter, which beats a trailing wildcard; the search
// backtracks, so /a/{x}/c still matches /a/b/c when /a/b exists but has no
// child c. Two routes conflict only when their patterns have the same
// shape (same static segments, parameters in the same places, same
// wildcard), the same host, and methods in common.
package router

import (
	"errors"
	"fmt"
	"strings"
)

// MaxParams is the most parameters one pattern may capture.
const MaxParams = 16

// maxSegments bounds pattern length so hostile manifests cannot build
// pathological trees.
const maxSegments = 64

// ErrPattern is wrapped by every pattern syntax error.
var ErrPattern = errors.New("bad route pattern")

// Pattern is a parsed path pattern. It is immutable.
type Pattern struct {
	raw      string
	segs     []segment
	wildcard bool
	params   []string
}

type segment struct {
	static string // the literal, when param is false
	param  bool
}

// ParsePattern parses a path pattern; see the package doc for the syntax.
func ParsePattern(s string) (Pattern, error) {
	bad := func(format string, args ...any) (Pattern, error) {
		return Pattern{}, fmt.Errorf("%w %q: %s", ErrPattern, s, fmt.Sprintf(format, args...))
	}
	if !strings.HasPrefix(s, "/") {
		return bad("must start with /")
	}
	p := Pattern{raw: s}
	parts := strings.Split(s[1:], "/")
	if len(parts) > maxSegments {
		return bad("more than %d segments", maxSegments)
	}
	for i, part := range parts {
		last := i == len(parts)-1
		switch {
		case part == "*":
			if !last {
				return bad("* is only allowed as the whole last segment")
			}
			p.wildcard = true
		case strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}"):
			name := part[1 : len(part)-1]
			if !validParamName(name) {
				return bad("parameter name %q must be letters, digits and _ (not starting with a digit), at most 64 bytes", name)
			}
			for _, prev := range p.params {
				if prev == name {
					return bad("parameter {%s} appears twice", name)
				}
			}
			if len(p.params) == MaxParams {
				return bad("more than %d parameters", MaxParams)
			}
			p.params = append(p.params, name)
			p.segs = append(p.segs, segment{param: true})
		default:
			if part == "" && !last {
				return bad("empty segment (//)")
			}
			if part == "." || part == ".." {
				return bad("segment %q never matches a normalized path", part)
			}
			if strings.ContainsAny(part, "{}*?#") || hasCTL(part) {
				return bad("segment %q: {, }, *, ?, # and control characters are only allowed as {param} and a final /*", part)
			}
			p.segs = append(p.segs, segment{static: part})
		}
	}
	return p, nil
}

// MustParsePattern is ParsePattern for patterns known to be valid; it
// panics on error. For tests and built-in routes only.
func MustParsePattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

func validParamName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Params returns the parameter names in path order. The slice is shared;
// do not modify it.
func (p Pattern) Params() []string { return p.params }

// Wildcard reports whether the pattern ends in /*.
func (p Pattern) Wildcard() bool { return p.wildcard }

// shape is the pattern with parameter names erased: two patterns with the
// same shape match exactly the same paths.
func (p Pattern) shape() string {
	var b strings.Builder
	for _, s := range p.segs {
		b.WriteByte('/')
		if s.param {
			b.WriteString("{}")
		} else {
			b.WriteString(s.static)
		}
	}
	if p.wildcard {
		b.WriteString("/*")
	}
	return b.String()
}

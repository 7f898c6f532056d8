package router

import (
	"fmt"
	"math/bits"
	"strings"
)

// MethodSet is a set of HTTP methods, one bit per method. The zero value
// is the empty set, which a route reads as "every method".
type MethodSet uint16

// The methods a route may name.
const (
	GET MethodSet = 1 << iota
	HEAD
	POST
	PUT
	PATCH
	DELETE
	OPTIONS
	CONNECT
	TRACE

	// AllMethods is every method above.
	AllMethods = GET | HEAD | POST | PUT | PATCH | DELETE | OPTIONS | CONNECT | TRACE
)

const numMethods = 9

var methodNames = [numMethods]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// MethodOf returns the bit of an upper-case method name, or 0 for a method
// this router does not know. It does not allocate.
func MethodOf(m []byte) MethodSet {
	switch len(m) {
	case 3:
		if string(m) == "GET" {
			return GET
		}
		if string(m) == "PUT" {
			return PUT
		}
	case 4:
		if string(m) == "HEAD" {
			return HEAD
		}
		if string(m) == "POST" {
			return POST
		}
	case 5:
		if string(m) == "PATCH" {
			return PATCH
		}
		if string(m) == "TRACE" {
			return TRACE
		}
	case 6:
		if string(m) == "DELETE" {
			return DELETE
		}
	case 7:
		if string(m) == "OPTIONS" {
			return OPTIONS
		}
		if string(m) == "CONNECT" {
			return CONNECT
		}
	}
	return 0
}

// ParseMethods converts method names (case-insensitive) to a set. An empty
// list is AllMethods. A route with GET but not HEAD also answers HEAD
// (see Table.Lookup), but only explicit methods count for conflicts.
func ParseMethods(names []string) (MethodSet, error) {
	if len(names) == 0 {
		return AllMethods, nil
	}
	var s MethodSet
	for _, n := range names {
		m := MethodOf([]byte(strings.ToUpper(strings.TrimSpace(n))))
		if m == 0 {
			return 0, fmt.Errorf("unknown HTTP method %q (known: %s)", n, strings.Join(methodNames[:], ", "))
		}
		s |= m
	}
	return s, nil
}

// index returns the position of a single-bit set.
func (s MethodSet) index() int { return bits.TrailingZeros16(uint16(s)) }

// AppendAllow appends the set as an Allow header value: "GET, HEAD, POST".
func (s MethodSet) AppendAllow(dst []byte) []byte {
	first := true
	for i := 0; i < numMethods; i++ {
		if s&(1<<i) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ", "...)
		}
		dst = append(dst, methodNames[i]...)
		first = false
	}
	return dst
}

// String returns the set as AppendAllow writes it, or "*" for AllMethods.
func (s MethodSet) String() string {
	if s == AllMethods || s == 0 {
		return "*"
	}
	return string(s.AppendAllow(nil))
}

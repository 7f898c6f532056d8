package router

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParsePattern(t *testing.T) {
	tests := []struct {
		in     string
		ok     bool
		params []string
		wild   bool
	}{
		{"/", true, nil, false},
		{"/items", true, nil, false},
		{"/items/", true, nil, false},
		{"/items/{id}", true, []string{"id"}, false},
		{"/a/{x}/b/{y_2}", true, []string{"x", "y_2"}, false},
		{"/files/*", true, nil, true},
		{"/*", true, nil, true},
		{"/{a}/*", true, []string{"a"}, true},
		{"/caf\u00e9/{id}", true, []string{"id"}, false},
		{"", false, nil, false},
		{"items", false, nil, false},
		{"/a//b", false, nil, false},
		{"/a/*/b", false, nil, false},
		{"/a/b*", false, nil, false},
		{"/a/{}", false, nil, false},
		{"/a/{1x}", false, nil, false},
		{"/a/{x-y}", false, nil, false},
		{"/a/x{id}", false, nil, false},
		{"/a/{id}x", false, nil, false},
		{"/a/{id}/{id}", false, nil, false},
		{"/a/../b", false, nil, false},
		{"/a/./b", false, nil, false},
		{"/a?x=1", false, nil, false},
		{"/a\x00", false, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePattern(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParsePattern(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrPattern) {
					t.Fatalf("error %v does not wrap ErrPattern", err)
				}
				return
			}
			if p.String() != tt.in {
				t.Errorf("String() = %q", p.String())
			}
			if fmt.Sprint(p.Params()) != fmt.Sprint(tt.params) {
				t.Errorf("Params() = %v, want %v", p.Params(), tt.params)
			}
			if p.Wildcard() != tt.wild {
				t.Errorf("Wildcard() = %v", p.Wildcard())
			}
		})
	}
	long := strings.Repeat("/{p}", 0)
	for i := 0; i <= MaxParams; i++ {
		long += fmt.Sprintf("/{p%d}", i)
	}
	if _, err := ParsePattern(long); err == nil {
		t.Errorf("pattern with %d params accepted", MaxParams+1)
	}
}

func TestParseMethods(t *testing.T) {
	s, err := ParseMethods([]string{"get", " POST "})
	if err != nil || s != GET|POST {
		t.Fatalf("ParseMethods = %v, %v", s, err)
	}
	if s, _ := ParseMethods(nil); s != AllMethods {
		t.Fatalf("empty list = %v, want all", s)
	}
	if _, err := ParseMethods([]string{"FETCH"}); err == nil {
		t.Fatal("unknown method accepted")
	}
	if got := string((GET | HEAD | DELETE).AppendAllow(nil)); got != "GET, HEAD, DELETE" {
		t.Fatalf("AppendAllow = %q", got)
	}
}

type testRoute struct {
	owner, host, methods, pattern string
}

func build(t testing.TB, routes []testRoute) *Table[string] {
	t.Helper()
	var b Builder[string]
	for _, r := range routes {
		var ms MethodSet
		if r.methods != "" {
			var err error
			if ms, err = ParseMethods(strings.Split(r.methods, ",")); err != nil {
				t.Fatal(err)
			}
		}
		p, err := ParsePattern(r.pattern)
		if err != nil {
			t.Fatal(err)
		}
		val := r.owner + " " + r.pattern
		if err := b.Add(Route[string]{Owner: r.owner, Host: r.host, Methods: ms, Pattern: p, Value: val}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Build()
}

func TestLookup(t *testing.T) {
	tab := build(t, []testRoute{
		{"a", "", "", "/"},
		{"a", "", "GET", "/items"},
		{"a", "", "POST", "/items"},
		{"a", "", "GET", "/items/{id}"},
		{"b", "", "DELETE", "/items/{key}"},
		{"a", "", "GET", "/items/new"},
		{"a", "", "GET", "/items/{id}/tags/{tag}"},
		{"c", "", "", "/files/*"},
		{"c", "", "GET", "/files/special"},
		{"d", "api.example.com", "GET", "/items"},
		{"e", "", "GET", "/a/b"},
		{"e", "", "GET", "/a/{x}/c"},
		{"f", "", "", "/f"},
		{"f", "", "", "/f/*"},
		{"g", "", "PUT", "/slash/"},
	})
	tests := []struct {
		host, method, path string
		want               string // value, or "404", or "405 Allow"
		params             string
	}{
		{"x", "GET", "/", "a /", ""},
		{"x", "PROPFIND", "/", "a /", ""},
		{"x", "GET", "/items", "a /items", ""},
		{"x", "POST", "/items", "a /items", ""},
		{"x", "HEAD", "/items", "a /items", ""},
		{"x", "PUT", "/items", "405 GET, HEAD, POST", ""},
		{"x", "GET", "/items/42", "a /items/{id}", "id=42"},
		{"x", "DELETE", "/items/42", "b /items/{key}", "key=42"},
		{"x", "GET", "/items/new", "a /items/new", ""},
		{"x", "DELETE", "/items/new", "b /items/{key}", "key=new"},
		{"x", "PATCH", "/items/new", "405 GET, HEAD, DELETE", ""},
		{"x", "GET", "/items/42/tags/red", "a /items/{id}/tags/{tag}", "id=42 tag=red"},
		{"x", "GET", "/items/42/tags", "404", ""},
		{"x", "GET", "/items/", "404", ""},
		{"x", "GET", "/files", "404", ""},
		{"x", "GET", "/files/", "c /files/*", ""},
		{"x", "POST", "/files/a/b/c", "c /files/*", ""},
		{"x", "GET", "/files/special", "c /files/special", ""},
		{"x", "POST", "/files/special", "c /files/*", ""},
		{"API.Example.com:8080", "GET", "/items", "d /items", ""},
		{"api.example.com", "POST", "/items", "a /items", ""},
		{"api.example.com", "GET", "/items/7", "a /items/{id}", "id=7"},
		{"x", "GET", "/a/b", "e /a/b", ""},
		{"x", "GET", "/a/b/c", "e /a/{x}/c", "x=b"},
		{"x", "GET", "/a/z/c", "e /a/{x}/c", "x=z"},
		{"x", "GET", "/f", "f /f", ""},
		{"x", "GET", "/f/", "f /f/*", ""},
		{"x", "GET", "/f/g/h", "f /f/*", ""},
		{"x", "GET", "/ff", "404", ""},
		{"x", "PUT", "/slash/", "g /slash/", ""},
		{"x", "PUT", "/slash", "404", ""},
		{"x", "GET", "", "404", ""},
		{"x", "GET", "nope", "404", ""},
	}
	var p Params
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.host+tt.path, func(t *testing.T) {
			v, ok, allow := tab.Lookup([]byte(tt.host), []byte(tt.method), []byte(tt.path), &p)
			got := v
			switch {
			case ok:
			case allow != 0:
				got = "405 " + string(allow.AppendAllow(nil))
			default:
				got = "404"
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			var ps []string
			for i := 0; i < p.Len(); i++ {
				ps = append(ps, p.Name(i)+"="+string(p.Value(i)))
			}
			if strings.Join(ps, " ") != tt.params {
				t.Fatalf("params %q, want %q", strings.Join(ps, " "), tt.params)
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	tests := []struct {
		name     string
		a, b     testRoute
		conflict bool
	}{
		{"same pattern all methods", testRoute{"p1", "", "", "/x"}, testRoute{"p2", "", "", "/x"}, true},
		{"param names differ", testRoute{"p1", "", "GET", "/x/{id}"}, testRoute{"p2", "", "GET,POST", "/x/{key}"}, true},
		{"disjoint methods", testRoute{"p1", "", "GET", "/x/{id}"}, testRoute{"p2", "", "POST", "/x/{key}"}, false},
		{"all vs one", testRoute{"p1", "", "", "/x"}, testRoute{"p2", "", "DELETE", "/x"}, true},
		{"different hosts", testRoute{"p1", "a.com", "", "/x"}, testRoute{"p2", "b.com", "", "/x"}, false},
		{"host case", testRoute{"p1", "A.com", "", "/x"}, testRoute{"p2", "a.COM:80", "", "/x"}, true},
		{"host vs any", testRoute{"p1", "a.com", "", "/x"}, testRoute{"p2", "", "", "/x"}, false},
		{"static vs param", testRoute{"p1", "", "", "/x/new"}, testRoute{"p2", "", "", "/x/{id}"}, false},
		{"wildcard vs exact", testRoute{"p1", "", "", "/x/*"}, testRoute{"p2", "", "", "/x"}, false},
		{"two wildcards", testRoute{"p1", "", "", "/x/*"}, testRoute{"p2", "", "GET", "/x/*"}, true},
		{"trailing slash differs", testRoute{"p1", "", "", "/x/"}, testRoute{"p2", "", "", "/x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Builder[string]
			add := func(r testRoute) error {
				ms, _ := ParseMethods(splitNonEmpty(r.methods))
				return b.Add(Route[string]{Owner: r.owner, Host: r.host, Methods: ms, Pattern: MustParsePattern(r.pattern)})
			}
			if err := add(tt.a); err != nil {
				t.Fatal(err)
			}
			err := add(tt.b)
			if (err != nil) != tt.conflict {
				t.Fatalf("conflict = %v, want %v", err, tt.conflict)
			}
			if err != nil {
				if !errors.Is(err, ErrConflict) {
					t.Fatalf("%v does not wrap ErrConflict", err)
				}
				if !strings.Contains(err.Error(), "(p1)") || !strings.Contains(err.Error(), "(p2)") {
					t.Fatalf("error %q does not name both owners", err)
				}
			}
		})
	}
}

func TestAddAllIsAtomic(t *testing.T) {
	var b Builder[string]
	if err := b.Add(Route[string]{Owner: "a", Pattern: MustParsePattern("/x")}); err != nil {
		t.Fatal(err)
	}
	err := b.AddAll([]Route[string]{
		{Owner: "b", Pattern: MustParsePattern("/y")},
		{Owner: "b", Pattern: MustParsePattern("/x")},
	})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v", err)
	}
	if len(b.Routes()) != 1 {
		t.Fatalf("failed AddAll left %d routes", len(b.Routes()))
	}
	if err := b.AddAll([]Route[string]{{Owner: "c", Pattern: MustParsePattern("/y")}}); err != nil {
		t.Fatal(err)
	}
	var p Params
	if _, ok, _ := b.Build().Lookup(nil, []byte("GET"), []byte("/y"), &p); !ok {
		t.Fatal("/y not routed")
	}
}

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func TestManyStatics(t *testing.T) {
	// More than staticMapThreshold children switches to the map index.
	var rs []testRoute
	for i := 0; i < 40; i++ {
		rs = append(rs, testRoute{"p", "", "GET", fmt.Sprintf("/s%d/{id}", i)})
	}
	tab := build(t, rs)
	var p Params
	for i := 0; i < 40; i++ {
		v, ok, _ := tab.Lookup(nil, []byte("GET"), []byte(fmt.Sprintf("/s%d/x", i)), &p)
		if !ok || v != fmt.Sprintf("p /s%d/{id}", i) || string(p.Get("id")) != "x" {
			t.Fatalf("s%d: %q %v %q", i, v, ok, p.Get("id"))
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	var rs []testRoute
	for i := 0; i < 20; i++ {
		rs = append(rs, testRoute{"p", "", "GET", fmt.Sprintf("/api/v%d/items/{id}/sub/{sub}", i)})
	}
	rs = append(rs, testRoute{"h", "api.example.com", "GET", "/x/{id}"}, testRoute{"w", "", "", "/static/*"})
	tab := build(t, rs)
	paths := []struct{ host, method, path string }{
		{"localhost:8080", "GET", "/api/v7/items/123/sub/abc"},
		{"API.EXAMPLE.COM", "GET", "/x/1"},
		{"localhost", "POST", "/static/a/b/c.css"},
		{"localhost", "DELETE", "/api/v7/items/123/sub/abc"},
		{"localhost", "GET", "/nothing/here"},
	}
	var p Params
	for _, pp := range paths {
		h, m, path := []byte(pp.host), []byte(pp.method), []byte(pp.path)
		allocs := testing.AllocsPerRun(200, func() {
			tab.Lookup(h, m, path, &p)
		})
		if allocs != 0 {
			t.Errorf("%s %s: %v allocs per lookup", pp.method, pp.path, allocs)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	var rs []testRoute
	for i := 0; i < 50; i++ {
		rs = append(rs, testRoute{"p", "", "GET", fmt.Sprintf("/api/v1/res%d/{id}", i)})
		rs = append(rs, testRoute{"p", "", "GET", fmt.Sprintf("/api/v1/res%d/{id}/children/{child}", i)})
	}
	rs = append(rs, testRoute{"w", "", "", "/static/*"}, testRoute{"r", "", "GET", "/"})
	tab := build(b, rs)
	cases := []struct{ name, method, path string }{
		{"root", "GET", "/"},
		{"param", "GET", "/api/v1/res37/12345"},
		{"deep", "GET", "/api/v1/res37/12345/children/abc"},
		{"wildcard", "GET", "/static/css/site/main.css"},
		{"notfound", "GET", "/api/v2/zzz"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			host, m, path := []byte("localhost:8080"), []byte(c.method), []byte(c.path)
			var p Params
			b.ReportAllocs()
			for b.Loop() {
				tab.Lookup(host, m, path, &p)
			}
		})
	}
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"/", "/a", "/a/{b}", "/a/*", "/{x}/{y}/*", "//", "/a/{", "/{a}{b}", "/a/./b", "/é/{ü}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			if !errors.Is(err, ErrPattern) {
				t.Fatalf("error does not wrap ErrPattern: %v", err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("String() = %q, want %q", p.String(), s)
		}
		// A concrete path built from the pattern must match it, capturing
		// every parameter.
		path := strings.ReplaceAll(s, "/*", "/tail/x")
		for _, name := range p.Params() {
			path = strings.Replace(path, "{"+name+"}", "v"+name, 1)
		}
		var b Builder[int]
		if err := b.Add(Route[int]{Owner: "fuzz", Pattern: p, Value: 7}); err != nil {
			t.Fatal(err)
		}
		if err := b.Add(Route[int]{Owner: "fuzz2", Pattern: p}); !errors.Is(err, ErrConflict) {
			t.Fatalf("same pattern twice: err = %v", err)
		}
		var ps Params
		v, ok, _ := b.Build().Lookup(nil, []byte("GET"), []byte(path), &ps)
		if !ok || v != 7 {
			t.Fatalf("path %q does not match pattern %q", path, s)
		}
		if ps.Len() != len(p.Params()) {
			t.Fatalf("captured %d params, want %d", ps.Len(), len(p.Params()))
		}
		for i := 0; i < ps.Len(); i++ {
			if string(ps.Value(i)) != "v"+ps.Name(i) {
				t.Fatalf("param %s = %q", ps.Name(i), ps.Value(i))
			}
		}
	})
}

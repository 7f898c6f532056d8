package host_test

import (
	"fmt"
	"testing"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/enginetest"
)

// TestEngineConformance runs the engine conformance kit (echo, vectors,
// traps, deadlines, GC, limits, pool, reload, cache, WASI, allocations)
// against the default engine. The wasmtime module runs the same kit.
func TestEngineConformance(t *testing.T) {
	enginetest.Run(t, host.DefaultEngine)
}

// TestEnginePlugins runs the Go example, hostile and Python plugins (and so
// the Go SDK) on the real host runtime through the same kit the wasmtime
// module runs them through.
func TestEnginePlugins(t *testing.T) {
	host.SkipCompilingUnderRace(t)
	enginetest.RunPlugins(t, host.DefaultEngine)
}

func BenchmarkHandleEcho(b *testing.B) {
	for _, enforced := range []bool{false, true} {
		b.Run(fmt.Sprintf("deadline_enforced=%v", enforced), func(b *testing.B) {
			enginetest.BenchHandleEcho(b, host.DefaultEngine, enforced)
		})
	}
}

func BenchmarkHostCall(b *testing.B) {
	for _, enforced := range []bool{false, true} {
		b.Run(fmt.Sprintf("deadline_enforced=%v", enforced), func(b *testing.B) {
			enginetest.BenchHostCall(b, host.DefaultEngine, enforced)
		})
	}
}

// BenchmarkPlugin measures one request to the hello, hellofast and jsonapi
// example plugins through Plugin.Handle (pool, engine call, SDK conversion,
// handler).
func BenchmarkPlugin(b *testing.B) {
	reqs := []struct {
		plugin string
		req    []byte
	}{
		{"hello", enginetest.HTTPRequest("GET", "/hello/", "", nil, "Accept", "*/*", "User-Agent", "wrk")},
		{"hellofast", enginetest.HTTPRequest("GET", "/hellofast/", "", nil, "Accept", "*/*", "User-Agent", "wrk")},
		{"jsonapi", enginetest.HTTPRequest("GET", "/jsonapi/", "", nil, "Accept", "*/*")},
	}
	for _, r := range reqs {
		for _, enforced := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/deadline_enforced=%v", r.plugin, enforced), func(b *testing.B) {
				enginetest.BenchPlugin(b, host.DefaultEngine, r.plugin, r.req, enforced)
			})
		}
	}
}

package wasmtime

import (
	"sync"
	"sync/atomic"
)

// registry maps the small integers the C side holds (C memory must not
// hold Go pointers) to live instances. It replaces runtime/cgo.Handle on
// the host-call path: a lookup is two atomic loads instead of a hash-map
// lookup. Slots are reused after an instance closes.
var registry struct {
	mu    sync.Mutex
	table atomic.Pointer[[]atomic.Pointer[instance]]
	free  []uintptr
	next  uintptr
}

// register stores in and returns its slot, never 0.
func register(in *instance) uintptr {
	r := &registry
	r.mu.Lock()
	defer r.mu.Unlock()
	var id uintptr
	if n := len(r.free); n > 0 {
		id, r.free = r.free[n-1], r.free[:n-1]
	} else {
		r.next++
		id = r.next
	}
	t := r.table.Load()
	if t == nil || int(id) >= len(*t) {
		size := 64
		if t != nil {
			size = 2 * len(*t)
		}
		for size <= int(id) {
			size *= 2
		}
		grown := make([]atomic.Pointer[instance], size)
		if t != nil {
			for i := range *t {
				grown[i].Store((*t)[i].Load())
			}
		}
		r.table.Store(&grown)
		t = &grown
	}
	(*t)[id].Store(in)
	return id
}

// unregister frees slot id; the instance must not be called again.
func unregister(id uintptr) {
	r := &registry
	r.mu.Lock()
	defer r.mu.Unlock()
	(*r.table.Load())[id].Store(nil)
	r.free = append(r.free, id)
}

// lookup returns the instance in slot id. A call on an instance happens
// after its registration (the pool hands instances over through channels),
// so the table seen here holds it.
func lookup(id uintptr) *instance {
	return (*registry.table.Load())[id].Load()
}

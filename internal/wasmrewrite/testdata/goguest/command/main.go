// Command is a wasip1 command whose output must not change when its binary
// is instrumented by wasmrewrite. It exercises goroutines, channels, maps,
// sorting, fmt, hashing, and the guest's own garbage collector.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
)

func main() {
	results := make([]int, 8)
	var wg sync.WaitGroup
	for w := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := 0
			for i := 0; i < 200000; i++ {
				s += i * (w + 1) % 7
				if i%50000 == 0 {
					runtime.Gosched()
				}
			}
			results[w] = s
		}()
	}
	wg.Wait()
	fmt.Println("workers:", results)

	ch := make(chan int)
	go func() {
		for i := 0; i < 1000; i++ {
			ch <- i * i
		}
		close(ch)
	}()
	sum := 0
	for v := range ch {
		sum += v
	}
	fmt.Println("channel sum:", sum)

	m := map[string]int{}
	for i := 0; i < 20000; i++ {
		m[fmt.Sprintf("k%03d", i%317)] += i
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println("map:", len(keys), keys[:3], m[keys[0]], m[keys[len(keys)-1]])

	var b strings.Builder
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&b, "%d,", i)
	}
	fmt.Printf("sha256: %x\n", sha256.Sum256([]byte(b.String())))

	var keep [][]byte
	for i := 0; i < 2000; i++ {
		keep = append(keep, make([]byte, 4096))
		if len(keep) > 100 {
			keep = keep[1:]
		}
	}
	runtime.GC()
	fmt.Println("args:", len(os.Args), "kept:", len(keep))
}

package metrics

import "github.com/prometheus/client_golang/prometheus"

// Instance linear memory (host/internal/wazero): where new instances'
// memories came from, and what the pool of reusable memory holds.
var (
	InstanceMemories = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_instance_memories_total",
		Help: "Linear memories given to new instances, by source: a fresh mapping, or a closed instance's memory reset for reuse.",
	}, []string{"source"})
	InstanceMemoryPooledBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wasmcorn_instance_memory_pooled_bytes",
		Help: "Committed bytes of closed instances' memories kept for reuse (bounded; unused ones are unmapped after 10 s).",
	})
)

func init() {
	Registry.MustRegister(InstanceMemories, InstanceMemoryPooledBytes)
}

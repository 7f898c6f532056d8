package redisqueue_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/backend/redisqueue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/host/jobs/jobstest"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// topologyStores returns a NewStore over a throwaway Redis Cluster (three
// masters) or a master behind a sentinel, through go-redis' universal
// client. In a cluster every key of a queue carries the queue's hash tag,
// so its scripts and pipelines stay within one slot; several queues spread
// over the nodes.
func topologyStores(t *testing.T, mode string) jobstest.NewStore {
	if testing.Short() {
		t.Skip("starts redis-server processes")
	}
	var cfg redisqueue.Config
	switch mode {
	case redisqueue.ModeCluster:
		c := testsvc.StartRedisCluster(t)
		cfg = redisqueue.Config{Conn: redisconn.Conn{Mode: mode, Addrs: c.Addrs()}}
	case redisqueue.ModeSentinel:
		s := testsvc.StartRedisSentinel(t)
		cfg = redisqueue.Config{Conn: redisconn.Conn{Mode: mode, Addrs: []string{s.SentinelAddr()}, MasterName: s.MasterName}}
	}
	cfg.PromoteEvery = 20 * time.Millisecond
	return func(t *testing.T) jobstest.Store {
		c := cfg
		c.KeyPrefix = fmt.Sprintf("t%d:", storeSeq.Add(1))
		return func(t *testing.T) jobs.Backend {
			q, err := redisqueue.New(c)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { q.Close() })
			return q
		}
	}
}

func TestClusterBackend(t *testing.T) {
	newStore := topologyStores(t, redisqueue.ModeCluster)
	t.Run("Backend", func(t *testing.T) { jobstest.Backend(t, newStore) })
	t.Run("Runner", func(t *testing.T) { jobstest.Runner(t, newStore) })
}

func TestSentinelBackend(t *testing.T) {
	newStore := topologyStores(t, redisqueue.ModeSentinel)
	t.Run("Backend", func(t *testing.T) { jobstest.Backend(t, newStore) })
	t.Run("Runner", func(t *testing.T) { jobstest.Runner(t, newStore) })
}

package testsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Throwaway Redis Cluster and Sentinel deployments, from the installed
// redis-server and redis-cli, for the go-redis universal client's cluster
// and sentinel modes.

// RedisCluster is a throwaway Redis Cluster of three masters without
// replicas, each a RedisServer on its own free port, its 16384 slots
// assigned by `redis-cli --cluster create`. Close stops every node.
type RedisCluster struct {
	Nodes []*RedisServer
}

// clusterTimeout bounds waiting for a new cluster to report state ok.
const clusterTimeout = 30 * time.Second

// StartRedisClusterServers starts a three-master cluster. The error wraps
// ErrNotInstalled when redis-server or redis-cli is missing.
func StartRedisClusterServers(ctx context.Context, opts RedisOptions) (_ *RedisCluster, err error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli: %w", ErrNotInstalled)
	}
	c := &RedisCluster{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	nodeOpts := opts
	nodeOpts.Args = append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "5000"}, opts.Args...)
	for range 3 {
		n, err := StartRedisServer(ctx, nodeOpts)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	deadline := time.Now().Add(clusterTimeout)
	for _, n := range c.Nodes {
		for {
			out, err := exec.CommandContext(ctx, cli, "-p", strconv.Itoa(n.Port()), "cluster", "info").CombinedOutput()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, fmt.Errorf("redis cluster node %s not ok within %v: %v\n%s", n.Addr(), clusterTimeout, err, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c, nil
}

// Addrs are the nodes' "127.0.0.1:port" addresses (cluster seeds).
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// Close stops every node and removes its files.
func (c *RedisCluster) Close() error {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// RedisSentinel is a throwaway master watched by one redis-sentinel
// (`redis-server sentinel.conf --sentinel`, quorum 1) under MasterName.
// Clients in sentinel mode use SentinelAddr and MasterName.
type RedisSentinel struct {
	Master     *RedisServer
	Sentinel   *RedisServer
	MasterName string

	confDir string
}

// sentinelMaster is the master set name of StartRedisSentinelServers.
const sentinelMaster = "wcmaster"

// StartRedisSentinelServers starts a master and a sentinel monitoring it,
// and waits until the sentinel reports the master's address. The error
// wraps ErrNotInstalled when redis-server or redis-cli is missing.
func StartRedisSentinelServers(ctx context.Context, opts RedisOptions) (_ *RedisSentinel, err error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli: %w", ErrNotInstalled)
	}
	s := &RedisSentinel{MasterName: sentinelMaster}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Master, err = StartRedisServer(ctx, opts); err != nil {
		return nil, err
	}
	// The sentinel rewrites its config file: it gets a directory of its own.
	if s.confDir, err = os.MkdirTemp(opts.Dir, "wcsentinel-"); err != nil {
		return nil, err
	}
	conf := filepath.Join(s.confDir, "sentinel.conf")
	err = os.WriteFile(conf, fmt.Appendf(nil, "sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 5000\n",
		sentinelMaster, s.Master.Port(), sentinelMaster), 0o600)
	if err != nil {
		return nil, err
	}
	sopts := opts
	sopts.ConfigFile = conf
	sopts.Args = append([]string{"--sentinel"}, opts.Args...)
	if s.Sentinel, err = StartRedisServer(ctx, sopts); err != nil {
		return nil, err
	}
	want := fmt.Sprintf("127.0.0.1\n%d", s.Master.Port())
	deadline := time.Now().Add(clusterTimeout)
	for {
		out, err := exec.CommandContext(ctx, cli, "-p", strconv.Itoa(s.Sentinel.Port()),
			"sentinel", "get-master-addr-by-name", sentinelMaster).CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) == want {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("redis-sentinel on %s does not report master %s: %v\n%s", s.Sentinel.Addr(), sentinelMaster, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// SentinelAddr is the sentinel's "127.0.0.1:port".
func (s *RedisSentinel) SentinelAddr() string { return s.Sentinel.Addr() }

// Close stops the sentinel and the master and removes their files.
func (s *RedisSentinel) Close() error {
	var errs []error
	if s.Sentinel != nil {
		errs = append(errs, s.Sentinel.Close())
	}
	if s.Master != nil {
		errs = append(errs, s.Master.Close())
	}
	if s.confDir != "" {
		errs = append(errs, os.RemoveAll(s.confDir))
	}
	return errors.Join(errs...)
}

// StartRedisCluster starts a throwaway three-master cluster for t
// (StartRedisClusterServers) and stops it at cleanup. It skips the test
// when redis-server or redis-cli is not installed.
func StartRedisCluster(t TB) *RedisCluster {
	t.Helper()
	return start(t, "redis cluster", func(ctx context.Context) (*RedisCluster, error) {
		return StartRedisClusterServers(ctx, RedisOptions{})
	})
}

// StartRedisSentinel starts a throwaway master and sentinel for t
// (StartRedisSentinelServers) and stops them at cleanup. It skips the test
// when redis-server or redis-cli is not installed.
func StartRedisSentinel(t TB) *RedisSentinel {
	t.Helper()
	return start(t, "redis sentinel", func(ctx context.Context) (*RedisSentinel, error) {
		return StartRedisSentinelServers(ctx, RedisOptions{})
	})
}

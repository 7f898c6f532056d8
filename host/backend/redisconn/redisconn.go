// Package redisconn is the connection half shared by the Redis backends
// (host/backend/rediskv, host/backend/redisqueue): one Conn config for a
// standalone server, a Sentinel-managed master or a Cluster, its
// validation, and the go-redis universal client built from it with the
// options both backends need.
package redisconn

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Modes of Conn.Mode.
const (
	ModeStandalone = "standalone"
	ModeSentinel   = "sentinel"
	ModeCluster    = "cluster"
)

// Defaults for Conn fields left zero (ReadTimeout and WriteTimeout default
// per backend: see WithDefaults).
const (
	DefaultAddr        = "127.0.0.1:6379"
	DefaultDialTimeout = time.Second
)

// Conn says how to reach one Redis deployment. The zero value is a
// standalone server on 127.0.0.1:6379.
type Conn struct {
	// Mode is ModeStandalone (""), ModeSentinel or ModeCluster.
	Mode string
	// Addrs are host:port addresses: the server (standalone), the
	// sentinels, or cluster seed nodes. Default ["127.0.0.1:6379"].
	Addrs []string
	// MasterName is the Sentinel master set name; required in sentinel mode.
	MasterName string
	// Username and Password authenticate (ACL user, or password only), to
	// the servers and, in sentinel mode, to the sentinels.
	Username, Password string
	// DB is the database number (standalone and sentinel only). Default 0.
	DB int
	// PoolSize caps connections per node. Default (0): go-redis's, 10 per
	// GOMAXPROCS.
	PoolSize int
	// DialTimeout bounds establishing one connection. Default 1s.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound one command's socket reads and
	// writes; the call's context deadline applies too when it is earlier.
	// Their default is the backend's.
	ReadTimeout, WriteTimeout time.Duration
}

// WithDefaults returns c with zero fields set to their defaults, rw being
// the backend's default read and write timeout.
func (c Conn) WithDefaults(rw time.Duration) Conn {
	if c.Mode == "" {
		c.Mode = ModeStandalone
	}
	if len(c.Addrs) == 0 {
		c.Addrs = []string{DefaultAddr}
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = rw
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = rw
	}
	return c
}

// Validate reports the first invalid field of c (after WithDefaults).
func (c Conn) Validate() error {
	c = c.WithDefaults(time.Second)
	switch c.Mode {
	case ModeStandalone:
		if len(c.Addrs) != 1 {
			return fmt.Errorf("standalone mode takes one address, got %d", len(c.Addrs))
		}
	case ModeSentinel:
		if c.MasterName == "" {
			return errors.New("sentinel mode needs master_name")
		}
	case ModeCluster:
		if c.DB != 0 {
			return fmt.Errorf("cluster mode has no database %d (only 0)", c.DB)
		}
	default:
		return fmt.Errorf("unknown mode %q (want %s, %s or %s)", c.Mode, ModeStandalone, ModeSentinel, ModeCluster)
	}
	switch {
	case c.DB < 0:
		return fmt.Errorf("db %d is negative", c.DB)
	case c.PoolSize < 0:
		return fmt.Errorf("pool_size %d is negative", c.PoolSize)
	case c.DialTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0:
		return errors.New("negative timeout")
	}
	for _, a := range c.Addrs {
		if a == "" {
			return errors.New("empty address")
		}
	}
	return nil
}

// NewClient returns the universal client for c (after WithDefaults): a
// plain, failover (sentinel) or cluster client. It does not contact the
// server. Commands are never retried by go-redis (a retried XADD, INCRBY
// or SET NX whose reply was lost would apply twice; callers retry what is
// safe to), a new connection gets one dial attempt (so an outage trips
// go-redis' dial breaker quickly), the call's context deadline bounds a
// command, and neither CLIENT SETINFO nor maintenance notifications are
// sent (older servers and proxies reject them).
func NewClient(c Conn) redis.UniversalClient {
	opts := &redis.UniversalOptions{
		Addrs:                    c.Addrs,
		MasterName:               c.MasterName,
		IsClusterMode:            c.Mode == ModeCluster,
		Username:                 c.Username,
		Password:                 c.Password,
		DB:                       c.DB,
		PoolSize:                 c.PoolSize,
		DialTimeout:              c.DialTimeout,
		ReadTimeout:              c.ReadTimeout,
		WriteTimeout:             c.WriteTimeout,
		ContextTimeoutEnabled:    true,
		MaxRetries:               -1,
		DialerRetries:            1,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if c.Mode == ModeSentinel {
		opts.SentinelUsername, opts.SentinelPassword = c.Username, c.Password
	}
	return redis.NewUniversalClient(opts)
}

package redisconn

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c  Conn
		ok bool
	}{
		{Conn{}, true},
		{Conn{Mode: ModeSentinel, MasterName: "m", Addrs: []string{"a:1", "b:1"}}, true},
		{Conn{Mode: ModeCluster, Addrs: []string{"a:1", "b:1", "c:1"}}, true},
		{Conn{Mode: ModeSentinel}, false},
		{Conn{Mode: ModeCluster, DB: 1}, false},
		{Conn{Addrs: []string{"a:1", "b:1"}}, false},
		{Conn{Mode: "ring"}, false},
		{Conn{DB: -1}, false},
		{Conn{PoolSize: -1}, false},
		{Conn{WriteTimeout: -time.Second}, false},
		{Conn{Addrs: []string{""}}, false},
	} {
		if err := tc.c.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tc.c, err, tc.ok)
		}
	}
}

func TestDefaultsAndClients(t *testing.T) {
	c := Conn{ReadTimeout: time.Second}.WithDefaults(3 * time.Second)
	if c.Mode != ModeStandalone || len(c.Addrs) != 1 || c.Addrs[0] != DefaultAddr || c.DialTimeout != DefaultDialTimeout ||
		c.ReadTimeout != time.Second || c.WriteTimeout != 3*time.Second {
		t.Fatalf("WithDefaults = %+v", c)
	}
	for _, tc := range []struct {
		c    Conn
		want string
	}{
		{Conn{}.WithDefaults(time.Second), "*redis.Client"},
		{Conn{Mode: ModeSentinel, MasterName: "m", Addrs: []string{"a:1"}}.WithDefaults(time.Second), "*redis.Client"},
		{Conn{Mode: ModeCluster, Addrs: []string{"a:1"}}.WithDefaults(time.Second), "*redis.ClusterClient"},
	} {
		cl := NewClient(tc.c)
		var got string
		switch cl.(type) {
		case *redis.Client:
			got = "*redis.Client"
		case *redis.ClusterClient:
			got = "*redis.ClusterClient"
		}
		if got != tc.want {
			t.Errorf("NewClient(%s) is a %T, want %s", tc.c.Mode, cl, tc.want)
		}
		cl.Close()
	}
}

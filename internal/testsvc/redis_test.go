package testsvc

import "testing"

func TestRedisLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	r := StartRedis(t)
	addr := r.Addr()
	if err := ping(addr); err != nil {
		t.Fatalf("ping fresh server: %v", err)
	}

	r.Kill()
	if err := ping(addr); err == nil {
		t.Fatal("ping answered after Kill")
	}
	r.Kill() // killing a stopped server is a no-op

	r.Start()
	if r.Addr() != addr {
		t.Fatalf("address changed across restart: %s then %s", addr, r.Addr())
	}
	if err := ping(addr); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	r.Start() // starting a running server is a no-op
	if err := ping(addr); err != nil {
		t.Fatalf("ping after second Start: %v", err)
	}

	r.Stop()
	if err := ping(addr); err == nil {
		t.Fatal("ping answered after Stop")
	}
}

package balancer

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime/balancer/dnstest"
)

// TestUpstreamFollowsDNS: when a target's answer expires and changes, the
// upstream rebuilds its balancer and says so; a target that does not
// resolve has no addresses.
func TestUpstreamFollowsDNS(t *testing.T) {
	z := dnstest.Start(t)
	z.Set(t, "pool.test. 1 IN A 127.0.0.2")
	r := testResolver(t, z)
	var warned []string
	targets := []Target{
		{Name: "pool.test:80", Host: "pool.test", Port: 80, Weight: 100},
		{Name: "gone.test:80", Host: "gone.test", Port: 80, Weight: 100},
		{Name: "127.0.0.9:81", Host: "127.0.0.9", Port: 81, Weight: 10},
	}
	u, err := NewUpstream(context.Background(), targets, Options{}, r, func(f string, a ...any) { warned = append(warned, f) })
	if err != nil {
		t.Fatal(err)
	}
	defer u.Stop()
	if as := u.Addresses(); len(as) != 2 || as[0].Addr != netip.MustParseAddrPort("127.0.0.2:80") || as[0].Host != "pool.test" || as[1].Host != "" {
		t.Fatalf("addresses %+v; want pool.test's and the IP target's", as)
	}
	if len(warned) != 1 {
		t.Errorf("warnings %v; want one for gone.test", warned)
	}
	changed := make(chan []Address, 1)
	u.Watch(func(prev, b Balancer, addrs []Address) {
		if prev == nil || b == prev {
			t.Error("onChange without the previous and a new balancer")
		}
		changed <- addrs
	})
	z.Set(t, "pool.test. 1 IN A 127.0.0.3")
	var addrs []Address
	select {
	case addrs = <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no rebuild within 10s of the answer changing (TTL 1s)")
	}
	if len(addrs) != 2 || addrs[0].Addr != netip.MustParseAddrPort("127.0.0.3:80") {
		t.Fatalf("rebuilt over %+v; want the new address", addrs)
	}
	waitFor(t, "the upstream rebuilt on the new answer", func() bool { return u.Addresses()[0].Addr == addrs[0].Addr })
	if p, ok := u.Balancer().Take(&Handle{}, addrs[0].Addr); !ok || p.Host != "pool.test" {
		t.Errorf("the current balancer lacks the new address: %v, %v", p, ok)
	}
}

package balancer

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime/balancer/dnstest"
)

func testResolver(t testing.TB, z *dnstest.Zone) *Resolver {
	t.Helper()
	r, err := NewResolver(ResolverConfig{Nameservers: []string{z.Addr}, Order: []string{"LAST", "SRV", "A", "CNAME"},
		StaleTTL: time.Hour, NotFoundTTL: 30 * time.Second, ErrorTTL: time.Second, CacheSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolverCachesWithTTL(t *testing.T) {
	z := dnstest.Start(t)
	z.Set(t, "a.test. 1 IN A 127.0.0.2", "a.test. 1 IN A 127.0.0.3")
	r := testResolver(t, z)
	ctx := context.Background()
	ans, err := r.Resolve(ctx, "a.test.", false)
	if err != nil || len(ans.Records) != 2 {
		t.Fatalf("Resolve = %+v, %v; want two addresses", ans, err)
	}
	n := z.Queries()
	for range 10 {
		if _, err := r.Resolve(ctx, "a.test.", false); err != nil {
			t.Fatal(err)
		}
	}
	if z.Queries() != n {
		t.Errorf("%d queries for cached answers; want none", z.Queries()-n)
	}
	// SRV was asked first and had nothing; LAST is now A.
	z.Set(t, "a.test. 1 IN A 127.0.0.4")
	waitFor(t, "the changed answer after the TTL", func() bool {
		ans, err := r.Resolve(ctx, "a.test.", true)
		return err == nil && len(ans.Records) == 1 && ans.Records[0].Addr == netip.MustParseAddr("127.0.0.4")
	})
	// The nameserver fails: the stale answer is kept.
	z.SetFail(true)
	failing := z.Queries()
	waitFor(t, "the expired answer asked for again", func() bool {
		ans, err := r.Resolve(ctx, "a.test.", true)
		if err != nil || ans.Records[0].Addr != netip.MustParseAddr("127.0.0.4") {
			t.Fatalf("server failure: %+v, %v; want the stale answer", ans, err)
		}
		return z.Queries() > failing // the expired answer was asked for again
	})
}

func TestResolverNotFound(t *testing.T) {
	z := dnstest.Start(t)
	r := testResolver(t, z)
	_, err := r.Resolve(context.Background(), "missing.test.", false)
	var re *ResolveError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "DNS resolution failed: dns server error: 3 name error. Tried: [") {
		t.Errorf("NXDOMAIN: %v; want Kong's DNS resolution failed ... 3 name error", err)
	}
}

func TestExpandSRV(t *testing.T) {
	z := dnstest.Start(t)
	z.Set(t, "_s._tcp.srv.test. 5 IN SRV 10 30 7001 one.test.", "_s._tcp.srv.test. 5 IN SRV 10 10 0 two.test.",
		"_s._tcp.srv.test. 5 IN SRV 20 50 7003 backup.test.",
		"one.test. 5 IN A 127.0.0.11", "two.test. 5 IN A 127.0.0.12", "backup.test. 5 IN A 127.0.0.13")
	r := testResolver(t, z)
	as, _, err := r.Expand(context.Background(), Target{Name: "_s._tcp.srv.test:9000", Host: "_s._tcp.srv.test", Port: 9000, Weight: 100}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.11:7001/30", "127.0.0.12:9000/10"}
	var got []string
	for _, a := range as {
		got = append(got, a.Addr.String()+"/"+strconv.Itoa(a.Weight))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("SRV addresses %v; want %v (lowest priority, SRV ports and weights, port 0 -> target's)", got, want)
	}
	if as[0].Host != "_s._tcp.srv.test" {
		t.Errorf("host %q; want the target's without use_srv_name", as[0].Host)
	}
	as, _, err = r.Expand(context.Background(), Target{Name: "_s._tcp.srv.test:9000", Host: "_s._tcp.srv.test", Port: 9000, Weight: 100, UseSRVName: true}, false)
	if err != nil || len(as) != 2 || as[0].Host != "one.test" || as[1].Host != "two.test" {
		t.Errorf("with use_srv_name: %+v, %v; want the SRV records' names as hosts", as, err)
	}
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

func BenchmarkResolverCacheHit(b *testing.B) {
	z := dnstest.Start(b)
	z.Set(b, "a.test. 3600 IN A 127.0.0.2", "a.test. 3600 IN A 127.0.0.3")
	r := testResolver(b, z)
	ctx := context.Background()
	if _, err := r.ToIP(ctx, "a.test", 80); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ToIP(ctx, "a.test", 80); err != nil {
			b.Fatal(err)
		}
	}
}

// TestResolverCNAME: with CNAME in dns_order, an alias without address
// records resolves through its canonical name.
func TestResolverCNAME(t *testing.T) {
	z := dnstest.Start(t)
	z.Set(t, "alias.test. 30 IN CNAME real.test.", "real.test. 30 IN A 127.0.0.9")
	r := testResolver(t, z)
	ans, err := r.Resolve(context.Background(), "alias.test", false)
	if err != nil || len(ans.Records) != 1 || ans.Records[0].Addr != netip.MustParseAddr("127.0.0.9") {
		t.Fatalf("Resolve(alias) = %+v, %v; want the canonical name's address", ans, err)
	}
}

// TestResolverWaits: with dns_no_sync on each caller queries on its own;
// either way a caller stops waiting when its context ends.
func TestResolverWaits(t *testing.T) {
	z := dnstest.Start(t)
	z.Set(t, "a.test. 30 IN A 127.0.0.2")
	for _, noSync := range []bool{false, true} {
		r, err := NewResolver(ResolverConfig{Nameservers: []string{z.Addr}, Order: []string{"A"}, NoSync: noSync, CacheSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		if ans, err := r.Resolve(context.Background(), "a.test.", false); err != nil || len(ans.Records) != 1 {
			t.Fatalf("dns_no_sync %v: %+v, %v", noSync, ans, err)
		}
		z.SetMute(true)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err = r.Resolve(ctx, "b.test.", false)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("dns_no_sync %v, silent nameserver: %v; want the caller's deadline", noSync, err)
		}
		z.SetMute(false)
	}
}

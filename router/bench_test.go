package router

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
)

// benchRoutes returns n routes of six shapes: destination port, source
// ip, source CIDR, destination ip+port, exact SNI, and (compat) wildcard
// SNI or (traditional) SNI plus source CIDR.
func benchRoutes(n int, f Flavor) []*Route {
	routes := make([]*Route, n)
	for k := range routes {
		rt := &Route{ID: id(k + 1), Name: fmt.Sprintf("r%d", k), CreatedAt: int64(k), Protocols: []string{"tcp", "tls"}}
		switch k % 6 {
		case 0:
			rt.Destinations = eps(port(uint16(10000 + k)))
		case 1:
			rt.Sources = eps(ip(benchAddr(10, k).String()))
		case 2:
			rt.Sources = eps(ip(netip.PrefixFrom(benchAddr(11, k), 24).String()))
		case 3:
			rt.Destinations = eps(ipPort(benchAddr(12, k).String(), 443))
		case 4:
			rt.SNIs = []string{fmt.Sprintf("svc%d.example.com", k)}
		case 5:
			if f == TraditionalCompatible {
				rt.SNIs = []string{fmt.Sprintf("*.w%d.example.com", k)}
			} else {
				rt.SNIs = []string{fmt.Sprintf("a.w%d.example.com", k)}
				rt.Sources = eps(ip("13.0.0.0/8"))
			}
		}
		routes[k] = rt
	}
	return routes
}

func benchAddr(first byte, k int) netip.Addr {
	return netip.AddrFrom4([4]byte{first, byte(k >> 8), byte(k), 0})
}

// benchConns returns m connections, each aimed at one route of a set of n
// built by benchRoutes, spread over the whole set; every eighth one
// matches nothing.
func benchConns(n, m int) []ConnInfo {
	conns := make([]ConnInfo, m)
	for i := range conns {
		k := i * n / m
		ci := ConnInfo{
			Protocol: "tcp",
			Src:      netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(30000+i)),
			Dst:      netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), 1),
		}
		switch k % 6 {
		case 0:
			ci.Dst = netip.AddrPortFrom(ci.Dst.Addr(), uint16(10000+k))
		case 1:
			ci.Src = netip.AddrPortFrom(benchAddr(10, k), ci.Src.Port())
		case 2:
			ci.Src = netip.AddrPortFrom(benchAddr(11, k).Next(), ci.Src.Port())
		case 3:
			ci.Dst = netip.AddrPortFrom(benchAddr(12, k), 443)
		case 4:
			ci.Protocol, ci.SNI = "tls", fmt.Sprintf("svc%d.example.com", k)
		case 5:
			ci.Protocol, ci.SNI = "tls", fmt.Sprintf("a.w%d.example.com", k)
			ci.Src = netip.AddrPortFrom(netip.MustParseAddr("13.1.2.3"), ci.Src.Port())
		}
		if i%8 == 7 {
			ci.Protocol, ci.SNI = "tls", "nowhere.example.net"
			ci.Src = netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), ci.Src.Port())
			ci.Dst = netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), 1)
		}
		conns[i] = ci
	}
	return conns
}

// TestBenchConnsMatch makes sure the benchmark measures hits, not misses.
func TestBenchConnsMatch(t *testing.T) {
	for _, f := range flavors {
		r, err := New(benchRoutes(1000, f), Options{Flavor: f})
		if err != nil {
			t.Fatal(err)
		}
		for i, ci := range benchConns(1000, 256) {
			_, ok := r.Match(ci)
			if want := i%8 != 7; ok != want {
				t.Errorf("%s: Match(%+v) matched = %v; want %v", f, ci, ok, want)
			}
		}
	}
}

// BenchmarkMatch measures Match on 10, 1,000 and 10,000 routes, with the
// cache disabled (every lookup goes through the indexes) and with a warm
// cache.
func BenchmarkMatch(b *testing.B) {
	for _, f := range flavors {
		for _, n := range []int{10, 1000, 10000} {
			routes, conns := benchRoutes(n, f), benchConns(n, 1024)
			for _, cached := range []bool{false, true} {
				size, mode := -1, "uncached"
				if cached {
					size, mode = 0, "cached"
				}
				b.Run(fmt.Sprintf("%s/routes=%d/%s", f, n, mode), func(b *testing.B) {
					benchMatch(b, routes, conns, Options{Flavor: f, CacheSize: size})
				})
			}
		}
	}
}

// benchMatch measures Match over conns, in turn, once every connection
// has been matched (so a cache is warm) and the garbage of building the
// router collected.
func benchMatch(b *testing.B, routes []*Route, conns []ConnInfo, opts Options) {
	r, err := New(routes, opts)
	if err != nil {
		b.Fatal(err)
	}
	for _, ci := range conns {
		r.Match(ci)
	}
	runtime.GC()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Match(conns[i%len(conns)])
	}
}

func BenchmarkNew(b *testing.B) {
	for _, f := range flavors {
		routes := benchRoutes(10000, f)
		b.Run(fmt.Sprintf("%s/routes=10000", f), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(routes, Options{Flavor: f}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMatchParallel measures Match from many goroutines at once
// (1,000 routes), where the cache's lock is shared.
func BenchmarkMatchParallel(b *testing.B) {
	for _, f := range flavors {
		routes, conns := benchRoutes(1000, f), benchConns(1000, 1024)
		for _, size := range []int{-1, 0} {
			mode := "uncached"
			if size == 0 {
				mode = "cached"
			}
			b.Run(fmt.Sprintf("%s/%s", f, mode), func(b *testing.B) {
				r, err := New(routes, Options{Flavor: f, CacheSize: size})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						r.Match(conns[i%len(conns)])
					}
				})
			})
		}
	}
}

package router

import "testing"

// Connection facts used by the priority tests.
const (
	pSrc = "10.0.0.1:5000"
	pDst = "192.168.0.1:80"
	pSNI = "www.example.org"
)

func full() ConnInfo { return conn("tls", pSrc, pDst, pSNI) }

// TestTraditionalPriority covers §3.3: categories, age, buckets.
func TestTraditionalPriority(t *testing.T) {
	sni := []string{pSNI}
	src := eps(ip("10.0.0.1"))
	dst := eps(ip("192.168.0.1"))
	tests := []struct {
		name   string
		routes []*Route // named r1, r2, ... and aged in this order
		ci     ConnInfo
		want   string
	}{
		// Categories: SNI+SRC+DST > SNI+SRC > SNI+DST > SRC+DST > SNI > SRC > DST,
		// whatever the age.
		{"sni+src+dst over sni+src", []*Route{
			{SNIs: sni, Sources: src},
			{SNIs: sni, Sources: src, Destinations: dst},
		}, full(), "r2"},
		{"sni+src over sni+dst", []*Route{
			{SNIs: sni, Destinations: dst},
			{SNIs: sni, Sources: src},
		}, full(), "r2"},
		{"sni+dst over src+dst", []*Route{
			{Sources: src, Destinations: dst},
			{SNIs: sni, Destinations: dst},
		}, full(), "r2"},
		{"src+dst over sni", []*Route{
			{SNIs: sni},
			{Sources: src, Destinations: dst},
		}, full(), "r2"},
		{"sni over src", []*Route{
			{Sources: src},
			{SNIs: sni},
		}, full(), "r2"},
		{"src over dst", []*Route{
			{Destinations: dst},
			{Sources: src},
		}, full(), "r2"},
		{"higher category must match entirely", []*Route{
			{Destinations: dst},
			{Sources: src, Destinations: eps(port(81))},
		}, full(), "r1"},
		{"higher category with other sni", []*Route{
			{Sources: src},
			{SNIs: []string{"other.org"}, Sources: src},
		}, full(), "r1"},
		// Age inside a category.
		{"older first", []*Route{
			{Sources: eps(ip("10.0.0.0/8"))},
			{Sources: eps(ip("10.0.0.0/16"))},
		}, full(), "r1"},
		{"older first, created_at out of input order", []*Route{
			{Sources: eps(ip("10.0.0.0/8")), CreatedAt: 20},
			{Sources: eps(ip("10.0.0.0/16")), CreatedAt: 10},
		}, full(), "r2"},
		{"same age keeps input order", []*Route{
			{Sources: eps(ip("10.0.0.0/16")), CreatedAt: 5},
			{Sources: eps(ip("10.0.0.0/8")), CreatedAt: 5},
		}, full(), "r1"},
		// Buckets: a route hit by the index goes before older ones.
		{"ip bucket before older cidr", []*Route{
			{Sources: eps(ip("10.0.0.0/8"))},
			{Sources: src},
		}, full(), "r2"},
		{"port bucket before older cidr", []*Route{
			{Sources: eps(ip("10.0.0.0/8"))},
			{Sources: eps(port(5000))},
		}, full(), "r2"},
		{"ip bucket shadows the port bucket", []*Route{
			{Sources: eps(ip("10.0.0.1"))},
			{Sources: eps(port(5000))},
		}, full(), "r1"},
		{"ip+port routes first in a bucket", []*Route{
			{Sources: eps(ip("10.0.0.1"))},
			{Sources: eps(ipPort("10.0.0.1", 5000))},
		}, full(), "r2"},
		{"ip+port entry anywhere in the route counts", []*Route{
			{Sources: eps(port(5000))},
			{Sources: eps(port(5000), ipPort("10.9.9.9", 1))},
		}, full(), "r2"},
		{"cidr+port routes first in a port bucket", []*Route{
			{Sources: eps(port(5000))},
			{Sources: eps(ipPort("10.0.0.0/8", 5000))},
		}, full(), "r2"},
		{"cidr text is never an ip bucket", []*Route{
			{Sources: eps(port(5000))},
			{Sources: eps(ip("10.0.0.1/32"))},
		}, full(), "r1"},
		{"bucket miss falls back to age order", []*Route{
			{Sources: eps(ip("10.0.0.0/8"))},
			{Sources: eps(ipPort("10.0.0.1", 6000))},
		}, full(), "r1"},
		{"smallest bucket wins", []*Route{
			{Sources: src, Destinations: eps(port(80))},
			{Sources: eps(ip("10.0.0.0/8")), Destinations: dst},
			{Sources: src, Destinations: eps(port(9))},
		}, full(), "r2"},
		{"equal buckets: sources before destinations", []*Route{
			{Sources: src, Destinations: eps(port(80))},
			{Sources: eps(ip("10.0.0.0/8")), Destinations: dst},
		}, full(), "r1"},
		{"equal buckets: sni first", []*Route{
			{SNIs: sni, Sources: eps(ip("10.0.0.0/8"))},
			{SNIs: []string{"x.org"}, Sources: src},
			{SNIs: sni, Sources: src},
		}, full(), "r1"},
		{"destination buckets", []*Route{
			{Destinations: eps(ip("192.168.0.0/16"))},
			{Destinations: eps(port(80))},
			{Destinations: eps(ipPort("192.168.0.1", 80))},
		}, full(), "r3"},
		{"no match", []*Route{
			{Sources: eps(ip("10.0.0.2"))},
			{SNIs: []string{"x.org"}},
		}, full(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t, Traditional, 0, tt.routes...)
			for range 2 {
				if got := name(r, tt.ci); got != tt.want {
					t.Fatalf("Match(%+v) = %q; want %q", tt.ci, got, tt.want)
				}
			}
		})
	}
}

// TestCompatPriority covers §3.4: the priority bits of transform.lua
// stream_get_priority and the UUID tie-break.
func TestCompatPriority(t *testing.T) {
	sni := []string{pSNI}
	src := eps(ip("10.0.0.1"))
	dst := eps(ip("192.168.0.1"))
	tests := []struct {
		name   string
		routes []*Route // ids ascending in this order unless set
		ci     ConnInfo
		want   string
	}{
		{"sni over src", []*Route{
			{Sources: src},
			{SNIs: sni},
		}, full(), "r2"},
		{"sni and src+dst share the top bit, src bits decide", []*Route{
			{SNIs: sni},
			{Sources: src, Destinations: dst},
		}, full(), "r2"},
		{"src+dst over sni even with a lower uuid", []*Route{
			{Sources: src, Destinations: dst, ID: id(1)},
			{SNIs: sni, ID: id(2)},
		}, full(), "r1"},
		{"src+dst over sni+dst", []*Route{
			{SNIs: sni, Destinations: dst, ID: id(9)},
			{Sources: src, Destinations: dst, ID: id(1)},
		}, full(), "r2"},
		{"sni+src over sni+dst", []*Route{
			{SNIs: sni, Destinations: eps(ipPort("192.168.0.1", 80)), ID: id(9)},
			{SNIs: sni, Sources: eps(ip("10.0.0.0/8")), ID: id(1)},
		}, full(), "r2"},
		{"exact and wildcard sni tie, uuid decides", []*Route{
			{SNIs: sni, ID: id(1)},
			{SNIs: []string{"*.example.org"}, ID: id(2)},
		}, full(), "r2"},
		{"src over dst", []*Route{
			{Destinations: eps(ipPort("192.168.0.1", 80)), ID: id(9)},
			{Sources: eps(ip("10.0.0.0/8")), ID: id(1)},
		}, full(), "r2"},
		{"ip over port", []*Route{
			{Sources: eps(port(5000)), ID: id(9)},
			{Sources: src, ID: id(1)},
		}, full(), "r2"},
		{"port over cidr", []*Route{
			{Sources: eps(ip("10.0.0.0/8")), ID: id(9)},
			{Sources: eps(port(5000)), ID: id(1)},
		}, full(), "r2"},
		{"a /32 is a cidr", []*Route{
			{Sources: eps(ip("10.0.0.1/32")), ID: id(9)},
			{Sources: eps(port(5000)), ID: id(1)},
		}, full(), "r2"},
		{"ip+port over ip", []*Route{
			{Sources: src, ID: id(9)},
			{Sources: eps(ipPort("10.0.0.1", 5000)), ID: id(1)},
		}, full(), "r2"},
		{"bits of every entry count, not only the matching one", []*Route{
			{Sources: src, ID: id(9)},
			{Sources: eps(ip("10.0.0.1"), port(1)), ID: id(1)},
		}, full(), "r2"},
		{"dst ip over dst port", []*Route{
			{Destinations: eps(port(80)), ID: id(9)},
			{Destinations: dst, ID: id(1)},
		}, full(), "r2"},
		{"dst port over dst cidr", []*Route{
			{Destinations: eps(ip("192.168.0.0/16")), ID: id(9)},
			{Destinations: eps(port(80)), ID: id(1)},
		}, full(), "r2"},
		{"uuid descending on ties", []*Route{
			{Sources: eps(ip("10.0.0.0/8")), ID: id(1), CreatedAt: 1},
			{Sources: eps(ip("10.0.0.0/16")), ID: id(2), CreatedAt: 2},
		}, full(), "r2"},
		{"uuid compared as bytes", []*Route{
			{Sources: src, ID: "A0000000-0000-0000-0000-000000000000"},
			{Sources: src, ID: "9fffffff-ffff-ffff-ffff-ffffffffffff"},
		}, full(), "r1"},
		{"age does not matter", []*Route{
			{Sources: src, ID: id(1), CreatedAt: 1},
			{Sources: src, ID: id(2), CreatedAt: 100},
		}, full(), "r2"},
		{"higher priority must match entirely", []*Route{
			{Destinations: dst, ID: id(1)},
			{Sources: src, Destinations: eps(port(81)), ID: id(2)},
		}, full(), "r1"},
		{"ipv4 cidr canonicalised", []*Route{
			{Sources: eps(ip("10.200.0.1/8"))},
		}, full(), "r1"},
	}
	for _, f := range atcFlavors {
		for _, tt := range tests {
			t.Run(string(f)+"/"+tt.name, func(t *testing.T) {
				for _, rt := range tt.routes {
					rt.Name = "" // newRouter names them again for each flavor
				}
				r := newRouter(t, f, 0, tt.routes...)
				for range 2 {
					if got := name(r, tt.ci); got != tt.want {
						t.Fatalf("Match(%+v) = %q; want %q", tt.ci, got, tt.want)
					}
				}
			})
		}
	}
}

// TestFlavorsDiffer pins the cases where the two flavors disagree.
func TestFlavorsDiffer(t *testing.T) {
	tests := []struct {
		name        string
		routes      func() []*Route
		ci          ConnInfo
		trad, compa string
	}{
		{"sni+dst vs src+dst", func() []*Route {
			return []*Route{
				{SNIs: []string{pSNI}, Destinations: eps(ip("192.168.0.1"))},
				{Sources: eps(ip("10.0.0.1")), Destinations: eps(ip("192.168.0.1"))},
			}
		}, full(), "r1", "r2"},
		{"bucket vs priority bits", func() []*Route {
			return []*Route{
				{Sources: eps(ip("10.0.0.1")), Destinations: eps(port(80))},
				{Sources: eps(ip("10.0.0.0/8")), Destinations: eps(ip("192.168.0.1"))},
				{Sources: eps(ip("10.0.0.1")), Destinations: eps(port(9))},
			}
		}, full(), "r2", "r1"},
		{"age vs uuid", func() []*Route {
			return []*Route{
				{Sources: eps(ip("10.0.0.0/8")), ID: id(1)},
				{Sources: eps(ip("10.0.0.0/16")), ID: id(2)},
			}
		}, full(), "r1", "r2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range flavors {
				want := tt.trad
				if f == TraditionalCompatible {
					want = tt.compa
				}
				r := newRouter(t, f, 0, tt.routes()...)
				if got := name(r, tt.ci); got != want {
					t.Errorf("%s: Match(%+v) = %q; want %q", f, tt.ci, got, want)
				}
			}
		})
	}
}

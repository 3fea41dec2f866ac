package router

import "testing"

// The "#stream context" cases of Kong's spec/01-unit/08-router_spec.lua,
// for the three flavors, as Kong's spec runs them. Kong's select() leaves a missing port nil, which no
// port condition matches; ports that no route uses stand in for it here.

func specSources() []*Route {
	return []*Route{
		{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8101", Name: "1", Protocols: []string{"tcp"},
			Sources: eps(ip("127.0.0.1"), ip("127.0.0.2"))},
		{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8102", Name: "2", Protocols: []string{"tcp"},
			Sources: eps(port(65001), port(65002))},
		{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8103", Name: "3", Protocols: []string{"tcp"},
			Sources: eps(ip("127.168.0.0/8"))},
		{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8104", Name: "4", Protocols: []string{"tcp"},
			Sources: eps(ipPort("127.0.0.1", 65001))},
		{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8105", Name: "5", Protocols: []string{"tcp"},
			Sources: eps(ipPort("127.0.0.2", 65300), ipPort("127.168.0.0/16", 65301))},
	}
}

// specDestinations is specSources with the entries as destinations.
func specDestinations() []*Route {
	routes := specSources()
	for _, rt := range routes {
		rt.Sources, rt.Destinations = nil, rt.Sources
	}
	return routes
}

func TestKongSpecSources(t *testing.T) {
	cases := []matchCase{
		{"[src_ip]", fromSrc("127.0.0.1:1"), "1"},
		{"[src_port]", fromSrc("127.0.0.3:65001"), "2"},
		{"[src_ip] range match", fromSrc("127.168.0.1:1"), "3"},
		{"[src_ip] + [src_port]", fromSrc("127.0.0.1:65001"), "4"},
		{"[src_ip] range match + [src_port]", fromSrc("127.168.10.1:65301"), "5"},
		{"[src_ip] no match", fromSrc("10.0.0.1:1"), ""},
		{"[src_ip] no match with port", fromSrc("10.0.0.2:65301"), ""},
	}
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			check(t, newRouter(t, f, 0, specSources()...), cases)
		})
	}
}

func TestKongSpecDestinations(t *testing.T) {
	cases := []matchCase{
		{"[dst_ip]", toDst("127.0.0.1:1"), "1"},
		{"[dst_port]", toDst("127.0.0.3:65001"), "2"},
		{"[dst_ip] range match", toDst("127.168.0.1:1"), "3"},
		{"[dst_ip] + [dst_port]", toDst("127.0.0.1:65001"), "4"},
		{"[dst_ip] range match + [dst_port]", toDst("127.168.10.1:65301"), "5"},
		{"[dst_ip] no match", toDst("10.0.0.1:1"), ""},
		{"[dst_ip] no match with port", toDst("10.0.0.2:65301"), ""},
	}
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			check(t, newRouter(t, f, 0, specDestinations()...), cases)
		})
	}
}

// "[sni]" is traditional-only in Kong's spec because its route has no
// protocols there; with a stream protocol compat matches too.
func TestKongSpecSNI(t *testing.T) {
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			r := newRouter(t, f, 0, &Route{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8101", Name: "1",
				Protocols: []string{"tls"}, SNIs: []string{"www.example.org"}})
			check(t, r, []matchCase{{"[sni]", tls("www.example.org"), "1"}})
		})
	}
}

func TestKongSpecSNIPriority(t *testing.T) {
	routes := func() []*Route {
		return []*Route{
			{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8101", Name: "1", Protocols: []string{"tls"},
				SNIs: []string{"www.example.org"}},
			{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8102", Name: "2", Protocols: []string{"tls"},
				Sources: eps(ip("127.0.0.1"))},
			{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8103", Name: "3", Protocols: []string{"tls"},
				Destinations: eps(ip("172.168.0.1"))},
		}
	}
	// Kong's spec passes scheme "tcp" with an SNI: traditional still
	// checks the SNI, compat skips it, and route 1 wins either way.
	cases := []matchCase{
		{"[sni] has higher priority than [src]", conn("tcp", "127.0.0.1:1", anyDst, "www.example.org"), "1"},
		{"[sni] has higher priority than [dst]", conn("tcp", anySrc, "172.168.0.1:1", "www.example.org"), "1"},
		{"[sni] over [src] with tls", conn("tls", "127.0.0.1:1", anyDst, "www.example.org"), "1"},
	}
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			check(t, newRouter(t, f, 0, routes()...), cases)
		})
	}
}

func TestKongSpecSrcDstPriority(t *testing.T) {
	routes := func() []*Route {
		return []*Route{
			{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8101", Name: "1", Protocols: []string{"tls"},
				SNIs: []string{"www.example.org"}},
			{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8102", Name: "2", Protocols: []string{"tls"},
				Sources: eps(ip("127.0.0.1")), Destinations: eps(ip("172.168.0.1"))},
		}
	}
	cases := []matchCase{
		{"[src] + [dst] has higher priority than [sni]", conn("tcp", "127.0.0.1:1", "172.168.0.1:1", "www.example.org"), "2"},
		{"[src] + [dst] over [sni] with tls", conn("tls", "127.0.0.1:1", "172.168.0.1:1", "www.example.org"), "2"},
	}
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			check(t, newRouter(t, f, 0, routes()...), cases)
		})
	}
}

func TestKongSpecTLSPassthrough(t *testing.T) {
	routes := func() []*Route {
		return []*Route{
			{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8101", Name: "1", Protocols: []string{"tls_passthrough"},
				SNIs: []string{"www.example.com"}},
			{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8102", Name: "2", Protocols: []string{"tls_passthrough"},
				SNIs: []string{"www.example.org"}},
		}
	}
	cases := []matchCase{
		{"preread sni www.example.com", tls("www.example.com"), "1"},
		{"preread sni www.example.org", tls("www.example.org"), "2"},
	}
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			check(t, newRouter(t, f, 0, routes()...), cases)
		})
	}
}

// "check empty route fields": Kong checks the generated expression; here
// the route built from it must match what the expression matches.
func TestKongSpecEmptyFields(t *testing.T) {
	base := func() *Route {
		return &Route{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8101", Name: "1", Protocols: []string{"tls"},
			SNIs: []string{"www.example.org"}, Sources: eps(ip("127.0.0.1"))}
	}
	tests := []struct {
		name  string
		edit  func(*Route)
		cases []matchCase
	}{
		{"empty snis", func(rt *Route) { rt.SNIs = []string{} }, []matchCase{
			{"src", conn("tls", "127.0.0.1:1", anyDst, "other.org"), "1"},
		}},
		{"empty snis and src cidr", func(rt *Route) {
			rt.SNIs = nil
			rt.Sources = eps(ip("127.168.0.1/8"))
		}, []matchCase{
			{"in 127.0.0.0/8", fromSrc("127.0.0.9:1"), "1"},
			{"outside", fromSrc("128.0.0.1:1"), ""},
		}},
		{"empty snis and dst cidr", func(rt *Route) {
			rt.SNIs = nil
			rt.Destinations = eps(ip("192.168.0.1/16"))
		}, []matchCase{
			{"both", tcp("127.0.0.1:1", "192.168.7.7:1"), "1"},
			{"dst outside", tcp("127.0.0.1:1", "192.169.0.1:1"), ""},
		}},
		{"empty sources", func(rt *Route) {
			rt.Sources = []Endpoint{}
			rt.Destinations = eps(ip("192.168.0.1/16"))
		}, []matchCase{
			{"sni and dst", conn("tls", anySrc, "192.168.1.1:1", "www.example.org"), "1"},
			// Kong's guard lets plain TCP skip the SNI; gong does not.
			{"tcp without sni", toDst("192.168.1.1:1"), ""},
			{"tls wrong sni", conn("tls", anySrc, "192.168.1.1:1", "x.org"), ""},
		}},
		{"empty destinations", func(rt *Route) { rt.Destinations = nil }, []matchCase{
			{"sni and src", conn("tls", "127.0.0.1:1", anyDst, "www.example.org"), "1"},
			{"tls wrong sni", conn("tls", "127.0.0.1:1", anyDst, "x.org"), ""},
		}},
	}
	for _, f := range atcFlavors {
		for _, tt := range tests {
			t.Run(string(f)+"/"+tt.name, func(t *testing.T) {
				rt := base()
				tt.edit(rt)
				check(t, newRouter(t, f, -1, rt), tt.cases)
			})
		}
	}
}

package pdk

import (
	"math"

	glua "github.com/yuin/gopher-lua"
)

// rewriteAccessBalancerPreread is service.lua's mask for set_target and
// the set_tls_* functions.
var rewriteAccessBalancerPreread = only(PhaseRewrite, PhaseAccess, PhaseBalancer, PhasePreread)

// serviceFuncs is kong.service (kong/pdk/service.lua). set_upstream is
// allowed in preread too, which Kong's access-only mask does not: it is
// how a stream plugin picks an upstream. The changes take effect when the
// session connects after preread. set_tls_cert_key and
// set_tls_verify_store take the objects of ssl.go in place of OpenSSL's.
var serviceFuncs = []Func{
	{"set_upstream", only(PhaseAccess, PhasePreread), serviceSetUpstream},
	{"set_target", rewriteAccessBalancerPreread, serviceSetTarget},
	{"set_tls_verify", rewriteAccessBalancerPreread, serviceSetTLSVerify},
	{"set_tls_verify_depth", rewriteAccessBalancerPreread, serviceSetTLSVerifyDepth},
	{"set_tls_cert_key", rewriteAccessBalancerPreread, serviceSetTLSCertKey},
	{"set_tls_verify_store", rewriteAccessBalancerPreread, serviceSetTLSVerifyStore},
}

// serviceRequestFuncs is kong.service.request in stream: disable_tls only
// (kong/pdk/service/request.lua's stream variant).
var serviceRequestFuncs = []Func{
	{"disable_tls", only(PhasePreread, PhaseBalancer), serviceDisableTLS},
}

// serviceResponseFuncs is kong.service.response in stream: get_status,
// which is nil since stream has no $upstream_status.
var serviceResponseFuncs = []Func{
	{"get_status", only(PhaseHeaderFilter, PhaseResponse, PhaseBodyFilter, PhaseLog), func(L *glua.LState, _ *State) int {
		L.Push(glua.LNil)
		return 1
	}},
}

// sessionState returns the bound State with a session, raising "no
// request found" without one.
func sessionState(L *glua.LState, s *State) *State {
	if s == nil || s.Session == nil {
		L.RaiseError("no request found")
	}
	return s
}

func serviceSetUpstream(L *glua.LState, s *State) int {
	host, ok := L.Get(1).(glua.LString)
	if !ok {
		L.RaiseError("host must be a string")
	}
	s = sessionState(L, s)
	if !s.Session.UpstreamExists(string(host)) {
		return pushErr(L, "could not find an Upstream named '"+string(host)+"'")
	}
	s.Upstream.Upstream, s.Upstream.Host, s.Upstream.Port = string(host), "", 0
	s.setBalancerField(L, "host", host)
	L.Push(glua.LTrue)
	return 1
}

func serviceSetTarget(L *glua.LState, s *State) int {
	host, ok := L.Get(1).(glua.LString)
	if !ok {
		L.RaiseError("host must be a string")
	}
	port, ok := L.Get(2).(glua.LNumber)
	if !ok || math.Floor(float64(port)) != float64(port) {
		L.RaiseError("port must be an integer")
	}
	if port < 0 || port > 65535 {
		L.RaiseError("port must be an integer between 0 and 65535: given %s", tostringValue(L, port))
	}
	s = sessionState(L, s)
	s.Upstream.Host, s.Upstream.Port, s.Upstream.Upstream = string(host), int(port), ""
	s.setBalancerField(L, "host", host)
	s.setBalancerField(L, "port", port)
	return 0
}

func serviceSetTLSVerify(L *glua.LState, s *State) int {
	on, ok := L.Get(1).(glua.LBool)
	if !ok {
		L.RaiseError("argument must be a boolean")
	}
	s = sessionState(L, s)
	v := bool(on)
	s.Upstream.TLSVerify = &v
	L.Push(glua.LTrue)
	return 1
}

func serviceSetTLSVerifyDepth(L *glua.LState, s *State) int {
	depth, ok := L.Get(1).(glua.LNumber)
	if !ok {
		L.RaiseError("argument must be a number")
	}
	s = sessionState(L, s)
	if depth < 0 {
		return pushErr(L, "depth must be a non-negative integer")
	}
	d := int(depth)
	s.Upstream.TLSVerifyDepth = &d
	L.Push(glua.LTrue)
	return 1
}

func serviceDisableTLS(L *glua.LState, s *State) int {
	sessionState(L, s).Upstream.DisableTLS = true
	L.Push(glua.LTrue)
	return 1
}

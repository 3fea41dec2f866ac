package pdk

import (
	"strconv"

	glua "github.com/yuin/gopher-lua"
)

// authAndLater is client.lua's AUTH_AND_LATER mask.
var authAndLater = only(PhaseAccess, PhaseHeaderFilter, PhaseResponse, PhaseBodyFilter, PhaseLog)

// clientFuncs is kong.client (kong/pdk/client.lua) in stream; client.tls
// exists only in http.
var clientFuncs = []Func{
	{"get_ip", notIn(PhaseInitWorker), clientGetIP},
	{"get_forwarded_ip", notIn(PhaseInitWorker), clientGetForwardedIP},
	{"get_port", notIn(PhaseInitWorker), clientGetPort},
	{"get_forwarded_port", notIn(PhaseInitWorker), clientGetForwardedPort},
	{"get_credential", authAndLater, clientCtxField("authenticated_credential")},
	{"get_consumer", authAndLater, clientCtxField("authenticated_consumer")},
	{"get_protocol", authAndLater, clientGetProtocol},
	{"load_consumer", authAndLater, clientLoadConsumer},
}

// clientCtxField returns ngx.ctx[name]: stream has no authentication
// phase, so only a plugin that set it finds a value.
func clientCtxField(name string) func(*glua.LState, *State) int {
	return func(L *glua.LState, s *State) int {
		if s == nil || s.ngxCtx == nil {
			L.Push(glua.LNil)
			return 1
		}
		L.Push(s.ngxCtx.RawGetString(name))
		return 1
	}
}

// sessionVar reads a variable of the bound session; without one it raises
// lua-resty-core's "no request found".
func sessionVar(L *glua.LState, s *State, name string) (string, bool) {
	if s == nil || s.Session == nil {
		L.RaiseError("no request found")
	}
	return s.Session.Var(name)
}

// pushVar pushes a variable, nil when unset.
func pushVar(L *glua.LState, v string, ok bool) int {
	if !ok {
		L.Push(glua.LNil)
	} else {
		L.Push(glua.LString(v))
	}
	return 1
}

// pushPort pushes tonumber(v): nil when unset or not a number.
func pushPort(L *glua.LState, v string, ok bool) int {
	n, err := strconv.ParseFloat(v, 64)
	if !ok || err != nil {
		L.Push(glua.LNil)
	} else {
		L.Push(glua.LNumber(n))
	}
	return 1
}

// clientAddrVar picks remote_<x> when TLS was terminated here, else
// realip_remote_<x> or remote_<x>: the directly connected peer.
func clientAddrVar(L *glua.LState, s *State, x string) (string, bool) {
	if s == nil || s.Session == nil {
		L.RaiseError("no request found")
	}
	return ClientAddr(s.Session, x)
}

// ClientAddr is kong.client.get_ip's ("addr") or get_port's ("port")
// answer for a session, as a string: remote_<x> when TLS was terminated
// or passed through (Kong's sessions then come over an inner
// PROXY-protocol hop, so its client.lua answers remote_<x>), else
// realip_remote_<x>, the connection's own peer even when a trusted PROXY
// header named another client (that one is get_forwarded_ip's), or
// remote_<x>. ssl_protocol is unset without TLS, as in nginx.
func ClientAddr(sess Session, x string) (string, bool) {
	if v, _ := sess.Var("kong_tls_passthrough_block"); v == "1" {
		return sess.Var("remote_" + x)
	}
	if _, tls := sess.Var("ssl_protocol"); tls {
		return sess.Var("remote_" + x)
	}
	if v, ok := sess.Var("realip_remote_" + x); ok {
		return v, true
	}
	return sess.Var("remote_" + x)
}

func clientGetIP(L *glua.LState, s *State) int {
	v, ok := clientAddrVar(L, s, "addr")
	return pushVar(L, v, ok)
}

func clientGetForwardedIP(L *glua.LState, s *State) int {
	v, ok := sessionVar(L, s, "remote_addr")
	return pushVar(L, v, ok)
}

func clientGetPort(L *glua.LState, s *State) int {
	v, ok := clientAddrVar(L, s, "port")
	return pushPort(L, v, ok)
}

func clientGetForwardedPort(L *glua.LState, s *State) int {
	v, ok := sessionVar(L, s, "remote_port")
	return pushPort(L, v, ok)
}

// clientGetProtocol ignores allow_terminated: it matters only for https.
func clientGetProtocol(L *glua.LState, s *State) int {
	if s == nil || s.Session == nil || s.Session.Protocol() == "" {
		return pushErr(L, "No active route found")
	}
	L.Push(glua.LString(s.Session.Protocol()))
	return 1
}

// clientLoadConsumer is kong.client.load_consumer(id, search_by_username):
// the consumer entity with that id, else, when asked, with that username;
// nil when there is none.
func clientLoadConsumer(L *glua.LState, _ *State) int {
	id, ok := L.Get(1).(glua.LString)
	if !ok {
		L.RaiseError("consumer_id must be a string")
	}
	byUsername := glua.LVAsBool(L.Get(2))
	isUUID := uuidPattern.MatchString(string(id))
	if !isUUID && !byUsername {
		L.RaiseError("cannot load a consumer with an id that is not a uuid")
	}
	opts := BindingOf(L).opts
	var c map[string]any
	if opts.Consumer != nil {
		if isUUID {
			c = opts.Consumer(string(id), false)
		}
		if c == nil && byUsername {
			c = opts.Consumer(string(id), true)
		}
	}
	if c == nil {
		L.Push(glua.LNil)
		return 1
	}
	L.Push(toLua(L, c, nil))
	return 1
}

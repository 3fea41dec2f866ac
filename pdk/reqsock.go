package pdk

import (
	"bufio"
	"errors"
	"net"

	glua "github.com/yuin/gopher-lua"
)

// Downstream is implemented by sessions whose client bytes preread
// handlers may read through ngx.req.socket: TCP connections (TLS ones
// after termination).
type Downstream interface {
	// ReqSocket returns the client connection and the reader preread
	// handlers read it through, created on the first call. What the
	// reader holds unconsumed when preread ends is proxied first; its
	// size is the preread buffer's. conn is nil when the session has no
	// stream to read (UDP).
	ReqSocket() (conn net.Conn, r *bufio.Reader)
}

const reqSocketType = "gong.pdk.socket.req"

// openReq builds ngx.req with socket() and start_time().
func (p *pdk) openReq(L *glua.LState) *glua.LTable {
	mt := L.NewTypeMetatable(reqSocketType)
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"settimeout":   tcpSetTimeout,
		"settimeouts":  tcpSetTimeouts,
		"peek":         p.reqPeek,
		"receive":      p.reqConsuming(p.tcpReceive),
		"receiveany":   p.reqConsuming(p.tcpReceiveAny),
		"receiveuntil": p.reqConsuming(p.tcpReceiveUntil),
	}))
	return L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		// start_time is when the session began, in seconds with
		// milliseconds, as stream-lua's.
		"start_time": func(L *glua.LState) int {
			s := p.b.State
			if s == nil || s.Session == nil {
				L.RaiseError("no request found")
			}
			var ms int64
			if rec := s.Session.Serialize(); rec != nil {
				ms = rec.StartedAt
			}
			L.Push(glua.LNumber(float64(ms) / 1000))
			return 1
		},
		"socket": func(L *glua.LState) int {
			s := p.b.State
			if s == nil || s.Session == nil {
				L.RaiseError("no request found")
			}
			if s.Phase != PhasePreread {
				L.RaiseError("API disabled in the context of %s", ngxContext(s.Phase))
			}
			ds, ok := s.Session.(Downstream)
			if !ok {
				return pushErr(L, "no downstream socket in this session")
			}
			conn, r := ds.ReqSocket()
			if conn == nil {
				return pushErr(L, "no downstream socket in this session")
			}
			ud := L.NewUserData()
			ud.Value = &tcpSocket{conn: conn, r: r, downstream: true}
			L.SetMetatable(ud, mt)
			L.Push(ud)
			return 1
		},
	})
}

// reqConsuming marks the request socket consumed before a receive, which
// forbids later peeks as stream-lua does.
func (p *pdk) reqConsuming(fn glua.LGFunction) glua.LGFunction {
	return func(L *glua.LState) int {
		checkTCP(L).consumed = true
		return fn(L)
	}
}

// reqPeek is reqsock:peek(size): the first size bytes of the client's
// stream, waiting until they arrive, without consuming them; repeated
// peeks start from the beginning again. It returns nil and "preread
// buffer full" beyond the preread buffer, or nil and an error.
func (p *pdk) reqPeek(L *glua.LState) int {
	s := checkTCP(L)
	p.checkYieldable(L)
	n := L.CheckInt(2)
	if n < 0 {
		L.ArgError(2, "bad size")
	}
	if s.consumed {
		L.RaiseError("attempt to peek on a consumed socket")
	}
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	done := s.beginRead(L)
	data, err := s.r.Peek(n)
	done()
	if errors.Is(err, bufio.ErrBufferFull) {
		return pushErr(L, "preread buffer full")
	}
	if err != nil {
		return pushErr(L, socketError(err))
	}
	L.Push(glua.LString(data))
	return 1
}

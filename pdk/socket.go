package pdk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/tlsmgr"
)

// Cosocket defaults: lua_socket_connect_timeout, lua_socket_send_timeout,
// lua_socket_read_timeout, lua_socket_keepalive_timeout and
// lua_socket_pool_size, and the UDP receive size.
const (
	defaultSocketTimeout   = 60 * time.Second
	defaultKeepaliveIdle   = 60 * time.Second
	defaultSocketPoolSize  = 256 // Kong's lua_socket_pool_size
	defaultUDPReceiveBytes = 8192
)

const (
	tcpSocketType = "gong.pdk.socket.tcp"
	udpSocketType = "gong.pdk.socket.udp"
)

// openSocket builds ngx.socket: tcp (also stream), udp and connect.
func (p *pdk) openSocket(L *glua.LState) *glua.LTable {
	tcpMT := L.NewTypeMetatable(tcpSocketType)
	L.SetField(tcpMT, "__index", L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"settimeout":     tcpSetTimeout,
		"settimeouts":    tcpSetTimeouts,
		"connect":        p.tcpConnect,
		"sslhandshake":   p.tcpSSLHandshake,
		"send":           p.tcpSend,
		"receive":        p.tcpReceive,
		"receiveany":     p.tcpReceiveAny,
		"receiveuntil":   p.tcpReceiveUntil,
		"close":          tcpClose,
		"setkeepalive":   p.tcpSetKeepalive,
		"getreusedtimes": tcpGetReusedTimes,
		"setoption":      tcpSetOption,
	}))
	udpMT := L.NewTypeMetatable(udpSocketType)
	L.SetField(udpMT, "__index", L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"settimeout":  udpSetTimeout,
		"setpeername": p.udpSetPeername,
		"send":        p.udpSend,
		"receive":     p.udpReceive,
		"close":       udpClose,
	}))
	newTCP := func(L *glua.LState) int {
		ud := L.NewUserData()
		s := &tcpSocket{}
		p.b.sockets = append(p.b.sockets, s)
		ud.Value = s
		L.SetMetatable(ud, tcpMT)
		L.Push(ud)
		return 1
	}
	sock := L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"tcp":    newTCP,
		"stream": newTCP,
		"udp": func(L *glua.LState) int {
			ud := L.NewUserData()
			s := &udpSocket{}
			p.b.sockets = append(p.b.sockets, s)
			ud.Value = s
			L.SetMetatable(ud, udpMT)
			L.Push(ud)
			return 1
		},
		// connect is ngx.socket.connect(host, port): a new tcp socket,
		// connected.
		"connect": func(L *glua.LState) int {
			newTCP(L)
			ud := L.Get(-1)
			L.Insert(ud, 1)
			L.Pop(1)
			n := p.tcpConnect(L)
			if n == 1 {
				L.Push(ud)
			}
			return n
		},
	})
	return sock
}

// socketPool returns the keepalive pool of the generation.
func (p *pdk) socketPool() *SocketPool {
	if p.opts.Sockets == nil {
		p.opts.Sockets = NewSocketPool()
	}
	return p.opts.Sockets
}

// checkYieldable raises stream-lua's error for cosocket I/O where nginx
// cannot wait: log, balancer and init_worker. Timers and code outside any
// request (module load) may use sockets.
func (p *pdk) checkYieldable(L *glua.LState) {
	s := p.b.State
	if s == nil || s.timer {
		return
	}
	switch s.Phase {
	case PhaseLog, PhaseBalancer, PhaseInitWorker:
		L.RaiseError("API disabled in the context of %s", ngxContext(s.Phase))
	}
}

// deadline is when an operation of timeout started now must end: the
// phase deadline if it comes first.
func deadline(L *glua.LState, timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if ctx := L.Context(); ctx != nil {
		if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
			d = cd
		}
	}
	return d
}

// watch makes a cancellation of the phase context interrupt conn's
// blocked I/O; call the result when the operation is over.
func watch(L *glua.LState, conn net.Conn) (stop func() bool) {
	ctx := L.Context()
	if ctx == nil {
		return func() bool { return true }
	}
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

// socketError is OpenResty's text for a failed socket operation.
func socketError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network is unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOENT):
		return "no such file or directory"
	}
	return err.Error()
}

// pushErr returns nil, msg to Lua.
func pushErr(L *glua.LState, msg string) int {
	L.Push(glua.LNil)
	L.Push(glua.LString(msg))
	return 2
}

// timeoutArg reads a millisecond timeout argument; nil or 0 keeps def.
func timeoutArg(L *glua.LState, n int, def time.Duration) time.Duration {
	v := L.Get(n)
	if v == glua.LNil {
		return def
	}
	ms, ok := v.(glua.LNumber)
	if !ok {
		L.ArgError(n, "number expected, got "+v.Type().String())
	}
	if ms < 0 {
		L.ArgError(n, "bad timeout value")
	}
	if ms == 0 {
		return def
	}
	return time.Duration(float64(ms) * float64(time.Millisecond))
}

// resolve turns a host name into an address to dial, as Kong's patched
// connect and setpeername do before the socket call.
func resolve(L *glua.LState, host string) (string, error) {
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return ip.String(), nil
	}
	addrs, err := net.DefaultResolver.LookupHost(callContext(L), host)
	if err != nil || len(addrs) == 0 {
		if err == nil {
			err = errors.New("no addresses")
		}
		var de *net.DNSError
		if errors.As(err, &de) {
			err = errors.New(de.Err)
		}
		return "", fmt.Errorf("[cosocket] DNS resolution failed: %v. Tried: [\"(short)%s:(na) - cache-miss\"]", err, host)
	}
	return addrs[0], nil
}

// tcpSocket is one ngx.socket.tcp object.
type tcpSocket struct {
	connectTimeout, sendTimeout, readTimeout time.Duration
	conn                                     net.Conn
	r                                        *bufio.Reader
	reused                                   int
	poolKey                                  string
	// downstream marks ngx.req.socket's object, and consumed that it was
	// read from.
	downstream, consumed bool
}

// release closes the connection if the lease ends with it open.
func (s *tcpSocket) release() {
	if s.conn != nil && !s.downstream {
		s.conn.Close()
		s.conn = nil
	}
}

func checkTCP(L *glua.LState) *tcpSocket {
	ud := L.CheckUserData(1)
	s, ok := ud.Value.(*tcpSocket)
	if !ok {
		L.ArgError(1, "expecting a tcp socket object")
	}
	return s
}

func (s *tcpSocket) timeouts() (c, w, r time.Duration) {
	c, w, r = s.connectTimeout, s.sendTimeout, s.readTimeout
	if c == 0 {
		c = defaultSocketTimeout
	}
	if w == 0 {
		w = defaultSocketTimeout
	}
	if r == 0 {
		r = defaultSocketTimeout
	}
	return c, w, r
}

// tcpSetTimeout is tcpsock:settimeout(ms): connect, send and read.
func tcpSetTimeout(L *glua.LState) int {
	s := checkTCP(L)
	t := timeoutArg(L, 2, 0)
	s.connectTimeout, s.sendTimeout, s.readTimeout = t, t, t
	return 0
}

// tcpSetTimeouts is tcpsock:settimeouts(connect, send, read) in ms.
func tcpSetTimeouts(L *glua.LState) int {
	s := checkTCP(L)
	s.connectTimeout = timeoutArg(L, 2, 0)
	s.sendTimeout = timeoutArg(L, 3, 0)
	s.readTimeout = timeoutArg(L, 4, 0)
	return 0
}

// tcpConnect is tcpsock:connect(host, port, opts?) or
// tcpsock:connect("unix:/path", opts?): a pooled connection for the same
// pool name (opts.pool, else "host:port") when there is one, else a new
// one. It returns 1, or nil and an error.
func (p *pdk) tcpConnect(L *glua.LState) int {
	s := checkTCP(L)
	p.checkYieldable(L)
	host := L.CheckString(2)
	network, addr, key := "tcp", "", ""
	optsIdx := 4
	if path, ok := strings.CutPrefix(host, "unix:"); ok {
		network, addr, key = "unix", path, host
		optsIdx = 3
	} else {
		pv := L.Get(3)
		port, ok := pv.(glua.LNumber)
		if !ok {
			if ps, isStr := pv.(glua.LString); isStr {
				n, err := strconv.Atoi(string(ps))
				ok, port = err == nil, glua.LNumber(n)
			}
		}
		if !ok {
			L.ArgError(3, "bad port number: "+pv.String())
		}
		if port < 0 || port > 65535 {
			return pushErr(L, fmt.Sprintf("bad port number: %d", int(port)))
		}
		key = host + ":" + strconv.Itoa(int(port))
		ip, err := resolve(L, host)
		if err != nil {
			return pushErr(L, err.Error())
		}
		addr = net.JoinHostPort(ip, strconv.Itoa(int(port)))
	}
	if opts, ok := L.Get(optsIdx).(*glua.LTable); ok {
		if name, ok := opts.RawGetString("pool").(glua.LString); ok {
			key = string(name)
		}
	}
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	if c, reused := p.socketPool().get(key); c != nil {
		s.conn, s.r, s.reused, s.poolKey = c.conn, c.r, reused, key
		L.Push(glua.LNumber(1))
		return 1
	}
	ct, _, _ := s.timeouts()
	d := net.Dialer{Deadline: deadline(L, ct)}
	conn, err := d.DialContext(callContext(L), network, addr)
	if err != nil {
		return pushErr(L, socketError(err))
	}
	s.conn, s.r, s.reused, s.poolKey = conn, bufio.NewReader(conn), 0, key
	L.Push(glua.LNumber(1))
	return 1
}

// tcpSSLHandshake is tcpsock:sslhandshake(reused_session?, server_name?,
// ssl_verify?): TLS over the connection, sending server_name as SNI and,
// with ssl_verify, checking the chain against lua_ssl_trusted_certificate
// (and the name when given). It returns a session object, true when
// reused_session is false, or nil and an error.
func (p *pdk) tcpSSLHandshake(L *glua.LState) int {
	s := checkTCP(L)
	p.checkYieldable(L)
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	serverName := ""
	if v, ok := L.Get(3).(glua.LString); ok {
		serverName = string(v)
	}
	verify := glua.LVAsBool(L.Get(4))
	var verifyErr error
	cfg := p.opts.cosocketTLS(serverName, verify, &verifyErr)
	tc := tls.Client(s.conn, cfg)
	_, _, rt := s.timeouts()
	tc.SetDeadline(deadline(L, rt))
	stop := watch(L, tc)
	err := tc.Handshake()
	stop()
	tc.SetDeadline(time.Time{})
	if err != nil {
		s.conn.Close()
		s.conn = nil
		if verifyErr != nil {
			return pushErr(L, "certificate verify failed: "+verifyErr.Error())
		}
		return pushErr(L, "handshake failed: "+socketError(err))
	}
	s.conn, s.r = tc, bufio.NewReader(tc)
	if v := L.Get(2); v == glua.LFalse {
		L.Push(glua.LTrue)
		return 1
	}
	sess := L.NewUserData()
	sess.Value = tc.ConnectionState()
	L.Push(sess)
	return 1
}

// sendData flattens send's argument: a string, number, boolean, nil, or
// an array table of those, nested.
func sendData(L *glua.LState, b *bytes.Buffer, v glua.LValue, depth int) {
	switch v := v.(type) {
	case glua.LString:
		b.WriteString(string(v))
	case glua.LNumber:
		b.WriteString(tostringValue(L, v))
	case glua.LBool, *glua.LNilType:
		b.WriteString(v.String())
	case *glua.LTable:
		if depth > 100 {
			L.RaiseError("table nested too deep")
		}
		for i := 1; i <= v.Len(); i++ {
			sendData(L, b, v.RawGetInt(i), depth+1)
		}
	default:
		L.ArgError(2, "string, number, boolean, nil, or array table expected, got "+v.Type().String())
	}
}

// tcpSend is tcpsock:send(data): the bytes sent, or nil and an error
// (which closes the socket).
func (p *pdk) tcpSend(L *glua.LState) int {
	s := checkTCP(L)
	p.checkYieldable(L)
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	var b bytes.Buffer
	sendData(L, &b, L.Get(2), 0)
	_, wt, _ := s.timeouts()
	s.conn.SetWriteDeadline(deadline(L, wt))
	stop := watch(L, s.conn)
	n, err := s.conn.Write(b.Bytes())
	stop()
	if err != nil {
		msg := socketError(err)
		if msg != "timeout" {
			s.conn.Close()
			s.conn = nil
		}
		return pushErr(L, msg)
	}
	L.Push(glua.LNumber(n))
	return 1
}

// readErr ends a failed receive: nil, err, partial. Errors other than a
// timeout close the socket, as in OpenResty.
func (s *tcpSocket) readErr(L *glua.LState, err error, partial []byte) int {
	msg := socketError(err)
	if msg != "timeout" && !s.downstream {
		s.conn.Close()
		s.conn = nil
	}
	L.Push(glua.LNil)
	L.Push(glua.LString(msg))
	L.Push(glua.LString(partial))
	return 3
}

// beginRead arms the read deadline; call the result when done.
func (s *tcpSocket) beginRead(L *glua.LState) func() bool {
	_, _, rt := s.timeouts()
	s.conn.SetReadDeadline(deadline(L, rt))
	return watch(L, s.conn)
}

// tcpReceive is tcpsock:receive(pattern?): "*l" (default) a line without
// its "\n" and "\r", "*a" everything until the peer closes, or a number of
// bytes. It returns the data, or nil, an error and the partial data.
func (p *pdk) tcpReceive(L *glua.LState) int {
	s := checkTCP(L)
	p.checkYieldable(L)
	if s.conn == nil {
		L.Push(glua.LNil)
		L.Push(glua.LString("closed"))
		L.Push(glua.LString(""))
		return 3
	}
	data, err := receive(L, s.r, s.beginRead(L))
	if err != nil {
		return s.readErr(L, err, data)
	}
	L.Push(glua.LString(data))
	return 1
}

// receive reads by the receive pattern at argument 2 from r, then calls
// done.
func receive(L *glua.LState, r *bufio.Reader, done func() bool) ([]byte, error) {
	defer done()
	switch pat := L.Get(2).(type) {
	case *glua.LNilType:
		return readLine(r)
	case glua.LNumber:
		if pat < 0 {
			L.ArgError(2, "bad pattern argument")
		}
		buf := make([]byte, int(pat))
		n, err := io.ReadFull(r, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return buf[:n], err
	case glua.LString:
		switch string(pat) {
		case "*l", "l":
			return readLine(r)
		case "*a", "a":
			data, err := io.ReadAll(r)
			return data, err
		}
		if n, err := strconv.Atoi(string(pat)); err == nil && n >= 0 {
			buf := make([]byte, n)
			m, err := io.ReadFull(r, buf)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			return buf[:m], err
		}
		L.ArgError(2, "bad pattern argument: "+string(pat))
	default:
		L.ArgError(2, "bad pattern argument")
	}
	return nil, nil
}

// readLine reads up to "\n" and drops it and every "\r", as OpenResty's
// "*l" does.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return bytes.ReplaceAll(line, []byte("\r"), nil), err
	}
	return bytes.ReplaceAll(line[:len(line)-1], []byte("\r"), nil), nil
}

// tcpReceiveAny is tcpsock:receiveany(max): what is available, at most
// max bytes, waiting for at least one.
func (p *pdk) tcpReceiveAny(L *glua.LState) int {
	s := checkTCP(L)
	p.checkYieldable(L)
	max := L.CheckInt(2)
	if max <= 0 {
		L.ArgError(2, "bad max argument")
	}
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	done := s.beginRead(L)
	buf := make([]byte, max)
	n, err := s.r.Read(buf)
	done()
	if err != nil {
		return s.readErr(L, err, nil)
	}
	L.Push(glua.LString(buf[:n]))
	return 1
}

// tcpReceiveUntil is tcpsock:receiveuntil(pattern, {inclusive=}): an
// iterator returning the data before the next pattern (with it when
// inclusive). Called with a size, it hands that data out in pieces of at
// most size bytes, then nil once at the pattern.
func (p *pdk) tcpReceiveUntil(L *glua.LState) int {
	s := checkTCP(L)
	pattern := []byte(L.CheckString(2))
	if len(pattern) == 0 {
		L.ArgError(2, "pattern is empty")
	}
	inclusive := false
	if opts, ok := L.Get(3).(*glua.LTable); ok {
		inclusive = glua.LVAsBool(opts.RawGetString("inclusive"))
	}
	var pending []byte
	var reading, ended bool
	L.Push(L.NewFunction(func(L *glua.LState) int {
		p.checkYieldable(L)
		size := 0
		if n, ok := L.Get(1).(glua.LNumber); ok {
			size = int(n)
		}
		if ended {
			ended = false
			L.Push(glua.LNil)
			return 1
		}
		if !reading {
			if s.conn == nil {
				return pushErr(L, "closed")
			}
			done := s.beginRead(L)
			data, err := readUntil(s.r, pattern, inclusive)
			done()
			if err != nil {
				return s.readErr(L, err, data)
			}
			pending, reading = data, true
		}
		if size <= 0 || size >= len(pending) {
			out := pending
			pending, reading = nil, false
			ended = size > 0
			L.Push(glua.LString(out))
			return 1
		}
		out := pending[:size]
		pending = pending[size:]
		L.Push(glua.LString(out))
		return 1
	}))
	return 1
}

// readUntil reads up to and including pattern and returns what precedes
// it (with it when inclusive).
func readUntil(r *bufio.Reader, pattern []byte, inclusive bool) ([]byte, error) {
	last := pattern[len(pattern)-1]
	var buf []byte
	for {
		chunk, err := r.ReadBytes(last)
		buf = append(buf, chunk...)
		if err != nil {
			return buf, err
		}
		if bytes.HasSuffix(buf, pattern) {
			if inclusive {
				return buf, nil
			}
			return buf[:len(buf)-len(pattern)], nil
		}
	}
}

// tcpClose is tcpsock:close(): 1, or nil and "closed".
func tcpClose(L *glua.LState) int {
	s := checkTCP(L)
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	err := s.conn.Close()
	s.conn = nil
	if err != nil {
		return pushErr(L, socketError(err))
	}
	L.Push(glua.LNumber(1))
	return 1
}

// tcpSetKeepalive is tcpsock:setkeepalive(timeout_ms?, size?): the
// connection goes to the generation's pool under its pool name, for
// timeout (0: no limit) with at most size idle connections per name; the
// object is closed for Lua.
func (p *pdk) tcpSetKeepalive(L *glua.LState) int {
	s := checkTCP(L)
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	idle := defaultKeepaliveIdle
	if v, ok := L.Get(2).(glua.LNumber); ok {
		if v < 0 {
			L.ArgError(2, "bad timeout value")
		}
		idle = time.Duration(float64(v) * float64(time.Millisecond))
		if v == 0 {
			idle = 0
		}
	}
	size := p.opts.socketPoolSize()
	if v, ok := L.Get(3).(glua.LNumber); ok {
		if v <= 0 {
			L.ArgError(3, "bad \"pool_size\" option value: "+v.String())
		}
		size = int(v)
	}
	conn, r := s.conn, s.r
	s.conn, s.r = nil, nil
	if r.Buffered() > 0 {
		conn.Close()
		return pushErr(L, "unread data in buffer")
	}
	conn.SetDeadline(time.Time{})
	p.socketPool().put(s.poolKey, &idleConn{conn: conn, r: r, reused: s.reused}, idle, size)
	L.Push(glua.LNumber(1))
	return 1
}

// tcpGetReusedTimes is tcpsock:getreusedtimes(): how many times the
// connection came out of the keepalive pool.
func tcpGetReusedTimes(L *glua.LState) int {
	s := checkTCP(L)
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	L.Push(glua.LNumber(s.reused))
	return 1
}

// tcpSetOption is tcpsock:setoption(option, value) for keepalive,
// reuseaddr, tcp-nodelay, sndbuf and rcvbuf.
func tcpSetOption(L *glua.LState) int {
	s := checkTCP(L)
	opt := L.CheckString(2)
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	tc, _ := s.conn.(*net.TCPConn)
	var err error
	switch opt {
	case "keepalive":
		if tc != nil {
			err = tc.SetKeepAlive(glua.LVAsBool(L.Get(3)))
		}
	case "tcp-nodelay":
		if tc != nil {
			err = tc.SetNoDelay(glua.LVAsBool(L.Get(3)))
		}
	case "sndbuf":
		if tc != nil {
			err = tc.SetWriteBuffer(L.CheckInt(3))
		}
	case "rcvbuf":
		if tc != nil {
			err = tc.SetReadBuffer(L.CheckInt(3))
		}
	case "reuseaddr":
	default:
		return pushErr(L, "unsupported option "+opt)
	}
	if err != nil {
		return pushErr(L, socketError(err))
	}
	L.Push(glua.LTrue)
	return 1
}

// udpSocket is one ngx.socket.udp object.
type udpSocket struct {
	timeout time.Duration
	conn    net.Conn
}

// release closes the socket if the lease ends with it open.
func (s *udpSocket) release() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

func checkUDP(L *glua.LState) *udpSocket {
	ud := L.CheckUserData(1)
	s, ok := ud.Value.(*udpSocket)
	if !ok {
		L.ArgError(1, "expecting a udp socket object")
	}
	return s
}

func (s *udpSocket) readTimeout() time.Duration {
	if s.timeout == 0 {
		return defaultSocketTimeout
	}
	return s.timeout
}

// udpSetTimeout is udpsock:settimeout(ms), for receive.
func udpSetTimeout(L *glua.LState) int {
	checkUDP(L).timeout = timeoutArg(L, 2, 0)
	return 0
}

// udpSetPeername is udpsock:setpeername(host, port) or
// ("unix:/path"): 1, or nil and an error.
func (p *pdk) udpSetPeername(L *glua.LState) int {
	s := checkUDP(L)
	p.checkYieldable(L)
	host := L.CheckString(2)
	network, addr := "udp", ""
	if path, ok := strings.CutPrefix(host, "unix:"); ok {
		network, addr = "unixgram", path
	} else {
		port := L.CheckInt(3)
		if port < 0 || port > 65535 {
			return pushErr(L, fmt.Sprintf("bad port number: %d", port))
		}
		ip, err := resolve(L, host)
		if err != nil {
			return pushErr(L, err.Error())
		}
		addr = net.JoinHostPort(ip, strconv.Itoa(port))
	}
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	conn, err := net.Dial(network, addr)
	if err != nil {
		return pushErr(L, socketError(err))
	}
	s.conn = conn
	L.Push(glua.LNumber(1))
	return 1
}

// udpSend is udpsock:send(data): one datagram; 1, or nil and an error.
func (p *pdk) udpSend(L *glua.LState) int {
	s := checkUDP(L)
	p.checkYieldable(L)
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	var b bytes.Buffer
	sendData(L, &b, L.Get(2), 0)
	if _, err := s.conn.Write(b.Bytes()); err != nil {
		return pushErr(L, socketError(err))
	}
	L.Push(glua.LNumber(1))
	return 1
}

// udpReceive is udpsock:receive(size?): one datagram of at most size
// bytes (8192 by default), or nil and an error.
func (p *pdk) udpReceive(L *glua.LState) int {
	s := checkUDP(L)
	p.checkYieldable(L)
	size := L.OptInt(2, defaultUDPReceiveBytes)
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	s.conn.SetReadDeadline(deadline(L, s.readTimeout()))
	stop := watch(L, s.conn)
	buf := make([]byte, size)
	n, err := s.conn.Read(buf)
	stop()
	if err != nil {
		return pushErr(L, socketError(err))
	}
	L.Push(glua.LString(buf[:n]))
	return 1
}

// udpClose is udpsock:close().
func udpClose(L *glua.LState) int {
	s := checkUDP(L)
	if s.conn == nil {
		return pushErr(L, "closed")
	}
	s.conn.Close()
	s.conn = nil
	L.Push(glua.LNumber(1))
	return 1
}

// SocketPool keeps the idle connections of tcpsock:setkeepalive, by pool
// name ("host:port" unless connect's opts.pool names one), for every VM
// of a generation. It is safe for concurrent use.
type SocketPool struct {
	mu     sync.Mutex
	idle   map[string][]*idleConn // most recently returned last
	closed bool
}

// idleConn is a pooled connection; a watcher goroutine closes it when the
// peer closes or sends while it waits, as nginx does.
type idleConn struct {
	conn    net.Conn
	r       *bufio.Reader
	reused  int
	expires *time.Timer
	watched chan error // the watcher's read result
}

// NewSocketPool returns an empty pool.
func NewSocketPool() *SocketPool {
	return &SocketPool{idle: map[string][]*idleConn{}}
}

// put parks c under key for idle (0: no limit), closing the oldest
// connection of key beyond size.
func (sp *SocketPool) put(key string, c *idleConn, idle time.Duration, size int) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		c.conn.Close()
		return
	}
	list := sp.idle[key]
	for len(list) >= size {
		list[0].close()
		list = list[1:]
	}
	c.watched = make(chan error, 1)
	go sp.watchIdle(key, c)
	if idle > 0 {
		c.expires = time.AfterFunc(idle, func() { sp.remove(key, c) })
	}
	sp.idle[key] = append(list, c)
}

// watchIdle waits for the peer to close or talk while c is pooled, and
// then drops it; get interrupts the wait with a past read deadline.
func (sp *SocketPool) watchIdle(key string, c *idleConn) {
	_, err := c.r.Peek(1)
	if err == nil {
		err = errors.New("unexpected data while idle")
	}
	c.watched <- err
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		sp.remove(key, c)
	}
}

func (c *idleConn) close() {
	if c.expires != nil {
		c.expires.Stop()
	}
	c.conn.Close()
}

// remove closes c if it is still pooled under key.
func (sp *SocketPool) remove(key string, c *idleConn) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	list := sp.idle[key]
	for i, x := range list {
		if x == c {
			sp.idle[key] = append(list[:i:i], list[i+1:]...)
			c.close()
			return
		}
	}
}

// get takes the most recent live idle connection of key and counts the
// reuse; nil when there is none.
func (sp *SocketPool) get(key string) (*idleConn, int) {
	for {
		sp.mu.Lock()
		list := sp.idle[key]
		if len(list) == 0 {
			sp.mu.Unlock()
			return nil, 0
		}
		c := list[len(list)-1]
		sp.idle[key] = list[:len(list)-1]
		sp.mu.Unlock()
		if c.expires != nil {
			c.expires.Stop()
		}
		c.conn.SetReadDeadline(time.Unix(1, 0))
		err := <-c.watched
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.conn.SetReadDeadline(time.Time{})
			c.reused++
			return c, c.reused
		}
		c.conn.Close() // the peer closed or spoke while idle
	}
}

// Idle returns the number of pooled connections under key.
func (sp *SocketPool) Idle(key string) int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return len(sp.idle[key])
}

// Close closes every pooled connection; later ones are closed at once.
func (sp *SocketPool) Close() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.closed = true
	for k, list := range sp.idle {
		for _, c := range list {
			c.close()
		}
		delete(sp.idle, k)
	}
}

// socketPoolSize is lua_socket_pool_size, or Kong's default.
func (o *Options) socketPoolSize() int {
	if o == nil || o.SocketPoolSize <= 0 {
		return defaultSocketPoolSize
	}
	return o.SocketPoolSize
}

// cosocketTLS is the client TLS of plugin sockets and resty.http:
// lua_ssl_protocols, and with verify the peer's chain checked against
// lua_ssl_trusted_certificate within lua_ssl_verify_depth, and its name
// when one is given. The verification error is kept in *verifyErr, so the
// caller can report it in OpenSSL's words.
func (o *Options) cosocketTLS(serverName string, verify bool, verifyErr *error) *tls.Config {
	cfg := &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // verified below, with or without a name
	}
	if o == nil {
		o = &Options{}
	}
	// lua_ssl_protocols is validated with the configuration.
	cfg.MinVersion, cfg.MaxVersion, _ = tlsmgr.VersionRange(o.SSLProtocols)
	if verify {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			err := tlsmgr.VerifyPeer(cs.PeerCertificates, o.TrustedCAs, serverName, o.SSLVerifyDepth)
			if verifyErr != nil {
				*verifyErr = err
			}
			return err
		}
	}
	return cfg
}

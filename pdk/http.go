package pdk

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"
)

const httpClientType = "gong.pdk.resty.http"

// openRestyHTTP is resty.http on Go's HTTP client, the part log plugins
// use: new, set_timeout(s), request_uri, parse_uri, set_keepalive and
// close. Connections are kept alive per VM and verified against
// lua_ssl_trusted_certificate when ssl_verify asks.
func openRestyHTTP(L *glua.LState) int {
	var opts *Options
	if b := BindingOf(L); b != nil {
		opts = b.opts
	}
	transports := map[bool]*http.Transport{}
	transport := func(verify bool) *http.Transport {
		if t, ok := transports[verify]; ok {
			return t
		}
		// With verify, crypto/tls checks the chain and the request's host
		// name, and cosocketTLS's check adds lua_ssl_verify_depth.
		cfg := opts.cosocketTLS("", verify, nil)
		if verify {
			cfg.InsecureSkipVerify = false
			if opts != nil {
				cfg.RootCAs = opts.TrustedCAs
			}
		}
		t := &http.Transport{
			Proxy:               nil,
			TLSClientConfig:     cfg,
			IdleConnTimeout:     defaultKeepaliveIdle,
			MaxIdleConnsPerHost: opts.socketPoolSize(),
		}
		transports[verify] = t
		return t
	}
	mt := L.NewTypeMetatable(httpClientType)
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"set_timeout": func(L *glua.LState) int {
			c := checkHTTP(L)
			t := timeoutArg(L, 2, defaultSocketTimeout)
			c.connect, c.send, c.read = t, t, t
			return 0
		},
		"set_timeouts": func(L *glua.LState) int {
			c := checkHTTP(L)
			c.connect = timeoutArg(L, 2, defaultSocketTimeout)
			c.send = timeoutArg(L, 3, defaultSocketTimeout)
			c.read = timeoutArg(L, 4, defaultSocketTimeout)
			return 0
		},
		"request_uri": func(L *glua.LState) int {
			return httpRequestURI(L, checkHTTP(L), transport)
		},
		"parse_uri":     httpParseURI,
		"set_keepalive": func(L *glua.LState) int { L.Push(glua.LNumber(1)); return 1 },
		"close":         func(L *glua.LState) int { L.Push(glua.LNumber(1)); return 1 },
	}))
	m := L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"new": func(L *glua.LState) int {
			ud := L.NewUserData()
			ud.Value = &httpClient{connect: defaultSocketTimeout, send: defaultSocketTimeout, read: defaultSocketTimeout}
			L.SetMetatable(ud, mt)
			L.Push(ud)
			return 1
		},
		"parse_uri": httpParseURI,
	})
	m.RawSetString("_VERSION", glua.LString("0.17.2"))
	L.Push(m)
	return 1
}

// httpClient is one resty.http object: its timeouts.
type httpClient struct {
	connect, send, read time.Duration
}

func checkHTTP(L *glua.LState) *httpClient {
	c, ok := L.CheckUserData(1).Value.(*httpClient)
	if !ok {
		L.ArgError(1, "expecting a resty.http object")
	}
	return c
}

// httpParseURI is httpc:parse_uri(uri): { scheme, host, port, path,
// query }, the port defaulted by scheme; or nil and an error.
func httpParseURI(L *glua.LState) int {
	s := L.CheckString(L.GetTop())
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return pushErr(L, "bad uri: "+s)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	n, _ := strconv.Atoi(port)
	t := L.NewTable()
	for i, v := range []glua.LValue{glua.LString(u.Scheme), glua.LString(u.Hostname()), glua.LNumber(n), glua.LString(u.EscapedPath()), glua.LString(u.RawQuery)} {
		t.RawSetInt(i+1, v)
	}
	if u.EscapedPath() == "" {
		t.RawSetInt(4, glua.LString("/"))
	}
	L.Push(t)
	return 1
}

// httpRequestURI is httpc:request_uri(uri, params): one request with
// params.method (GET), headers, body (a string, or an iterator function
// returning chunks), query and ssl_verify (true); the whole response as
// { status, reason, headers, body, has_body }, or nil and an error.
func httpRequestURI(L *glua.LState, c *httpClient, transport func(bool) *http.Transport) int {
	uri := L.CheckString(2)
	params, _ := L.Get(3).(*glua.LTable)
	str := func(k, def string) string {
		if params != nil {
			if v, ok := params.RawGetString(k).(glua.LString); ok {
				return string(v)
			}
		}
		return def
	}
	method := str("method", "GET")
	var body io.Reader
	if params != nil {
		switch b := params.RawGetString("body").(type) {
		case glua.LString:
			body = strings.NewReader(string(b))
		case *glua.LFunction:
			var sb strings.Builder
			for {
				L.Push(b)
				L.Call(0, 1)
				chunk := L.Get(-1)
				L.Pop(1)
				if chunk == glua.LNil {
					break
				}
				sb.WriteString(chunk.String())
			}
			body = strings.NewReader(sb.String())
		}
		switch q := params.RawGetString("query").(type) {
		case glua.LString:
			uri += "?" + string(q)
		case *glua.LTable:
			v := url.Values{}
			q.ForEach(func(k, val glua.LValue) { v.Add(k.String(), val.String()) })
			uri += "?" + v.Encode()
		}
	}
	verify := true
	if params != nil && params.RawGetString("ssl_verify") == glua.LFalse {
		verify = false
	}
	ctx, cancel := context.WithTimeout(callContext(L), c.connect+c.send+c.read)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, uri, body)
	if err != nil {
		return pushErr(L, err.Error())
	}
	if params != nil {
		if h, ok := params.RawGetString("headers").(*glua.LTable); ok {
			h.ForEach(func(k, v glua.LValue) {
				name := k.String()
				if vs, ok := v.(*glua.LTable); ok {
					for i := 1; i <= vs.Len(); i++ {
						req.Header.Add(name, vs.RawGetInt(i).String())
					}
					return
				}
				if strings.EqualFold(name, "host") {
					req.Host = v.String()
					return
				}
				req.Header.Set(name, v.String())
			})
		}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "lua-resty-http/0.17.2 (Lua) ngx_lua/20")
	}
	client := &http.Client{Transport: transport(verify)}
	res, err := client.Do(req)
	if err != nil {
		return pushErr(L, httpError(err))
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return pushErr(L, httpError(err))
	}
	t := L.NewTable()
	t.RawSetString("status", glua.LNumber(res.StatusCode))
	t.RawSetString("reason", glua.LString(strings.TrimPrefix(res.Status, strconv.Itoa(res.StatusCode)+" ")))
	t.RawSetString("body", glua.LString(data))
	t.RawSetString("has_body", glua.LTrue)
	t.RawSetString("headers", headerTable(L, res.Header))
	L.Push(t)
	return 1
}

// headerTable is a response's headers: one string per name, or a list
// when repeated, looked up case-insensitively as resty.http's are.
func headerTable(L *glua.LState, h http.Header) *glua.LTable {
	t := L.NewTable()
	for k, vs := range h {
		if len(vs) == 1 {
			t.RawSetString(k, glua.LString(vs[0]))
			continue
		}
		list := L.NewTable()
		for _, v := range vs {
			list.Append(glua.LString(v))
		}
		t.RawSetString(k, list)
	}
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *glua.LState) int {
		L.Push(L.CheckTable(1).RawGetString(textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(L.CheckString(2), "_", "-"))))
		return 1
	}))
	L.SetMetatable(t, mt)
	return t
}

// httpError is resty.http's text for a failed request.
func httpError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return socketError(err)
}

// callContext is the context L's current call runs under, or Background
// when it has none.
func callContext(L *glua.LState) context.Context {
	if ctx := L.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

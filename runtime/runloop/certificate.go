package runloop

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/stream"
)

// certificateHook is the CertificateHook of a set with certificate
// handlers.
func (ps *Plugins) certificateHook(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ctx, cancel := context.WithTimeout(hello.Context(), phaseTimeout)
	defer cancel()
	vm, err := ps.pool.Get(ctx)
	if err != nil {
		return nil, err
	}
	tr := stream.TraceOf(hello.Context())
	hs := &helloSession{hello: hello}
	err = ps.run(vm, &pdk.State{Session: hs}, pdk.PhaseCertificate, ps.certificate, func() bool { return hs.exited }, tr)
	if err != nil && isVMFailure(err) {
		ps.pool.Discard(vm)
	} else {
		ps.pool.Put(vm)
	}
	if err == nil && hs.exited && hs.status != 0 {
		err = fmt.Errorf("a certificate handler ended the handshake with ngx.exit(%d)", hs.status)
	}
	return nil, err
}

// helloSession is the pdk.Session of the certificate phase: the
// handshake's addresses and SNI, and an ngx.exit.
type helloSession struct {
	hello  *tls.ClientHelloInfo
	exited bool
	status int
}

func (h *helloSession) Var(name string) (string, bool) {
	addr := func(a net.Addr) (string, string) {
		host, port, _ := net.SplitHostPort(a.String())
		return host, port
	}
	switch name {
	case "ssl_server_name":
		return h.hello.ServerName, h.hello.ServerName != ""
	case "remote_addr", "realip_remote_addr":
		host, _ := addr(h.hello.Conn.RemoteAddr())
		return host, true
	case "remote_port", "realip_remote_port":
		_, port := addr(h.hello.Conn.RemoteAddr())
		return port, true
	case "server_addr":
		host, _ := addr(h.hello.Conn.LocalAddr())
		return host, true
	case "server_port":
		_, port := addr(h.hello.Conn.LocalAddr())
		return port, true
	}
	return "", false
}

func (*helloSession) Protocol() string                           { return "tls" }
func (*helloSession) Serialize() *pdk.LogRecord                  { return nil }
func (h *helloSession) Exit(status int, _ []byte)                { h.exited, h.status = true, status }
func (*helloSession) Entities() (map[string]any, map[string]any) { return nil, nil }
func (*helloSession) UpstreamExists(string) bool                 { return false }
func (*helloSession) Status() int                                { return 0 }

var _ pdk.Session = (*helloSession)(nil)

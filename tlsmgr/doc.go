// Package tlsmgr owns gong's downstream and upstream TLS material: the
// certificates selected by SNI with Kong's lookup order, the default
// certificates from kong.conf (or generated as Kong does), a bounded
// ClientHello read for ssl listeners, and the *tls.Config factories for
// termination (with a route's client certificate verification and ALPN,
// gong extensions) and for upstream TLS.
//
// It imports the standard library only; the runtime translates its
// entities and kong.conf settings into the plain types declared here.
// A Manager is immutable once New returns, so one is built per config
// generation and shared by every connection of that generation:
//
//	m, err := tlsmgr.New(tlsmgr.Options{Certs: certs, SNIs: snis, Default: defaults})
//	conn.SetDeadline(time.Now().Add(30 * time.Second))
//	tc, hello, err := tlsmgr.ReadClientHello(ctx, conn, 16<<10, func(h tlsmgr.Hello) *tls.Config {
//		return m.ServerConfig() // or nil, to replay hello.Raw elsewhere
//	})
package tlsmgr

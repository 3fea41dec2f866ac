package main

import (
	"crypto/tls"
	"net"
)

// tlsProxy is netProxy behind Go's TLS server: the handshake runs on the
// connection's goroutine at its first read, as crypto/tls does by
// itself. X25519 is the one key exchange, as in gong's bench/tls.sh row
// that sets nginx_stream_ssl_ecdh_curve to it, and session tickets are
// Go's own.
func tlsProxy(listen, upstream, certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	return relayAll(tls.NewListener(ln, &tls.Config{
		Certificates:     []tls.Certificate{cert},
		CurvePreferences: []tls.CurveID{tls.X25519},
	}), upstream)
}

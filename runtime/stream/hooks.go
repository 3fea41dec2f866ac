package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
)

// Hooks are what runs a session's plugins: the engine calls them at the
// points of a session's life where Kong runs its stream phases. One value
// serves every session of a Config; its methods run on the session's
// goroutine and may block it (never another session).
type Hooks interface {
	// Preread runs once the session is routed, before its upstream is
	// dialed. done ends the session there with status; otherwise the
	// session goes on to the service, as SetService may have changed it.
	Preread(s *Session) (status int, done bool)
	// Log runs when the session has ended, before its access-log line:
	// its Record is complete.
	Log(s *Session)
	// NoPlugins reports that Preread and Log do nothing for the sessions
	// of route (nil: the sessions no route matched) and return at once.
	// Only such sessions may run on the engine's event loops, where
	// nothing may block.
	NoPlugins(route *Route) bool
}

// ServiceChange is what a preread hook changed of a session's service
// (kong.service): the peer or upstream to balance over and upstream TLS
// settings. The zero value changes nothing.
type ServiceChange struct {
	// Host and Port are set_target's: Host may name an upstream entity.
	Host string
	Port int
	// Upstream is set_upstream's upstream name, balanced over its targets
	// at the service's port.
	Upstream string
	// TLSVerify and TLSVerifyDepth override the service's tls_verify and
	// tls_verify_depth; DisableTLS turns upstream TLS off.
	TLSVerify      *bool
	TLSVerifyDepth *int
	DisableTLS     bool
	// TLSClientCert and TLSRoots replace the service's client certificate
	// and trust store.
	TLSClientCert *tls.Certificate
	TLSRoots      *x509.CertPool
}

// Meter paces one direction of a session's relay: the relay reads that
// direction through Reader, with reads of at most a pooled buffer, and
// gives up the splice path for it. ctx ends when the relay does, so a
// read waiting for its bytes to be due returns then.
type Meter interface {
	Reader(ctx context.Context, r io.Reader) io.Reader
}

package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/runloop"
	"github.com/gong-proxy/gong/runtime/stream"
	"github.com/gong-proxy/gong/tlsmgr"
	"github.com/gong-proxy/gong/vault"
)

// rotation re-reads the vault references of a generation's certificates
// and plugin configs while it serves, as Kong's rotate_secrets timer
// does, and applies a changed secret in place: a certificate serves its
// new pair from the next handshake (to clients by SNI, and to upstreams
// as a service's client_certificate), a plugin's handlers see the new
// config from their next call. Whether a reference is read again is the
// resolver's business: after its vault's ttl, keeping the old value for
// resurrect_ttl when the read fails. Only the server's rotator goroutine
// calls rotate, so the fields need no lock.
type rotation struct {
	resolver *vault.Resolver
	plugins  *runloop.Plugins
	stream   *stream.Config
	tls      *tlsmgr.Manager // nil without ssl listeners
	log      *slog.Logger

	certs []*rotatedCert
	confs []*rotatedConf
	// refs is the last outcome of each reference read, so that a failure
	// and the recovery are logged once each, not on every rotation.
	refs map[string]refState
}

type rotatedCert struct {
	c         *declarative.Certificate
	pem       declarative.CertificatePEM // what is served
	withdrawn bool                       // a reference has no value: handshakes fail
	invalid   string                     // the last refused PEM's reason, logged once
}

type rotatedConf struct {
	p    *declarative.Plugin
	conf map[string]any // what the handlers see
}

type refState int

const (
	refFresh refState = iota // read, or cached within its ttl
	refStale                 // the read failed; the previous value serves until resurrect_ttl ends
	refGone                  // the read failed and nothing is left to serve
)

// newRotation tracks the references of d's certificates and plugins; nil
// when there are none. The references tracked are bounded by the size of
// the configuration.
func newRotation(d *declarative.Config, ps *runloop.Plugins, cfg *stream.Config, log *slog.Logger) *rotation {
	if d.Secrets == nil {
		return nil
	}
	r := &rotation{resolver: d.Secrets, plugins: ps, stream: cfg, tls: cfg.Certificates(), log: log, refs: map[string]refState{}}
	for _, c := range d.Certificates {
		if c.HasReferences() {
			r.certs = append(r.certs, &rotatedCert{c: c, pem: c.PEM})
		}
	}
	for _, p := range d.Plugins {
		if p.Enabled && p.Stream() && p.HasReferences() {
			r.confs = append(r.confs, &rotatedConf{p: p, conf: p.HandlerConfig()})
		}
	}
	if len(r.certs) == 0 && len(r.confs) == 0 {
		return nil
	}
	return r
}

// rotate reads every tracked reference through the resolver and applies
// what changed.
func (r *rotation) rotate() {
	for _, rc := range r.certs {
		r.rotateCert(rc)
	}
	for _, rp := range r.confs {
		// A reference with no value left reads as "", as Kong's
		// kong.vault.update leaves the field.
		conf, err := r.plugins.Dereference(rp.p.Name, rp.p.Config, func(ref string) (string, error) {
			v, _ := r.get(ref)
			return v, nil
		})
		if err != nil || reflect.DeepEqual(conf, rp.conf) {
			continue
		}
		rp.conf = conf
		r.plugins.SetHandlerConfig(rp.p.ID, conf)
		r.notice(fmt.Sprintf("plugin '%s' (%s): rotated vault secrets applied", rp.p.Name, rp.p.ID))
	}
}

func (r *rotation) rotateCert(rc *rotatedCert) {
	gone := false
	pem, err := rc.c.ResolvePEM(func(ref string) (string, error) {
		v, err := r.get(ref)
		gone = gone || err != nil
		return v, err
	})
	id := rc.c.ID
	switch {
	case gone:
		if !rc.withdrawn {
			rc.withdrawn = true
			if r.tls != nil {
				r.tls.Withdraw(id, fmt.Errorf("certificate %s: %v", id, err))
			}
			r.log.Error(fmt.Sprintf("certificate %s: %v; its handshakes by SNI fail until the secret can be read", id, err))
		}
		return
	case err != nil:
		r.refuse(rc, err.Error())
		return
	case pem == rc.pem && !rc.withdrawn:
		rc.invalid = ""
		return
	}
	if err := r.apply(rc, pem); err != nil {
		r.refuse(rc, err.Error())
		return
	}
	rc.pem, rc.withdrawn, rc.invalid = pem, false, ""
	r.notice(fmt.Sprintf("certificate %s: rotated vault secrets applied", id))
}

// apply serves pem for the certificate: to clients by SNI, and to
// upstreams where a service presents it.
func (r *rotation) apply(rc *rotatedCert, pem declarative.CertificatePEM) error {
	if r.tls != nil {
		c := tlsmgr.Cert{ID: rc.c.ID, CertPEM: []byte(pem.Cert), KeyPEM: []byte(pem.Key)}
		if rc.c.CertAlt != nil && rc.c.KeyAlt != nil {
			c.AltCertPEM, c.AltKeyPEM = []byte(pem.CertAlt), []byte(pem.KeyAlt)
		}
		if err := r.tls.Replace(c); err != nil {
			return err
		}
	}
	_, err := r.stream.ReplaceClientCertificate(rc.c.ID, []byte(pem.Cert), []byte(pem.Key))
	return err
}

// refuse logs, once per reason, a rotated certificate that cannot be
// served (say its new cert is there and its new key not yet); what was
// served before keeps serving.
func (r *rotation) refuse(rc *rotatedCert, reason string) {
	if rc.invalid == reason {
		return
	}
	rc.invalid = reason
	r.log.Error(fmt.Sprintf("certificate %s: rotated secrets refused, the previous ones keep serving: %s", rc.c.ID, reason))
}

// get reads a reference, logging a change of its state once. Vault
// errors name the reference, never the secret.
func (r *rotation) get(ref string) (string, error) {
	value, stale, err := r.resolver.Lookup(ref)
	state := refFresh
	switch {
	case err != nil:
		state = refGone
	case stale != nil:
		state = refStale
	}
	if state == r.refs[ref] {
		return value, err
	}
	r.refs[ref] = state
	switch state {
	case refGone:
		r.log.Error(fmt.Sprintf("vault: %s has no value any more: %v", ref, err))
	case refStale:
		r.log.Warn(fmt.Sprintf("vault: could not refresh %s, its previous value serves until its resurrect_ttl ends: %v", ref, stale))
	default:
		r.notice(fmt.Sprintf("vault: %s is read again", ref))
	}
	return value, err
}

func (r *rotation) notice(msg string) { r.log.Log(context.Background(), errlog.LevelNotice, msg) }

// rotateSecrets is the server's rotator: every vault_rotation_interval
// it rotates the current generation's references, until stop closes.
// Generations being replaced keep the secrets they had: their sessions
// are in flight.
func (s *Server) rotateSecrets(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	interval := func() time.Duration {
		d, err := s.current.Load().conf.Vault.RotationInterval()
		if err != nil { // validated when kong.conf loaded
			return vault.DefaultRotationInterval
		}
		return d
	}
	t := time.NewTimer(interval())
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if g := s.current.Load(); g.rotation != nil {
			g.rotation.rotate()
		}
		t.Reset(interval())
	}
}

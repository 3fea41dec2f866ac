package runtime

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/admin"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/runloop"
	"github.com/gong-proxy/gong/runtime/stream"
	"github.com/gong-proxy/gong/tlsmgr"
)

// apiServers are the HTTP servers of admin_listen and status_listen. They
// open when the server starts and close when it stops; a reload does not
// change them.
type apiServers struct {
	servers []*http.Server
	addrs   map[string][]net.Addr // by property: admin_listen, status_listen
	listen  string                // the entries they were opened from
}

// startAPIs opens the Admin and Status API listeners of c. If one cannot
// be opened none stays open.
func (s *Server) startAPIs(c *conf.Config) error {
	b := &adminBackend{s: s}
	host, _ := os.Hostname()
	var err error
	opts := admin.Options{Token: c.AdminToken, AllowedHosts: c.AdminAllowedHosts, Node: admin.Node{
		ID: s.nodeID, Version: pdk.KongVersion, LuaVersion: LuaVersion, Hostname: host, PID: os.Getpid()}, Log: s.adminLog}
	if s.db != nil {
		opts.Store = b
	}
	var adminAPI http.Handler = admin.New(b, opts)
	statusAPI := admin.NewStatus(b, map[string]http.Handler{"GET /metrics": s.MetricsHandler()})
	if len(c.AdminListeners) > 0 {
		if adminAPI, err = s.logged(adminAPI, "admin_access_log", c.AdminAccessLog); err != nil {
			return err
		}
	}
	if len(c.StatusListeners) > 0 {
		if statusAPI, err = s.logged(statusAPI, "status_access_log", c.StatusAccessLog); err != nil {
			return err
		}
	}
	apis := &apiServers{addrs: map[string][]net.Addr{}, listen: apiListen(c)}
	err = apis.serve(s, "admin_listen", c.AdminListeners, adminAPI, c.AdminTLS, filepath.Join(c.Prefix, "ssl", "admin"))
	if err == nil {
		err = apis.serve(s, "status_listen", c.StatusListeners, statusAPI, c.StatusTLS, filepath.Join(c.Prefix, "ssl", "status"))
	}
	if err != nil {
		apis.close()
		return err
	}
	for _, l := range c.AdminListeners {
		if exposed(l) && (!l.SSL || c.AdminToken == "" && c.AdminTLS.ClientCA == nil) {
			s.log.Warn(fmt.Sprintf("admin_listen %s is reachable from other hosts without TLS and a token or client certificate: "+
				"whoever reaches it can read and replace the configuration; use ssl with admin_token or admin_ssl_client_ca", l.Listener))
		}
	}
	s.mu.Lock()
	s.apis = apis
	s.mu.Unlock()
	return nil
}

// logged adds the access log at path (the property's value; "off" or
// unset: none) to an API's handler.
func (s *Server) logged(h http.Handler, property, path string) (http.Handler, error) {
	if path == "" || path == "off" {
		return h, nil
	}
	// Its folder (logs/ in the prefix by default) may not exist yet.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", property, err)
	}
	a, err := s.accessLog(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", property, err)
	}
	return admin.AccessLog(h, a.Write), nil
}

// apiListen is the listener entries the APIs open.
func apiListen(c *conf.Config) string {
	var b strings.Builder
	for _, l := range append(append([]conf.Listener{}, c.AdminListeners...), c.StatusListeners...) {
		b.WriteString(l.Listener + ";")
	}
	return b.String()
}

// exposed reports whether a listener accepts connections from other hosts.
func exposed(l conf.Listener) bool {
	host := strings.Trim(l.Host, "[]")
	if host == "localhost" {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.IsLoopback()
}

// serve opens the listeners of one property and serves h on them: with
// TLS on ssl entries (the property's certificates, else defaults
// generated in certDir), HTTP/2 on http2 entries, and PROXY protocol
// headers read on proxy_protocol entries (believed from trusted_ips).
func (apis *apiServers) serve(s *Server, property string, ls []conf.Listener, h http.Handler, t conf.HTTPTLS, certDir string) error {
	var tlsConf *tls.Config
	for _, l := range ls {
		ln, _, err := s.opts.Sockets.Listen(l)
		if err != nil {
			return fmt.Errorf("%s %s: %w", property, l.Listener, err)
		}
		apis.addrs[property] = append(apis.addrs[property], ln.Addr())
		var protocols http.Protocols
		protocols.SetHTTP1(true)
		srv := &http.Server{Handler: h, Protocols: &protocols, ErrorLog: httpErrorLog(s.apiLog(property), property)}
		ln = admin.Bound(srv, ln, s.opts.Config.APILimits)
		if l.ProxyProtocol {
			ln = admin.ProxyProtocol(ln, s.opts.Config.Stream.ProxyProtocolTimeout,
				func(peer netip.Addr) bool { return s.current.Load().stream.Trusted(peer) })
		}
		apis.servers = append(apis.servers, srv)
		if !l.SSL {
			protocols.SetUnencryptedHTTP2(l.HTTP2)
			go srv.Serve(ln)
			continue
		}
		if tlsConf == nil {
			if tlsConf, err = apiTLS(t, certDir); err != nil {
				ln.Close()
				return fmt.Errorf("%s %s: %w", property, l.Listener, err)
			}
		}
		protocols.SetHTTP2(l.HTTP2)
		srv.TLSConfig = tlsConf
		go srv.ServeTLS(ln, "", "")
	}
	return nil
}

// apiTLS is the TLS of an API's ssl listeners.
func apiTLS(t conf.HTTPTLS, certDir string) (*tls.Config, error) {
	pairs := t.Certs
	if len(pairs) == 0 {
		defaults, err := tlsmgr.GenerateDefault(certDir)
		if err != nil {
			return nil, err
		}
		for _, d := range defaults {
			pairs = append(pairs, conf.CertPair{CertPEM: d.CertPEM, KeyPEM: d.KeyPEM})
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, p := range pairs {
		cert, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	if t.ClientCA != nil {
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(t.ClientCA) {
			return nil, errors.New("admin_ssl_client_ca: no certificate found")
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// apiShutdownTimeout bounds the wait for requests in flight when the
// API servers close; then their connections are cut.
const apiShutdownTimeout = 5 * time.Second

// close ends the API servers once their requests in flight are answered,
// so that no request outlives the access logs; nil is closed.
func (apis *apiServers) close() {
	if apis == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiShutdownTimeout)
	defer cancel()
	for _, srv := range apis.servers {
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}
}

// APIAddrs returns the addresses the Admin API (property "admin_listen")
// or the Status API ("status_listen") listens on, for entries with port 0.
func (s *Server) APIAddrs(property string) []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apis == nil {
		return nil
	}
	return s.apis.addrs[property]
}

// apiLog is the error log of an API's listeners: admin_error_log for
// admin_listen, status_error_log for status_listen.
func (s *Server) apiLog(property string) *slog.Logger {
	if property == "status_listen" {
		return s.statusLog
	}
	return s.adminLog
}

// httpErrorLog sends an API server's errors (failed handshakes, broken
// requests) to the error log, at info level as nginx logs client errors.
func httpErrorLog(l *slog.Logger, property string) *log.Logger {
	return log.New(writerFunc(func(p []byte) (int, error) {
		l.Info(fmt.Sprintf("%s: %s", property, strings.TrimSpace(string(p))))
		return len(p), nil
	}), "", 0)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var _ admin.Backend = (*adminBackend)(nil)

// adminBackend is the server as the Admin and Status APIs see it.
type adminBackend struct {
	s *Server
	// validateMu makes validations one at a time: they run plugin schemas
	// on the generation's schema VM, which is not safe for concurrent use.
	validateMu sync.Mutex
}

func snapshotOf(g *generation) admin.Snapshot {
	return admin.Snapshot{Conf: g.conf, Config: g.decl, Hash: g.hash}
}

func (b *adminBackend) Current() admin.Snapshot { return snapshotOf(b.s.current.Load()) }

// Apply builds a generation from the current kong.conf and config, the
// way a reload does, and swaps it in.
func (b *adminBackend) Apply(config []byte) (admin.Snapshot, error) {
	g, err := b.s.swap(b.s.current.Load().conf, config)
	if errors.Is(err, ErrStopped) {
		return admin.Snapshot{}, admin.ErrExiting
	}
	if err != nil {
		b.s.adminLog.Error(fmt.Sprintf("POST /config failed, the previous configuration keeps serving: %v", err))
		return admin.Snapshot{}, err
	}
	b.s.log.Log(context.Background(), errlog.LevelNotice, "configuration replaced through POST /config")
	return snapshotOf(g), nil
}

func (b *adminBackend) Plugins() []admin.Plugin {
	infos := b.s.current.Load().plugins.Infos()
	out := make([]admin.Plugin, len(infos))
	for i, p := range infos {
		out[i] = admin.Plugin{Name: p.Name, Version: p.Version, Priority: p.Priority, Schema: p.Schema}
	}
	return out
}

// Validate loads a declarative configuration holding only the entity.
func (b *adminBackend) Validate(kind string, entity map[string]any) error {
	data, err := json.Marshal(map[string]any{"_format_version": "3.0", kind: []any{entity}})
	if err != nil {
		return err
	}
	g := b.s.hold() // keeps its plugins open meanwhile
	defer g.done()
	b.validateMu.Lock()
	defer b.validateMu.Unlock()
	_, err = declarative.Parse(data, "", declarativeOptions(g.conf, g.plugins))
	return err
}

// Modify writes entities to the database, validated against the current
// plugins, then rebuilds this node's generation at once so that its reads
// see the write; other nodes see it through cluster_events.
func (b *adminBackend) Modify(ctx context.Context, edit func(*declarative.Document) error) (*declarative.Config, error) {
	g := b.s.hold() // keeps its plugins open meanwhile
	cfg, err := b.s.db.Modify(ctx, declarativeOptions(g.conf, g.plugins), edit)
	g.done()
	// A refused write may still have brought the node's copy of the
	// entities up to date with other nodes' writes, whose events are then
	// seen and will not wake the watch: rebuild whenever the copy has moved
	// past the generation.
	if err == nil || b.s.db.Hash() != b.s.current.Load().hash {
		b.s.reloads.after(b.s.applyDatabaseChanges)
	}
	return cfg, err
}

// DatabaseReachable is /status's database.reachable; ok is false when the
// node runs without a database.
func (b *adminBackend) DatabaseReachable() (reachable, ok bool) { return b.s.databaseReachable() }

func (b *adminBackend) Health(upstream string) (admin.UpstreamHealth, bool) {
	up := b.s.current.Load().stream.Upstreams[upstream]
	if up == nil {
		return admin.UpstreamHealth{}, false
	}
	h := admin.UpstreamHealth{Checked: up.Checker != nil, Targets: map[string][]admin.Address{}}
	var state map[netip.AddrPort]bool
	if up.Checker != nil {
		state = up.Checker.Healthy()
	}
	for _, a := range up.Up.Addresses() {
		h.Targets[a.Target] = append(h.Targets[a.Target], admin.Address{IP: a.Addr.Addr().String(),
			Port: int(a.Addr.Port()), Weight: a.Weight, Healthy: state[a.Addr]})
	}
	return h, true
}

// SetHealth forces a target's health in the current configuration's
// balancer (see markHealth) and, in database mode, broadcasts it to the
// other nodes as Kong does.
func (b *adminBackend) SetHealth(upstream, target, address string, healthy bool) error {
	if err := b.s.markHealth(upstream, target, address, healthy); err != nil {
		return err
	}
	for _, u := range b.s.current.Load().decl.Upstreams {
		if u.Name == upstream {
			b.s.broadcastHealth(newHealthMark(u, target, address, healthy))
		}
	}
	return nil
}

func (b *adminBackend) Sessions() []admin.Session {
	live := b.s.engine.Sessions()
	out := make([]admin.Session, len(live))
	for i, s := range live {
		out[i] = sessionInfo(s.Info())
	}
	return out
}

func (b *adminBackend) CloseSession(id uint64) bool {
	for _, s := range b.s.engine.Sessions() {
		if s.ID() == id {
			s.Close()
			return true
		}
	}
	return false
}

func (b *adminBackend) Counters() admin.Counters {
	accepted, active := b.s.connections()
	vms, idle := b.s.vmCounts()
	return admin.Counters{Accepted: accepted, Active: active, LuaVMs: vms, LuaVMsIdle: idle, LuaVMsPinned: b.s.pinnedVMs()}
}

// Memory reports the memory /metrics reports, in Kong's units.
func (b *adminBackend) Memory(unit string, scale int) (admin.Memory, error) {
	if _, err := pdk.BytesToStr(0, unit, scale); err != nil {
		return admin.Memory{}, err
	}
	size := func(n int64) any {
		if strings.EqualFold(unit, "b") {
			return n
		}
		s, _ := pdk.BytesToStr(n, unit, scale)
		return s
	}
	m := admin.Memory{LuaSharedDicts: map[string]admin.DictMemory{},
		WorkersLuaVMs: []admin.LuaVMMemory{{AllocatedGC: size(int64(runloop.HeapBytes())), PID: os.Getpid()}}}
	for _, d := range b.s.sharedDictMemory() {
		m.LuaSharedDicts[d.Name] = admin.DictMemory{AllocatedSlabs: size(d.Allocated), Capacity: size(d.Capacity)}
	}
	return m, nil
}

// sessionInfo describes a session for the Admin API.
func sessionInfo(i stream.Info) admin.Session {
	si := admin.Session{ID: i.ID, Protocol: i.Protocol, Client: i.Client.String(), Server: i.Server.String(),
		Started: i.Started, SNI: i.SNI, Upstream: i.Upstream, BytesSent: i.BytesSent, BytesReceived: i.BytesReceived}
	if r := i.Route; r != nil {
		si.Route = &admin.Ref{ID: r.Decl.ID, Name: r.Decl.Name}
		if r.Service != nil {
			si.Service = &admin.Ref{ID: r.Service.Decl.ID, Name: r.Service.Decl.Name}
		}
	}
	return si
}

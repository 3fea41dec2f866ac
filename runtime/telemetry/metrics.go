package telemetry

import (
	"maps"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus series of a server: Kong's stream series
// (kong/plugins/prometheus/exporter.lua, which gong records without the
// plugin, and with bandwidth, which Kong never records in stream) and
// gong's own. It is safe for concurrent use and lives as long as the
// server, across reloads.
type Metrics struct {
	registry        *prometheus.Registry
	sessions        *prometheus.CounterVec
	sessionDuration *prometheus.HistogramVec
	kongLatency     *prometheus.HistogramVec
	bandwidth       *prometheus.CounterVec
	active          *prometheus.GaugeVec
	tlsErrors       *prometheus.CounterVec
	phaseDuration   *prometheus.HistogramVec
	reloads         *prometheus.CounterVec
	refused         *prometheus.CounterVec
	// series are Kong's per-session series recorded, as the current
	// configuration's prometheus plugin entry selects them; nil is all.
	series        atomic.Pointer[KongSeries]
	limitRefusals *prometheus.CounterVec
	queueLost     *prometheus.CounterVec
}

// subsystem is the subsystem and kong_subsystem label of Kong's series.
const subsystem = "stream"

// Kong's latency buckets, in milliseconds.
var kongBuckets = []float64{25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000}

// workspace is the label value of Kong's default workspace, the only one
// a DB-less node has.
const workspace = "default"

// TargetHealth is one upstream address's health, for
// kong_upstream_target_health. State is one of healthchecks_off, healthy,
// unhealthy and dns_error.
type TargetHealth struct {
	Upstream, Target, Address, State string
}

// SharedDict is one ngx.shared dictionary's memory, in bytes.
type SharedDict struct {
	Name                string
	Capacity, Allocated int64
}

// Sources are the values read when /metrics is scraped.
type Sources struct {
	// NodeID is the node_id label of Kong's node series.
	NodeID string
	// Targets lists the addresses of the current configuration's upstreams.
	Targets func() []TargetHealth
	// VMs is the current configuration's Lua VM pool: live and idle VMs.
	VMs func() (size, idle int)
	// PinnedVMs counts the VMs sessions keep between preread and log,
	// their ctx values being unable to leave them.
	PinnedVMs func() int
	// Connections are the sessions accepted since start and those in
	// progress.
	Connections func() (accepted uint64, active int)
	// SharedDicts are the current configuration's ngx.shared dictionaries.
	SharedDicts func() []SharedDict
	// LuaVMsBytes is the memory of the Lua VMs: the Go heap they share.
	LuaVMsBytes func() uint64
	// Database is whether the database answered its last poll; ok is
	// false when the node runs without one. Nil counts as without.
	Database func() (reachable, ok bool)
}

// NewMetrics registers the series; src is read at each scrape.
func NewMetrics(src Sources) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kong_stream_sessions_total", Help: "Stream sessions by service, route, status code and whether an upstream answered (source service) or gong ended it (source kong).",
		}, []string{"service", "route", "code", "source", "workspace"}),
		sessionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kong_session_duration_ms", Help: "Stream session duration, in milliseconds.", Buckets: kongBuckets,
		}, []string{"service", "route", "workspace"}),
		kongLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kong_kong_latency_ms", Help: "Time gong spent before the upstream connection was established, in milliseconds.", Buckets: kongBuckets,
		}, []string{"service", "route", "workspace"}),
		bandwidth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kong_bandwidth_bytes", Help: "Bytes relayed, by direction: ingress from clients, egress to clients.",
		}, []string{"service", "route", "direction", "workspace"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gong_active_connections", Help: "Routed TCP connections and UDP sessions in progress.",
		}, []string{"service", "route"}),
		tlsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gong_tls_handshake_errors_total", Help: "Failed TLS handshakes: downstream with clients, upstream with services.",
		}, []string{"side"}),
		phaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gong_lua_phase_duration_seconds", Help: "Time a plugin's handler took in a phase.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1, 1, 10},
		}, []string{"plugin", "phase"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gong_reloads_total", Help: "Configuration reloads, by result (success or failure).",
		}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gong_stream_sessions_refused_total", Help: "New TCP connections closed and UDP datagrams from new clients dropped over a session cap, by listener and cap (worker_connections, max_sessions or max_rate).",
		}, []string{"listener", "reason"}),
		limitRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gong_limit_refusals_total", Help: "Sessions a limit plugin refused in preread, by plugin, route and reason (limit: over the limit; store_error: the counter store failed and fault_tolerant is off).",
		}, []string{"plugin", "route", "reason"}),
		queueLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gong_log_queue_entries_lost_total", Help: "Log-queue (kong.tools.queue) entries never sent, by plugin: dropped from a full queue, given up after max_retry_time, or still queued when a configuration's last flush (reload or quit) ended.",
		}, []string{"plugin"}),
	}
	m.registry.MustRegister(m.sessions, m.sessionDuration, m.kongLatency, m.bandwidth,
		m.active, m.tlsErrors, m.phaseDuration, m.reloads, m.refused, m.limitRefusals, m.queueLost, targetCollector{src.Targets, &m.series}, nodeCollector{src})
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gong_lua_vms", Help: "Lua VMs of the current configuration's pool.",
	}, func() float64 { n, _ := src.VMs(); return float64(n) }))
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gong_lua_vms_idle", Help: "Lua VMs of the current configuration's pool not leased to a connection.",
	}, func() float64 { _, n := src.VMs(); return float64(n) }))
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gong_lua_vms_pinned", Help: "Lua VMs kept by a session from preread to log: its kong.ctx or ngx.ctx holds a value that cannot leave the VM (bounded by lua_max_pinned_vms).",
	}, func() float64 { return float64(src.PinnedVMs()) }))
	return m
}

// Handler serves the series in Prometheus' exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Session is what an ended session adds to its route's series.
type Session struct {
	Status         int
	Proxied        bool // an upstream connection was established
	Duration       time.Duration
	KongLatency    time.Duration
	Received, Sent int64 // from and to the client
}

// RouteSeries are the series of the sessions of one service and route,
// looked up once rather than label by label for every session. Kong's
// optional series are looked up at their first use, so that a series the
// prometheus plugin turned off is not exposed, not even at zero. Series
// are never deleted, so a route's stay valid for its life.
type RouteSeries struct {
	m              *Metrics
	service, route string
	active         prometheus.Gauge
	latencies      atomic.Pointer[latencySeries]
	bytes          atomic.Pointer[bandwidthSeries]
	// statuses are the route's session counters keyed by status<<1 |
	// proxied, the map copied to add one: a vector lookup hashes five
	// labels under the vector's lock, which every session would contend
	// for. Only statuses from 100 to 599 are kept (ngx.exit takes any
	// integer from a plugin), so the map holds at most 1,000 counters.
	statuses   atomic.Pointer[map[int]prometheus.Counter]
	statusesMu sync.Mutex
}

type latencySeries struct{ session, kong prometheus.Observer }

type bandwidthSeries struct{ ingress, egress prometheus.Counter }

// Series returns the series of sessions routed to route of service (their
// names, else Kong's fallbacks: the service's host, the route's id).
func (m *Metrics) Series(service, route string) *RouteSeries {
	return &RouteSeries{m: m, service: service, route: route, active: m.active.WithLabelValues(service, route)}
}

// Opened counts a routed session in progress; Closed undoes it.
func (rs *RouteSeries) Opened() { rs.active.Inc() }

// Closed ends a session Opened counted.
func (rs *RouteSeries) Closed() { rs.active.Dec() }

// Ended records a session that matched the route; Kong does not count
// the others. Two sessions that look a series up at once store equal
// ones.
func (rs *RouteSeries) Ended(s Session) {
	series := rs.m.series.Load()
	if series == nil || series.StatusCodes {
		rs.sessionCounter(s.Status, s.Proxied).Inc()
	}
	if series == nil || series.Latency {
		l := rs.latencies.Load()
		if l == nil {
			l = &latencySeries{rs.m.sessionDuration.WithLabelValues(rs.service, rs.route, workspace),
				rs.m.kongLatency.WithLabelValues(rs.service, rs.route, workspace)}
			rs.latencies.Store(l)
		}
		l.session.Observe(float64(s.Duration.Milliseconds()))
		l.kong.Observe(float64(s.KongLatency.Milliseconds()))
	}
	if series == nil || series.Bandwidth {
		b := rs.bytes.Load()
		if b == nil {
			b = &bandwidthSeries{rs.m.bandwidth.WithLabelValues(rs.service, rs.route, "ingress", workspace),
				rs.m.bandwidth.WithLabelValues(rs.service, rs.route, "egress", workspace)}
			rs.bytes.Store(b)
		}
		b.ingress.Add(float64(s.Received))
		b.egress.Add(float64(s.Sent))
	}
}

// sessionCounter is the route's counter of sessions ended with status,
// from the service when proxied, else from Kong.
func (rs *RouteSeries) sessionCounter(status int, proxied bool) prometheus.Counter {
	source := "kong"
	if proxied {
		source = "service"
	}
	if status < 100 || status > 599 {
		return rs.m.sessions.WithLabelValues(rs.service, rs.route, strconv.Itoa(status), source, workspace)
	}
	key := status << 1
	if proxied {
		key |= 1
	}
	if m := rs.statuses.Load(); m != nil {
		if c, ok := (*m)[key]; ok {
			return c
		}
	}
	rs.statusesMu.Lock()
	defer rs.statusesMu.Unlock()
	old := rs.statuses.Load()
	if old != nil {
		if c, ok := (*old)[key]; ok {
			return c
		}
	}
	c := rs.m.sessions.WithLabelValues(rs.service, rs.route, strconv.Itoa(status), source, workspace)
	m := make(map[int]prometheus.Counter, 1)
	if old != nil {
		m = maps.Clone(*old)
	}
	m[key] = c
	rs.statuses.Store(&m)
	return c
}

// KongSeries selects Kong's optional series, as the prometheus plugin's
// status_code_metrics, latency_metrics, bandwidth_metrics and
// upstream_health_metrics do.
type KongSeries struct {
	StatusCodes, Latency, Bandwidth, UpstreamHealth bool
}

// KongSeriesOf reads a global prometheus plugin entry's config; without
// one (nil) gong records every series.
func KongSeriesOf(plugin map[string]any) *KongSeries {
	if plugin == nil {
		return nil
	}
	on := func(k string) bool { b, _ := plugin[k].(bool); return b }
	return &KongSeries{StatusCodes: on("status_code_metrics"), Latency: on("latency_metrics"),
		Bandwidth: on("bandwidth_metrics"), UpstreamHealth: on("upstream_health_metrics")}
}

// SelectKongSeries applies a configuration's selection (nil: all).
func (m *Metrics) SelectKongSeries(s *KongSeries) { m.series.Store(s) }

// HandshakeFailed counts a failed TLS handshake; upstream tells the side.
func (m *Metrics) HandshakeFailed(upstream bool) {
	side := "downstream"
	if upstream {
		side = "upstream"
	}
	m.tlsErrors.WithLabelValues(side).Inc()
}

// Refused counts a session refused over a cap: listener is the
// stream_listen address (with " udp" for UDP), reason the cap.
func (m *Metrics) Refused(listener, reason string) {
	m.refused.WithLabelValues(listener, reason).Inc()
}

// PhaseSeries is the series of one plugin's handler calls in one phase,
// looked up once; the zero PhaseSeries records nothing.
type PhaseSeries struct{ o prometheus.Observer }

// Phase returns the series of plugin's handler calls in phase.
func (m *Metrics) Phase(plugin, phase string) PhaseSeries {
	return PhaseSeries{m.phaseDuration.WithLabelValues(plugin, phase)}
}

// Ran records one handler call that took d.
func (p PhaseSeries) Ran(d time.Duration) {
	if p.o != nil {
		p.o.Observe(d.Seconds())
	}
}

// LimitRefused counts a session a limit plugin refused.
func (m *Metrics) LimitRefused(plugin, route, reason string) {
	m.limitRefusals.WithLabelValues(plugin, route, reason).Inc()
}

// QueueLost counts n log-queue entries of plugin that were never sent.
func (m *Metrics) QueueLost(plugin string, n int) {
	m.queueLost.WithLabelValues(plugin).Add(float64(n))
}

// Reloaded counts a reload and its result.
func (m *Metrics) Reloaded(err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.reloads.WithLabelValues(result).Inc()
}

// targetCollector exposes kong_upstream_target_health as Kong does: one
// series per state of each address, 1 for its current state and 0 for
// the others.
type targetCollector struct {
	targets func() []TargetHealth
	series  *atomic.Pointer[KongSeries]
}

var (
	targetHealthDesc = prometheus.NewDesc("kong_upstream_target_health",
		"Health of each upstream target address, as seen by its health checks.",
		[]string{"upstream", "target", "address", "state", "subsystem"}, nil)
	targetStates = []string{"healthchecks_off", "healthy", "unhealthy", "dns_error"}
)

func (c targetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- targetHealthDesc }

func (c targetCollector) Collect(ch chan<- prometheus.Metric) {
	if s := c.series.Load(); s != nil && !s.UpstreamHealth {
		return
	}
	for _, t := range c.targets() {
		for _, s := range targetStates {
			v := 0.0
			if s == t.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(targetHealthDesc, prometheus.GaugeValue, v, t.Upstream, t.Target, t.Address, s, subsystem)
		}
	}
}

// nodeCollector exposes Kong's node series: nginx's connection states
// and the memory of shared dictionaries and Lua VMs.
type nodeCollector struct{ src Sources }

var (
	connectionsDesc = prometheus.NewDesc("kong_nginx_connections_total",
		"Connections by state: accepted, handled and total count sessions since start; active and writing those in progress; gong has no reading or waiting sessions.",
		[]string{"node_id", "subsystem", "state"}, nil)
	dictBytesDesc = prometheus.NewDesc("kong_memory_lua_shared_dict_bytes",
		"Bytes in use in an ngx.shared dictionary.", []string{"node_id", "shared_dict", "kong_subsystem"}, nil)
	dictTotalDesc = prometheus.NewDesc("kong_memory_lua_shared_dict_total_bytes",
		"Capacity in bytes of an ngx.shared dictionary.", []string{"node_id", "shared_dict", "kong_subsystem"}, nil)
	luaVMsDesc = prometheus.NewDesc("kong_memory_workers_lua_vms_bytes",
		"Memory of the Lua VMs: the Go heap, which gong's VMs share.", []string{"node_id", "pid", "kong_subsystem"}, nil)
	datastoreDesc = prometheus.NewDesc("kong_datastore_reachable",
		"Datastore reachable from gong, 0 is unreachable (database mode only).", nil, nil)
)

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connectionsDesc
	ch <- dictBytesDesc
	ch <- dictTotalDesc
	ch <- luaVMsDesc
	ch <- datastoreDesc
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	accepted, active := c.src.Connections()
	for state, v := range map[string]float64{"accepted": float64(accepted), "handled": float64(accepted), "total": float64(accepted),
		"active": float64(active), "reading": 0, "writing": float64(active), "waiting": 0} {
		gauge(connectionsDesc, v, c.src.NodeID, subsystem, state)
	}
	for _, d := range c.src.SharedDicts() {
		gauge(dictBytesDesc, float64(d.Allocated), c.src.NodeID, d.Name, subsystem)
		gauge(dictTotalDesc, float64(d.Capacity), c.src.NodeID, d.Name, subsystem)
	}
	gauge(luaVMsDesc, float64(c.src.LuaVMsBytes()), c.src.NodeID, strconv.Itoa(os.Getpid()), subsystem)
	if c.src.Database != nil {
		if reachable, ok := c.src.Database(); ok {
			v := 0.0
			if reachable {
				v = 1
			}
			gauge(datastoreDesc, v)
		}
	}
}

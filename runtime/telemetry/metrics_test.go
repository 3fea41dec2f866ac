package telemetry

import (
	"maps"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestSessionCountsByStatusAndSource: each status and source a route's
// sessions end with counts in its own series, however many sessions end
// at once, and another route's series are apart. A status outside
// 100-599 (a plugin's ngx.exit takes any integer) counts without being
// kept by the route.
func TestSessionCountsByStatusAndSource(t *testing.T) {
	m := NewMetrics(Sources{})
	plain, other := m.Series("echo", "plain"), m.Series("echo", "other")
	ends := []struct {
		series  *RouteSeries
		status  int
		proxied bool
		n       int
	}{
		{plain, 200, true, 40},
		{plain, 200, false, 3},
		{plain, 502, false, 7},
		{plain, 403, false, 5},
		{plain, 1000, false, 2}, // a plugin's ngx.exit(1000): counted, not kept
		{other, 200, true, 2},
	}
	var wg sync.WaitGroup
	for _, e := range ends {
		for range e.n {
			wg.Go(func() { e.series.Ended(Session{Status: e.status, Proxied: e.proxied}) })
		}
	}
	wg.Wait()
	want := map[string]float64{
		"plain 200 service": 40,
		"plain 200 kong":    3,
		"plain 502 kong":    7,
		"plain 403 kong":    5,
		"plain 1000 kong":   2,
		"other 200 service": 2,
	}
	got := map[string]float64{}
	ch := make(chan prometheus.Metric)
	go func() { m.sessions.Collect(ch); close(ch) }()
	for c := range ch {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			t.Fatal(err)
		}
		l := map[string]string{}
		for _, p := range d.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		got[l["route"]+" "+l["code"]+" "+l["source"]] = d.GetCounter().GetValue()
	}
	if !maps.Equal(got, want) {
		t.Errorf("kong_stream_sessions_total by route, code and source: %v; want %v", got, want)
	}
	if kept := len(*plain.statuses.Load()); kept != 4 {
		t.Errorf("the plain route keeps %d counters; want 4, not the status out of 100-599", kept)
	}
}

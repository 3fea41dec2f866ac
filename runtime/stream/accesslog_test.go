package stream

import (
	"crypto/tls"
	"net/netip"
	"testing"
	"time"
)

func TestLogFormat(t *testing.T) {
	start := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	s := &Record{ID: 7, Protocol: "TCP", Remote: netip.MustParseAddrPort("10.0.0.1:5000"), Server: netip.MustParseAddrPort("127.0.0.1:5555"),
		Status: 200, BytesSent: 12, BytesReceived: 34, Start: start, End: start.Add(1500 * time.Millisecond),
		Tries: []Try{{Addr: "127.0.0.2:9000", Start: start},
			{Addr: "127.0.0.1:9000", Start: start.Add(10 * time.Millisecond), Latency: time.Millisecond, Connected: true}},
		UpstreamConnectTimes: []time.Duration{time.Millisecond, 2 * time.Millisecond}, UpstreamBytesSent: 34, UpstreamBytesRecv: 12,
		UpstreamFirstByte: start.Add(20 * time.Millisecond)}
	tests := []struct {
		format, want string
	}{
		{"$remote_addr [$time_local] $protocol $status $bytes_sent $bytes_received $session_time", "10.0.0.1 [25/Nov/2026:20:00:01 +0000] TCP 200 12 34 1.500"},
		{"${remote_addr}:$remote_port->$server_port #$connection", "10.0.0.1:5000->5555 #7"},
		// nginx's per-try lists: the first try did not connect.
		{"$upstream_addr|$upstream_connect_time|$upstream_bytes_sent|$upstream_bytes_received", "127.0.0.2:9000, 127.0.0.1:9000|-, 0.002|0, 34|0, 12"},
		// First byte and session times count from the try's connect.
		{"$upstream_first_byte_time|$upstream_session_time", "-, 0.009|0.001, 1.489"},
		// nginx's unset variables: ssl_* without TLS.
		{"[$ssl_protocol][$ssl_client_verify][$ssl_server_name]", "[-][-][-]"},
	}
	for _, tt := range tests {
		f, err := CompileLogFormat(tt.format)
		if err != nil {
			t.Fatalf("CompileLogFormat(%q): %v", tt.format, err)
		}
		if got := string(f.appendLine(nil, s)); got != tt.want+"\n" {
			t.Errorf("format %q = %q; want %q", tt.format, got, tt.want)
		}
	}
	s.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	s.SNI = "a.test"
	// With TLS, an empty value is unset: no client certificate, no ALPN.
	f, _ := CompileLogFormat("$ssl_protocol $ssl_cipher $ssl_server_name $ssl_client_verify $ssl_client_s_dn $ssl_alpn_protocol")
	if got := string(f.appendLine(nil, s)); got != "TLSv1.3 TLS_AES_128_GCM_SHA256 a.test NONE - -\n" {
		t.Errorf("TLS variables = %q", got)
	}
	// Before a peer was tried, upstream_* are unset.
	s.Tries, s.UpstreamConnectTimes = nil, nil
	f, _ = CompileLogFormat("$upstream_addr|$upstream_connect_time|$upstream_bytes_sent|$upstream_session_time|$bytes_sent")
	if got := string(f.appendLine(nil, s)); got != "-|-|-|-|12\n" {
		t.Errorf("upstream variables before a try = %q", got)
	}
	for _, bad := range []string{"$nope", "${remote_addr"} {
		if _, err := CompileLogFormat(bad); err == nil {
			t.Errorf("CompileLogFormat(%q) accepted an invalid format", bad)
		}
	}
}

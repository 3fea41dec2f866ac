package conf

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseListeners(t *testing.T) {
	streamUsage := "stream_listen must be of form: [off] | <ip>:<port> [udp] [ssl] [proxy_protocol] [bind] [reuseport] [backlog=%d+] [ipv6only=on] [ipv6only=off] [so_keepalive=on] [so_keepalive=off] [so_keepalive=%w*:%w*:%d*] [max_sessions=%d+] [max_rate=%d+], [... next entry ...]"
	tests := []struct {
		name    string
		entries []string
		want    []string // Listener fields
		err     string
	}{
		{"off", []string{"off"}, nil, ""},
		{"off first wins", []string{"off", "127.0.0.1:1"}, nil, ""},
		{"ipv4", []string{"127.0.0.1:7000"}, []string{"127.0.0.1:7000"}, ""},
		{"flags canonical order", []string{"0.0.0.0:989 backlog=65536 reuseport"}, []string{"0.0.0.0:989 reuseport backlog=65536"}, ""},
		{"every flag", []string{"127.0.0.1:1 so_keepalive=1m:10s:3 ipv6only=on backlog=5 reuseport bind proxy_protocol ssl udp"},
			[]string{"127.0.0.1:1 udp ssl proxy_protocol bind reuseport backlog=5 ipv6only=on so_keepalive=1m:10s:3"}, ""},
		{"ipv6", []string{"[::1]:1234 backlog=16384"}, []string{"[::1]:1234 backlog=16384"}, ""},
		{"hostname", []string{"localhost:9000 udp"}, []string{"localhost:9000 udp"}, ""},
		{"several", []string{"127.0.0.1:26001 udp", "127.0.0.1:9020 ssl"}, []string{"127.0.0.1:26001 udp", "127.0.0.1:9020 ssl"}, ""},
		{"no port", []string{"127.0.0.1"}, nil, streamUsage},
		{"port too big", []string{"127.0.0.1:70000"}, nil, streamUsage},
		{"unknown flag", []string{"127.0.0.1:1 http2"}, nil, streamUsage},
		{"bad keepalive time", []string{"127.0.0.1:1 so_keepalive=soon:1:1"}, nil, streamUsage},
		{"bad backlog", []string{"127.0.0.1:1 backlog=x"}, nil, streamUsage},
		{"caps", []string{"127.0.0.1:1 max_rate=50 udp max_sessions=1000"}, []string{"127.0.0.1:1 udp max_sessions=1000 max_rate=50"}, ""},
		{"zero max_sessions", []string{"127.0.0.1:1 max_sessions=0"}, nil, streamUsage},
		{"bad max_rate", []string{"127.0.0.1:1 max_rate=-1"}, nil, streamUsage},
		{"ipv6 without brackets", []string{"::1:80"}, nil, streamUsage},
		{"bad ipv4", []string{"300.1.1.1:80"}, nil, streamUsage},
		{"empty", nil, nil, streamUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls, err := parseListeners("stream_listen", tt.entries, streamFlags)
			if err != tt.err {
				t.Fatalf("parseListeners(%q) error = %q; want %q", tt.entries, err, tt.err)
			}
			var got []string
			for _, l := range ls {
				got = append(got, l.Listener)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("parseListeners(%q) = %q; want %q", tt.entries, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("parseListeners(%q)[%d] = %q; want %q", tt.entries, i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestListenerFields(t *testing.T) {
	ls, err := parseListeners("stream_listen", []string{"[::1]:5353 udp reuseport backlog=7 so_keepalive=off"}, streamFlags)
	if err != "" {
		t.Fatal(err)
	}
	l := ls[0]
	if !l.UDP || !l.ReusePort || l.SSL || l.Backlog != 7 || l.SOKeepalive != "off" || l.Port != 5353 || l.Host != "[::1]" {
		t.Errorf("parsed %+v", l)
	}
	if l.Addr() != "[::1]:5353" {
		t.Errorf("Addr() = %q; want [::1]:5353", l.Addr())
	}
}

func TestListenerCaps(t *testing.T) {
	ls, err := parseListeners("stream_listen", []string{"127.0.0.1:53 udp max_sessions=1000 max_rate=200"}, streamFlags)
	if err != "" || ls[0].MaxSessions != 1000 || ls[0].MaxRate != 200 {
		t.Fatalf("parsed %+v, %q", ls, err)
	}
	if _, err := parseListeners("admin_listen", []string{"127.0.0.1:8001 max_sessions=5"}, httpFlags); err == "" {
		t.Error("admin_listen accepted max_sessions")
	}
}

func TestKeepAlive(t *testing.T) {
	tests := []struct {
		flag string
		want KeepAlive
	}{
		{"so_keepalive=on", KeepAlive{Enabled: true}},
		{"so_keepalive=off", KeepAlive{}},
		{"so_keepalive=30m::10", KeepAlive{Enabled: true, Idle: 30 * time.Minute, Count: 10}},
		{"so_keepalive=:5:", KeepAlive{Enabled: true, Interval: 5 * time.Second}},
	}
	for _, tt := range tests {
		ls, err := parseListeners("stream_listen", []string{"127.0.0.1:1 " + tt.flag}, streamFlags)
		if err != "" || ls[0].KeepAlive != tt.want {
			t.Errorf("%s: KeepAlive = %+v (%s); want %+v", tt.flag, ls[0].KeepAlive, err, tt.want)
		}
	}
}

func TestHTTPListenFlags(t *testing.T) {
	ls, err := parseListeners("admin_listen", []string{"127.0.0.1:8444 http2 ssl deferred"}, httpFlags)
	if err != "" || !ls[0].HTTP2 || !ls[0].SSL || !ls[0].Deferred {
		t.Fatalf("admin_listen parse = %+v, %q", ls, err)
	}
	_, err = parseListeners("admin_listen", []string{"127.0.0.1:8001 udp"}, httpFlags)
	want := "admin_listen must be of form: [off] | <ip>:<port> [ssl] [http2] [proxy_protocol] [deferred] [bind] [reuseport] [backlog=%d+] [ipv6only=on] [ipv6only=off] [so_keepalive=on] [so_keepalive=off] [so_keepalive=%w*:%w*:%d*], [... next entry ...]"
	if err != want {
		t.Errorf("udp on admin_listen: %q; want %q", err, want)
	}
}

// Entries of different keys on one TCP port are a warning, said on the
// key the user wrote: with reuseport on both the kernel splits the
// port's connections between them (status_listen's default has it).
func TestSharedPortsWarn(t *testing.T) {
	_, warnings, err := load(t, "stream_listen = 127.0.0.1:8007 reuseport, 127.0.0.1:9000 udp, 127.0.0.1:9001\n"+
		"admin_listen = 0.0.0.0:9001, 127.0.0.1:9000\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range warnings {
		got = append(got, fmt.Sprintf("%s: %s", w.Key, w.Msg))
	}
	want := []string{
		"admin_listen: admin_listen 0.0.0.0:9001 and stream_listen 127.0.0.1:9001 listen on the same port: the kernel may give either of them the other's connections",
		"stream_listen: stream_listen 127.0.0.1:8007 and status_listen 127.0.0.1:8007 listen on the same port: the kernel may give either of them the other's connections",
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, warnings, _ := load(t, "stream_listen = 127.0.0.1:8000\n"); len(warnings) != 0 {
		t.Errorf("the defaults with stream_listen on 8000 warn: %v", warnings)
	}
}

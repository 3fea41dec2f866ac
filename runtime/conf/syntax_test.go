package conf

import (
	"reflect"
	"testing"
)

func TestParseText(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []assignment
	}{
		{"plain", "log_level = debug", []assignment{{"log_level", "debug", 1}}},
		{"no spaces", "log_level=debug", []assignment{{"log_level", "debug", 1}}},
		{"comment lines", "# a\n  ; b\nlog_level = info", []assignment{{"log_level", "info", 3}}},
		{"inline comment", "log_level = warn   # the level", []assignment{{"log_level", "warn", 1}}},
		{"escaped hash", `pg_password = a\#b # secret`, []assignment{{"pg_password", "a#b", 1}}},
		{"hash at start of value", "pg_password = #x", []assignment{{"pg_password", "", 1}}},
		{"empty value", "ssl_cert =", []assignment{{"ssl_cert", "", 1}}},
		{"split at first equals", "nginx_stream_log_format = x '$a=$b'", []assignment{{"nginx_stream_log_format", "x '$a=$b'", 1}}},
		{"quotes kept", `lua_package_path = "x"`, []assignment{{"lua_package_path", `"x"`, 1}}},
		{"key normalised", "log-level = info", []assignment{{"log_level", "info", 1}}},
		{"no equals ignored", "just words\nlog_level = crit", []assignment{{"log_level", "crit", 2}}},
		{"section ignored", "[main]\nlog_level = crit", []assignment{{"log_level", "crit", 2}}},
		{"continuation", "stream_listen = 127.0.0.1:1 ssl, \\\n  127.0.0.1:2\nlog_level = info",
			[]assignment{{"stream_listen", "127.0.0.1:1 ssl,   127.0.0.1:2", 1}, {"log_level", "info", 3}}},
		{"crlf", "log_level = info\r\n", []assignment{{"log_level", "info", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseText(tt.text); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseText(%q) = %v; want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"30s", "30s", true}, {"10m", "10m0s", true}, {"1d", "24h0m0s", true}, {"500ms", "500ms", true},
		{"1m30s", "1m30s", true}, {"60", "1m0s", true}, {"", "0s", false}, {"10x", "0s", false}, {"s", "0s", false},
	}
	for _, tt := range tests {
		d, ok := parseDuration(tt.in)
		if d.String() != tt.want || ok != tt.ok {
			t.Errorf("parseDuration(%q) = %v, %v; want %s, %v", tt.in, d, ok, tt.want, tt.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"16k", 16 << 10, true}, {"10m", 10 << 20, true}, {"2048M", 2048 << 20, true}, {"1g", 1 << 30, true},
		{"512", 512, true}, {"k", 0, false}, {"-1k", 0, false}, {"1t", 0, false},
	}
	for _, tt := range tests {
		n, ok := parseSize(tt.in)
		if n != tt.want || ok != tt.ok {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %v", tt.in, n, ok, tt.want, tt.ok)
		}
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"5", 5, true}, {"0x10", 16, true}, {"1e3", 1000, true}, {"0.5", 0.5, true}, {"-2", -2, true},
		{"five", 0, false}, {"NaN", 0, false}, {"1_000", 0, false},
	}
	for _, tt := range tests {
		n, ok := parseNumber(tt.in)
		if n != tt.want || ok != tt.ok {
			t.Errorf("parseNumber(%q) = %v, %v; want %v, %v", tt.in, n, ok, tt.want, tt.ok)
		}
	}
}

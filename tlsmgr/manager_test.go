package tlsmgr

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// kongSNIs is the example from Kong's certificate tests plus a catch-all.
func kongSNIs(t *testing.T, withStar bool) Options {
	t.Helper()
	names := []string{"*.wildcard.com", "wildcard.*", "wildcard.org", "test.wildcard.*", "*.www.wildcard.com", "exact.test"}
	if withStar {
		names = append(names, "*")
	}
	var opts Options
	for i, name := range names {
		id := "cert-" + string(rune('a'+i))
		opts.Certs = append(opts.Certs, selfSigned(t, id, "sni "+name, "ecdsa"))
		opts.SNIs = append(opts.SNIs, SNI{Name: name, CertID: id})
	}
	opts.Default = []Cert{selfSigned(t, "default", "default", "ecdsa")}
	return opts
}

func TestSelectionOrder(t *testing.T) {
	tests := []struct {
		name     string
		withStar bool
		sni      string
		want     string
	}{
		{"exact", true, "exact.test", "sni exact.test"},
		{"exact wins over wildcards", true, "wildcard.org", "sni wildcard.org"},
		{"left wildcard", true, "test.wildcard.com", "sni *.wildcard.com"},
		{"left wildcard deeper", true, "test.www.wildcard.com", "sni *.www.wildcard.com"},
		{"left wins over right", true, "test.wildcard.com", "sni *.wildcard.com"},
		{"right wildcard", true, "wildcard.eu", "sni wildcard.*"},
		{"right wildcard three labels", true, "test.wildcard.org", "sni test.wildcard.*"},
		{"case folded", true, "EXACT.test", "sni exact.test"},
		{"catch-all", true, "unknown.test", "sni *"},
		{"no match without catch-all", false, "unknown.test", "default"},
		{"no SNI ignores catch-all", true, "", "default"},
		{"no SNI", false, "", "default"},
		{"invalid SNI without a match", false, "a!b.test", "default"},
		{"invalid SNI with a port", false, "exact.test:443", "default"},
		{"invalid SNI still reaches catch-all", true, "a!b.test", "sni *"},
		{"invalid SNI still reaches left wildcard", false, "a!b.wildcard.com", "sni *.wildcard.com"},
	}
	addrs := map[bool]string{}
	for _, star := range []bool{false, true} {
		m, err := New(kongSNIs(t, star))
		if err != nil {
			t.Fatal(err)
		}
		addrs[star] = serveTLS(t, m.ServerConfig())
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := servedCN(t, addrs[tt.withStar], tt.sni, nil); got != tt.want {
				t.Errorf("served for SNI %q = %q; want %q", tt.sni, got, tt.want)
			}
		})
	}
}

// TestLookupIP covers names Go clients never send (IP literals, wildcards).
func TestLookupIP(t *testing.T) {
	m, err := New(kongSNIs(t, false))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ sni, want string }{
		{"1.2.3.4", "default"},
		{"::1", "default"},
		{"*.wildcard.com", "sni *.wildcard.com"},
		{"wildcard.*", "sni wildcard.*"},
	}
	for _, tt := range tests {
		c, err := m.Certificate(&tls.ClientHelloInfo{ServerName: tt.sni})
		if err != nil || c == nil {
			t.Fatalf("Certificate(%q) = %v, %v", tt.sni, c, err)
		}
		if got := c.Leaf.Subject.CommonName; got != tt.want {
			t.Errorf("Certificate(%q) = %q; want %q", tt.sni, got, tt.want)
		}
	}
}

func TestWildSNIs(t *testing.T) {
	tests := []struct{ sni, prefix, suffix string }{
		{"a.b.c", "*.b.c", "a.b.*"},
		{"a.b", "", "a.*"},
		{"a", "", ""},
		{"a.b.c.d", "*.b.c.d", "a.b.c.*"},
		{"a.b.", "", ""},
		{"a..c", "", ""},
		{"*.b.c", "*.b.c", ""},
		{"a.b.*", "", "a.b.*"},
		{"*", "*", "*"},
		{"a.*.c", "", ""},
	}
	for _, tt := range tests {
		p, s := wildSNIs(tt.sni)
		if p != tt.prefix || s != tt.suffix {
			t.Errorf("wildSNIs(%q) = %q, %q; want %q, %q", tt.sni, p, s, tt.prefix, tt.suffix)
		}
	}
}

func TestCheckSNI(t *testing.T) {
	tests := []struct{ name, want string }{
		{"example.com", ""},
		{"*.example.com", ""},
		{"example.*", ""},
		{"under_score.test", ""},
		{"1.2.3.4", "must not be an IP"},
		{"1.2.3.4:80", "must not be an IP"},
		{"::1", "must not be an IP"},
		{"[::1]:443", "must not be an IP"},
		{"example.com:443", "must not have a port"},
		{"a!b.test", "invalid value: a!b.test"},
		{"1.2.3", "invalid value: 1.2.3"},
		{"bad-.test", "invalid value: bad-.test"},
		{"a..b", "invalid value: a..b"},
		{"a.*.b", "wildcard must be leftmost or rightmost character"},
		{"*.a.*", "only one wildcard must be specified"},
	}
	for _, tt := range tests {
		got := ""
		if err := CheckSNI(tt.name); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("CheckSNI(%q) = %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestDualCertificates(t *testing.T) {
	opts := Options{
		Certs:   []Cert{dual(t, "dual", "entity")},
		SNIs:    []SNI{{Name: "dual.test", CertID: "dual"}},
		Default: []Cert{selfSigned(t, "d-rsa", "default rsa", "rsa"), selfSigned(t, "d-ec", "default ecdsa", "ecdsa")},
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m.ServerConfig())
	ecdsaOnly := func() *tls.Config {
		return &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}
	}
	rsaOnly := func() *tls.Config {
		return &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}}
	}
	tests := []struct {
		name string
		sni  string
		cfg  *tls.Config
		want string
	}{
		{"entity ECDSA client", "dual.test", ecdsaOnly(), "entity ecdsa"},
		{"entity RSA client", "dual.test", rsaOnly(), "entity rsa"},
		{"entity TLS 1.3 client", "dual.test", &tls.Config{MinVersion: tls.VersionTLS13}, "entity ecdsa"},
		{"default ECDSA client", "", ecdsaOnly(), "default ecdsa"},
		{"default RSA client", "other.test", rsaOnly(), "default rsa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := servedCN(t, addr, tt.sni, tt.cfg); got != tt.want {
				t.Errorf("served = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestProtocols(t *testing.T) {
	def := []Cert{selfSigned(t, "d", "default", "ecdsa")}
	tests := []struct {
		name      string
		protocols []string
		client    *tls.Config
		want      uint16 // 0: the handshake must fail
	}{
		{"default 1.3", nil, &tls.Config{}, tls.VersionTLS13},
		{"default 1.2", nil, &tls.Config{MaxVersion: tls.VersionTLS12}, tls.VersionTLS12},
		{"intermediate 1.2", []string{"TLSv1.2", "TLSv1.3"}, &tls.Config{MaxVersion: tls.VersionTLS12}, tls.VersionTLS12},
		{"modern refuses 1.2", []string{"TLSv1.3"}, &tls.Config{MaxVersion: tls.VersionTLS12}, 0},
		{"modern 1.3", []string{"TLSv1.3"}, &tls.Config{}, tls.VersionTLS13},
		{"1.2 only refuses 1.3 client", []string{"TLSv1.2"}, &tls.Config{MinVersion: tls.VersionTLS13}, 0},
		{"old allows 1.0", []string{"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"},
			&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, tls.VersionTLS10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(Options{Default: def, Protocols: tt.protocols})
			if err != nil {
				t.Fatal(err)
			}
			st, err := handshake(t, serveTLS(t, m.ServerConfig()), tt.client)
			switch {
			case tt.want == 0 && err == nil:
				t.Fatalf("handshake succeeded with %s; want failure", tls.VersionName(st.Version))
			case tt.want != 0 && err != nil:
				t.Fatalf("handshake: %v", err)
			case tt.want != 0 && st.Version != tt.want:
				t.Errorf("version = %s; want %s", tls.VersionName(st.Version), tls.VersionName(tt.want))
			}
		})
	}
	if _, err := New(Options{Protocols: []string{"SSLv3"}}); err == nil {
		t.Error(`New(Protocols: ["SSLv3"]) succeeded; want error`)
	}
}

func TestCipherMapping(t *testing.T) {
	intermediate := strings.Split("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"+
		"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"+
		"ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"+
		"DHE-RSA-CHACHA20-POLY1305", ":")
	tests := []struct {
		name        string
		in          []string
		want        []uint16
		unsupported []string
	}{
		{"intermediate", intermediate, []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}, []string{"DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305"}},
		{"legacy", []string{"AES128-SHA", "DES-CBC3-SHA", "ECDHE-RSA-AES128-SHA256", "AES128-SHA"}, []uint16{
			tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
		}, nil},
		{"fips keywords", []string{"TLSv1.2+FIPS", "kRSA+FIPS", "!eNULL", "!aNULL"}, nil,
			[]string{"TLSv1.2+FIPS", "kRSA+FIPS", "!eNULL", "!aNULL"}},
		{"none", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unsupported := cipherSuites(tt.in)
			if !slices.Equal(got, tt.want) || !slices.Equal(unsupported, tt.unsupported) {
				t.Errorf("cipherSuites(%q) = %v, %q; want %v, %q", tt.in, got, unsupported, tt.want, tt.unsupported)
			}
		})
	}
	// Every OpenSSL name in the table exists in crypto/tls.
	ids := goSuites()
	for openssl, iana := range opensslToIANA {
		if _, ok := ids[iana]; !ok {
			t.Errorf("%s maps to %s, which crypto/tls lacks", openssl, iana)
		}
	}
}

func TestCiphersHandshake(t *testing.T) {
	m, err := New(Options{
		Default: []Cert{selfSigned(t, "d", "default", "rsa")},
		Ciphers: []string{"ECDHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES128-GCM-SHA256"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Unsupported(); !slices.Equal(got, []string{"DHE-RSA-AES128-GCM-SHA256"}) {
		t.Errorf("Unsupported() = %q", got)
	}
	addr := serveTLS(t, m.ServerConfig())
	st, err := handshake(t, addr, &tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if st.CipherSuite != tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 {
		t.Errorf("cipher = %s; want TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", tls.CipherSuiteName(st.CipherSuite))
	}
	_, err = handshake(t, addr, &tls.Config{MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}})
	if err == nil {
		t.Error("handshake with a suite outside Ciphers succeeded; want failure")
	}
}

func TestNewErrors(t *testing.T) {
	good := selfSigned(t, "good", "good", "rsa")
	ec := selfSigned(t, "ec", "ec", "ecdsa")
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"bad cert", Options{Certs: []Cert{{ID: "c1", CertPEM: []byte("nope"), KeyPEM: good.KeyPEM}}}, "certificate c1: "},
		{"key mismatch", Options{Certs: []Cert{{ID: "c2", CertPEM: good.CertPEM, KeyPEM: ec.KeyPEM}}}, "certificate c2: "},
		{"bad alt", Options{Certs: []Cert{{ID: "c3", CertPEM: good.CertPEM, KeyPEM: good.KeyPEM, AltCertPEM: ec.CertPEM}}},
			"certificate c3: alternative certificate: "},
		{"bad default", Options{Default: []Cert{{ID: "/ssl/x.crt", CertPEM: good.CertPEM}}}, "certificate /ssl/x.crt: "},
		{"unknown cert", Options{SNIs: []SNI{{Name: "a.test", CertID: "missing"}}}, "sni a.test: certificate missing not found"},
		{"duplicate sni", Options{Certs: []Cert{good}, SNIs: []SNI{{Name: "a.test", CertID: "good"}, {Name: "A.test", CertID: "good"}}},
			"sni A.test: duplicate name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("New() error = %v; want prefix %q", err, tt.want)
			}
		})
	}
}

func TestNoCertificate(t *testing.T) {
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := m.Certificate(&tls.ClientHelloInfo{ServerName: "a.test"}); c != nil || err != nil {
		t.Errorf("Certificate() = %v, %v; want nil, nil", c, err)
	}
	if _, err := handshake(t, serveTLS(t, m.ServerConfig()), nil); err == nil {
		t.Error("handshake without certificates succeeded")
	}
}

func TestHook(t *testing.T) {
	hookCert := selfSigned(t, "hook", "from hook", "ecdsa")
	pair, err := keyPair(hookCert.CertPEM, hookCert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{
		Default: []Cert{selfSigned(t, "d", "default", "ecdsa")},
		Hook: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			switch hello.ServerName {
			case "hook.test":
				return &pair, nil
			case "refuse.test":
				return nil, errTestHook
			}
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m.ServerConfig())
	if got := servedCN(t, addr, "hook.test", nil); got != "from hook" {
		t.Errorf("hook.test served %q; want from hook", got)
	}
	if got := servedCN(t, addr, "other.test", nil); got != "default" {
		t.Errorf("other.test served %q; want default", got)
	}
	if _, err := handshake(t, addr, &tls.Config{ServerName: "refuse.test"}); err == nil {
		t.Error("handshake succeeded although the hook failed")
	}
	if _, err := m.Certificate(&tls.ClientHelloInfo{ServerName: "refuse.test"}); !errors.Is(err, errTestHook) {
		t.Errorf("Certificate() error = %v; want the hook's", err)
	}
}

func TestSessionTickets(t *testing.T) {
	def := []Cert{selfSigned(t, "d", "default", "ecdsa")}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			m, err := New(Options{Default: def, SessionTickets: true, SessionTimeout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			var clock atomic.Int64
			clock.Store(time.Now().Unix())
			m.now = func() time.Time { return time.Unix(clock.Load(), 0) }
			addr := serveTLS(t, m.ServerConfig())
			cache := tls.NewLRUClientSessionCache(4)
			resumed := func() bool {
				t.Helper()
				st, err := handshake(t, addr, &tls.Config{MaxVersion: version, MinVersion: version, ClientSessionCache: cache})
				if err != nil {
					t.Fatal(err)
				}
				return st.DidResume
			}
			if resumed() {
				t.Fatal("first connection resumed")
			}
			if !resumed() {
				t.Error("second connection within the timeout did not resume")
			}
			clock.Add(int64(2 * time.Hour / time.Second))
			if resumed() {
				t.Error("connection after the timeout resumed")
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		m, err := New(Options{Default: def, SessionTickets: false})
		if err != nil {
			t.Fatal(err)
		}
		addr := serveTLS(t, m.ServerConfig())
		cache := tls.NewLRUClientSessionCache(4)
		for range 2 {
			st, err := handshake(t, addr, &tls.Config{ClientSessionCache: cache})
			if err != nil {
				t.Fatal(err)
			}
			if st.DidResume {
				t.Error("resumed with session tickets off")
			}
		}
	})
}

// TestReplaceAndWithdraw: a certificate entity rotated in place serves
// its new pair to the next handshake, under every SNI that names it;
// withdrawn, its handshakes fail with the reason, and other entities and
// the default are untouched.
func TestReplaceAndWithdraw(t *testing.T) {
	opts := kongSNIs(t, false)
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m.ServerConfig())
	if got := servedCN(t, addr, "exact.test", nil); got != "sni exact.test" {
		t.Fatalf("before: served %q", got)
	}
	rotated := selfSigned(t, "cert-f", "rotated", "rsa")
	if err := m.Replace(rotated); err != nil {
		t.Fatal(err)
	}
	if got := servedCN(t, addr, "exact.test", nil); got != "rotated" {
		t.Errorf("after Replace: served %q; want the rotated pair", got)
	}
	if got := servedCN(t, addr, "wildcard.org", nil); got != "sni wildcard.org" {
		t.Errorf("another entity serves %q", got)
	}
	bad := rotated
	bad.KeyPEM = selfSigned(t, "x", "other", "ecdsa").KeyPEM
	if err := m.Replace(bad); err == nil {
		t.Error("Replace with a key that does not match: no error")
	}
	if err := m.Replace(selfSigned(t, "nope", "n", "ecdsa")); err == nil || !strings.Contains(err.Error(), "certificate nope not found") {
		t.Errorf("Replace of an unknown entity: %v", err)
	}
	if got := servedCN(t, addr, "exact.test", nil); got != "rotated" {
		t.Errorf("a failed Replace changed what is served: %q", got)
	}
	m.Withdraw("cert-f", errors.New("secret gone"))
	if _, err := m.Certificate(&tls.ClientHelloInfo{ServerName: "exact.test"}); err == nil || err.Error() != "secret gone" {
		t.Errorf("withdrawn: Certificate error = %v", err)
	}
	if _, err := handshake(t, addr, &tls.Config{ServerName: "exact.test", InsecureSkipVerify: true}); err == nil {
		t.Error("withdrawn: handshake succeeded")
	}
	if got := servedCN(t, addr, "", nil); got != "default" {
		t.Errorf("no SNI after Withdraw: served %q", got)
	}
}

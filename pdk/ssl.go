package pdk

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"

	glua "github.com/yuin/gopher-lua"
)

// The types behind the parsed objects set_tls_cert_key and
// set_tls_verify_store take. Kong passes OpenSSL cdata there; gong passes
// these as userdata (chains and keys) or as the ctx of a store table.
type (
	pemChain struct{ der [][]byte }
	pemKey   struct{ pem []byte }
	x509Cert struct{ cert *x509.Certificate }
	// x509Store is resty.openssl.x509.store's trust store.
	x509Store struct{ pool *x509.CertPool }
)

// openNgxSSL is the part of OpenResty's ngx.ssl a stream plugin needs to
// choose the upstream client certificate: parse_pem_cert and
// parse_pem_priv_key, which return nil and OpenSSL's error for PEM data
// they cannot read.
func openNgxSSL(L *glua.LState) int {
	L.Push(L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"parse_pem_cert": func(L *glua.LState) int {
			var chain pemChain
			for rest := []byte(L.CheckString(1)); ; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				if b.Type == "CERTIFICATE" {
					chain.der = append(chain.der, b.Bytes)
				}
			}
			if len(chain.der) == 0 {
				return pushErr(L, "PEM_read_bio_X509_AUX() failed")
			}
			return pushUserData(L, &chain)
		},
		"parse_pem_priv_key": func(L *glua.LState) int {
			data := []byte(L.CheckString(1))
			if b, _ := pem.Decode(data); b == nil || !isPrivateKey(b) {
				return pushErr(L, "PEM_read_bio_PrivateKey() failed")
			}
			return pushUserData(L, &pemKey{pem: data})
		},
	}))
	return 1
}

func isPrivateKey(b *pem.Block) bool {
	if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return true
	}
	_, err := x509.ParseECPrivateKey(b.Bytes)
	return err == nil
}

// openX509 is resty.openssl.x509 reduced to new(pem): a certificate for
// a store's add.
func openX509(L *glua.LState) int {
	L.Push(L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"new": func(L *glua.LState) int {
			data := []byte(L.CheckString(1))
			if b, _ := pem.Decode(data); b != nil {
				data = b.Bytes
			}
			cert, err := x509.ParseCertificate(data)
			if err != nil {
				return pushErr(L, "x509.new: "+err.Error())
			}
			return pushUserData(L, &x509Cert{cert: cert})
		},
	}))
	return 1
}

// openX509Store is resty.openssl.x509.store reduced to new, add (an
// x509 certificate) and load_file (a PEM bundle). A store is a table, as
// resty.openssl's objects are, whose ctx holds the certificates.
func openX509Store(L *glua.LState) int {
	methods := L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"add": func(L *glua.LState) int {
			st := checkStore(L, 1)
			c, ok := userData[*x509Cert](L.Get(2))
			if !ok {
				L.ArgError(2, "expect a x509 instance")
			}
			st.pool.AddCert(c.cert)
			L.Push(glua.LTrue)
			return 1
		},
		"load_file": func(L *glua.LState) int {
			st := checkStore(L, 1)
			path := L.CheckString(2)
			data, err := os.ReadFile(path)
			if err != nil {
				return pushErr(L, "x509.store:load_file: "+err.Error())
			}
			if !st.pool.AppendCertsFromPEM(data) {
				return pushErr(L, "x509.store:load_file: no certificate in "+path)
			}
			L.Push(glua.LTrue)
			return 1
		},
	})
	mt := L.NewTable()
	mt.RawSetString("__index", methods)
	L.Push(L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"new": func(L *glua.LState) int {
			t := L.NewTable()
			ud := L.NewUserData()
			ud.Value = &x509Store{pool: x509.NewCertPool()}
			t.RawSetString("ctx", ud)
			L.SetMetatable(t, mt)
			L.Push(t)
			return 1
		},
	}))
	return 1
}

func checkStore(L *glua.LState, n int) *x509Store {
	st, ok := storeOf(L.Get(n))
	if !ok {
		L.ArgError(n, "expect a x509.store instance, call methods with ':'")
	}
	return st
}

// storeOf returns the trust store of a resty.openssl.x509.store table.
func storeOf(v glua.LValue) (*x509Store, bool) {
	t, ok := v.(*glua.LTable)
	if !ok {
		return nil, false
	}
	return userData[*x509Store](t.RawGetString("ctx"))
}

func pushUserData(L *glua.LState, v any) int {
	ud := L.NewUserData()
	ud.Value = v
	L.Push(ud)
	return 1
}

// userData returns v's Go value when v is userdata holding a T.
func userData[T any](v glua.LValue) (T, bool) {
	var zero T
	ud, ok := v.(*glua.LUserData)
	if !ok {
		return zero, false
	}
	t, ok := ud.Value.(T)
	return t, ok
}

// serviceSetTLSCertKey is kong.service.set_tls_cert_key(chain, key): the
// client certificate of this session's upstream handshake.
func serviceSetTLSCertKey(L *glua.LState, s *State) int {
	chain, ok := userData[*pemChain](L.Get(1))
	if !ok {
		L.RaiseError("chain must be a parsed cdata object")
	}
	key, ok := userData[*pemKey](L.Get(2))
	if !ok {
		L.RaiseError("key must be a parsed cdata object")
	}
	s = sessionState(L, s)
	cert, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain.der[0]}), key.pem)
	if err != nil {
		return pushErr(L, err.Error())
	}
	cert.Certificate = chain.der
	s.Upstream.TLSClientCert = &cert
	L.Push(glua.LTrue)
	return 1
}

// serviceSetTLSVerifyStore is kong.service.set_tls_verify_store(store):
// the trust store this session verifies its upstream against.
func serviceSetTLSVerifyStore(L *glua.LState, s *State) int {
	st, ok := storeOf(L.Get(1))
	if !ok {
		L.RaiseError("argument must be a resty.openssl.x509.store object")
	}
	s = sessionState(L, s)
	s.Upstream.TLSRoots = st.pool
	L.Push(glua.LTrue)
	return 1
}

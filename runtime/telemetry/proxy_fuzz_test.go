package telemetry

import (
	"bufio"
	"bytes"
	"net"
	"testing"

	"github.com/pires/go-proxyproto"
)

// FuzzProxyHeader reads arbitrary PROXY v1/v2 headers with TLVs as a
// proxy_protocol listener does (go-proxyproto parses, gong takes the
// source address and the traceparent TLV): nothing may panic, and a
// traceparent gong accepts must survive formatting again.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\nhello"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 5000 80\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	src := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5000}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.2"), Port: 80}
	for _, tlvs := range [][]proxyproto.TLV{
		nil,
		{{Type: TraceparentTLV, Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}},
		{{Type: TraceparentTLV, Value: []byte("zz")}, {Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("example.com")}},
	} {
		h := proxyproto.HeaderProxyFromAddrs(2, src, dst)
		if err := h.SetTLVs(tlvs); err != nil {
			f.Fatal(err)
		}
		b, err := h.Format()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(data), 256))
		if err != nil {
			return
		}
		if a, ok := h.SourceAddr.(*net.TCPAddr); ok {
			_ = a.AddrPort()
		}
		tlvs, err := h.TLVs()
		if err != nil {
			return
		}
		for _, tlv := range tlvs {
			if tlv.Type != TraceparentTLV {
				continue
			}
			sc := ParseTraceparent(tlv.Value)
			if !sc.IsValid() {
				continue
			}
			if again := ParseTraceparent(FormatTraceparent(sc)); !again.Equal(sc) {
				t.Fatalf("traceparent %q: parsed %v, formatted and parsed again %v", tlv.Value, sc, again)
			}
		}
	})
}

package stream

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/pires/go-proxyproto"
)

// FuzzProxyHeaderSize checks what a loop decides from a client's first
// bytes on a proxy_protocol listener: proxyHeaderSize never panics, never
// reaches past what it was given, stops waiting before the longest header
// the parser takes, and agrees with the parser, which must read exactly
// the header it measured.
func FuzzProxyHeaderSize(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\nhello"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 5000 80\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\n"))
	f.Add([]byte(proxyV2Header(f, 5000) + "data"))
	f.Add([]byte(proxyV2Header(f, 5000)[:15]))
	f.Fuzz(func(t *testing.T, data []byte) {
		size := proxyHeaderSize(data)
		switch {
		case size < -1 || size > len(data):
			t.Fatalf("size %d of %d bytes", size, len(data))
		case size == 0 && len(data) >= 16+int(proxyproto.MaxV2HeaderSize):
			t.Fatalf("still waiting after %d bytes", len(data))
		case size > 0 && proxyHeaderSize(data[:size]) != size:
			t.Fatalf("the header alone measures %d; with what follows %d", proxyHeaderSize(data[:size]), size)
		}
		src := bytes.NewReader(data)
		br := bufio.NewReaderSize(src, len(data)+16)
		if _, err := proxyproto.Read(br); err != nil {
			return
		}
		if read := len(data) - br.Buffered() - src.Len(); size != read {
			t.Fatalf("the parser took a %d-byte header from %q; proxyHeaderSize says %d", read, data, size)
		}
	})
}

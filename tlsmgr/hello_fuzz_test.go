package tlsmgr

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// bytesConn is a connection whose peer sent data and then closed.
type bytesConn struct {
	net.Conn // nil: only what ReadClientHello uses is implemented
	r        *bytes.Reader
}

func (c *bytesConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error) { return 0, errors.New("the hello was answered") }

// FuzzReadClientHello feeds arbitrary client bytes to ReadClientHello,
// stopping at the hello: it must not panic, must keep every byte it read
// for the replay and no more than the limit, and must only report TLS for
// a handshake record.
func FuzzReadClientHello(f *testing.F) {
	f.Add(clientHelloBytes(&testing.T{}, "example.com", []string{"h2", "http/1.1"}), 16384)
	f.Add(clientHelloBytes(&testing.T{}, "", nil), 100)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), 16384)
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00}, 16384)
	f.Add([]byte{0x16, 0x03, 0x01, 0xff, 0xff}, 16384)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		limit = 1 + abs(limit)%(1<<15)
		h, err := stopAfterHello(&bytesConn{r: bytes.NewReader(data)}, limit)
		if !bytes.HasPrefix(data, h.Raw) {
			t.Fatalf("Raw %x is not the start of the client's bytes", h.Raw)
		}
		if len(h.Raw) > limit {
			t.Fatalf("read %d bytes past the limit %d", len(h.Raw), limit)
		}
		if h.IsTLS && data[0] != recordTypeHandshake {
			t.Fatalf("IsTLS for first byte %#x", data[0])
		}
		if err == nil && h.IsTLS && len(h.Raw) < 5 {
			t.Fatalf("a ClientHello in %d bytes", len(h.Raw))
		}
		if len(data) == 0 && !errors.Is(err, io.EOF) {
			t.Fatalf("no bytes: err = %v; want EOF", err)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

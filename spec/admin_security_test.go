package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// emptyConfig is a valid declarative configuration with no entities.
const emptyConfig = "_format_version: \"3.0\"\n"

// adminRequest sends one request to the Admin API at base with the given
// Host (none: the URL's), body type and extra headers, and returns its
// status and body.
func adminRequest(t *testing.T, method, base, path, host, contentType, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(data)
}

// TestAdminRefusesBrowserRequests: a web page cannot change the
// configuration through the Admin API, by a form, a cross-origin fetch or
// DNS rebinding; curl, deck and same-origin pages still can.
func TestAdminRefusesBrowserRequests(t *testing.T) {
	t.Parallel()
	_, base := startAdmin(t, "admin_allowed_hosts = localhost, admin.example\n", emptyConfig)
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	json := `{"_format_version":"3.0"}`
	for _, tc := range []struct {
		name, method, path, host, contentType, body string
		headers                                     []string
		want                                        int
		wantBody                                    string
	}{
		{"form-like text/plain config", "POST", "/config", "", "text/plain", emptyConfig, nil, 415, "Unsupported Media Type"},
		{"body without a type", "POST", "/config", "", "", json, nil, 415, "Unsupported Media Type"},
		{"YAML outside /config", "POST", "/schemas/services/validate", "", "text/yaml", "name: x", nil, 415, "Unsupported Media Type"},
		{"foreign Origin", "POST", "/config", "", "application/json", json, []string{"Origin", "http://evil.example"}, 403, "cross-origin request refused"},
		{"foreign Origin, form", "POST", "/config", "", "application/x-www-form-urlencoded", "config=" + json, []string{"Origin", "http://evil.example"}, 403, "cross-origin request refused"},
		{"cross-site fetch", "POST", "/config", "", "application/json", json, []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-origin request refused"},
		{"cross-site DELETE", "DELETE", "/sessions/1", "", "", "", []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-origin request refused"},
		{"rebound name reads", "GET", "/config", "evil.example:" + port, "", "", nil, 403, "Host 'evil.example:" + port + "' is not an address of this Admin API"},
		{"rebound name writes", "POST", "/config", "evil.example", "application/json", json, nil, 403, "admin_allowed_hosts"},

		{"curl", "POST", "/config", "", "application/json", json, nil, 201, ""},
		{"curl --data-binary", "POST", "/config", "", "text/yaml", emptyConfig, nil, 201, ""},
		{"application/x-yaml", "POST", "/config", "", "application/x-yaml", emptyConfig, nil, 201, ""},
		{"form", "POST", "/config", "", "application/x-www-form-urlencoded", "config=" + json, nil, 201, ""},
		{"same origin", "POST", "/config", "", "application/json", json, []string{"Origin", base, "Sec-Fetch-Site", "same-origin"}, 201, ""},
		{"localhost", "GET", "/", "localhost:" + port, "", "", nil, 200, ""},
		{"listed name", "GET", "/", "admin.example", "", "", nil, 200, ""},
		{"bodiless PUT", "PUT", "/upstreams/x/targets/y/healthy", "", "", "", nil, 404, ""},
	} {
		code, body := adminRequest(t, tc.method, base, tc.path, tc.host, tc.contentType, tc.body, tc.headers...)
		if code != tc.want || !strings.Contains(body, tc.wantBody) {
			t.Errorf("%s: %s %s = %d %s; want %d %q", tc.name, tc.method, tc.path, code, body, tc.want, tc.wantBody)
		}
	}
}

// TestAdminTwoContentTypes: several Content-Type headers are refused, as
// Kong does.
func TestAdminTwoContentTypes(t *testing.T) {
	t.Parallel()
	_, base := startAdmin(t, "", emptyConfig)
	req, err := http.NewRequest("POST", base+"/config", strings.NewReader(`{"_format_version":"3.0"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Content-Type", "application/json")
	req.Header.Add("Content-Type", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != 400 || !strings.Contains(string(data), "Multiple Content-Type headers not allowed") {
		t.Errorf("POST /config with two Content-Type headers = %d %s; want 400", res.StatusCode, data)
	}
}

// TestAdminAllowedHostsAny: admin_allowed_hosts = * turns the Host check
// off, for an Admin API behind a proxy that rewrites nothing.
func TestAdminAllowedHostsAny(t *testing.T) {
	t.Parallel()
	_, base := startAdmin(t, "admin_allowed_hosts = *\n", emptyConfig)
	if code, body := adminRequest(t, "GET", base, "/", "anything.example", "", ""); code != 200 {
		t.Errorf("GET / with Host anything.example = %d %s; want 200", code, body)
	}
}

// sendProxied opens a connection to addr, sends a PROXY v1 header naming
// client, then one Admin API request, and returns the status line.
func sendProxied(t *testing.T, addr, client string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "PROXY TCP4 %s 127.0.0.1 5555 80\r\nGET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", client)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// TestAdminProxyProtocolTrustedIPs: on an admin_listen entry with
// proxy_protocol, the header's client address is believed only from
// trusted_ips, as in Kong (set_real_ip_from).
func TestAdminProxyProtocolTrustedIPs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		trusted, wantClient string
	}{
		{"", "127.0.0.1"},
		{"192.0.2.0/24", "127.0.0.1"},
		{"127.0.0.1", "192.0.2.7"},
	} {
		g := startGong(t, "admin_listen = 127.0.0.1:0 proxy_protocol\ntrusted_ips = "+tc.trusted+"\n", emptyConfig)
		addr := g.srv.APIAddrs("admin_listen")[0].String()
		if got := sendProxied(t, addr, "192.0.2.7"); got != "HTTP/1.1 200 OK" {
			t.Fatalf("trusted_ips %q: %s", tc.trusted, got)
		}
		g.stop()
		log, err := os.ReadFile(filepath.Join(g.dir, "logs", "admin_access.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(log), tc.wantClient+" ") {
			t.Errorf("trusted_ips %q: admin_access_log %q; want the client %s", tc.trusted, log, tc.wantClient)
		}
	}
}

// waitClosed reads c until the server closes it, failing after 5 s.
func waitClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: the connection is still open after 5 s", what)
	}
}

// TestAdminTimeouts: idle keep-alive connections and requests whose body
// never comes are closed after admin_idle_timeout and admin_read_timeout,
// on the Admin and the Status API alike.
func TestAdminTimeouts(t *testing.T) {
	t.Parallel()
	g := startGong(t, "admin_listen = 127.0.0.1:0\nstatus_listen = 127.0.0.1:0\n"+
		"admin_idle_timeout = 200ms\nadmin_read_timeout = 300ms\n", emptyConfig)
	for _, property := range []string{"admin_listen", "status_listen"} {
		addr := g.srv.APIAddrs(property)[0].String()

		idle := dial(t, addr)
		fmt.Fprint(idle, "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(idle), nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: GET /status: %v %v", property, res, err)
		}
		waitClosed(t, idle, property+" idle keep-alive connection")

		slow := dial(t, addr)
		fmt.Fprint(slow, "POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		waitClosed(t, slow, property+" request whose body never ends")
	}
}

// TestAdminMaxConnections: past admin_max_connections, a new client waits
// until a connection closes.
func TestAdminMaxConnections(t *testing.T) {
	t.Parallel()
	g := startGong(t, "admin_listen = 127.0.0.1:0\nadmin_max_connections = 2\n", emptyConfig)
	addr := g.srv.APIAddrs("admin_listen")[0].String()
	var held []net.Conn
	for range 2 {
		c := dial(t, addr)
		fmt.Fprint(c, "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("GET /status: %v %v", res, err)
		}
		held = append(held, c)
	}
	third := dial(t, addr)
	fmt.Fprint(third, "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	br := bufio.NewReader(third)
	third.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection was served past admin_max_connections = 2 (read: %v)", err)
	}
	held[0].Close()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("after a connection closed, the third: %v %v", res, err)
	}
}

package testsvc

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RedisServer is where the Debian package installs redis-server.
const RedisServer = "/usr/bin/redis-server"

// Redis is a redis-server a test started.
type Redis struct {
	Addr string // 127.0.0.1:port
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
	t    testing.TB
	tls  bool // the port speaks TLS only
}

// StartRedis starts redis-server on a free port in a temporary directory,
// without persistence; extra are more "--name value" arguments (for
// example "--requirepass", "secret"). The server stops when the test
// ends. The test is skipped when redis-server is not installed.
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	return startRedis(t, false, extra)
}

// StartRedisTLS is StartRedis with a port that speaks TLS only, serving
// the certificate and key files given.
func StartRedisTLS(t testing.TB, certFile, keyFile string, extra ...string) *Redis {
	t.Helper()
	return startRedis(t, true, append([]string{"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-auth-clients", "no"}, extra...))
}

func startRedis(t testing.TB, useTLS bool, extra []string) *Redis {
	t.Helper()
	if _, err := os.Stat(RedisServer); err != nil {
		t.Skipf("%s is not installed (apt-get install redis-server)", RedisServer)
	}
	r := &Redis{dir: t.TempDir(), t: t, tls: useTLS}
	r.Port = freeRedisPort(t)
	r.Addr = fmt.Sprintf("127.0.0.1:%d", r.Port)
	ports := []string{"--port", fmt.Sprint(r.Port)}
	if useTLS {
		ports = []string{"--port", "0", "--tls-port", fmt.Sprint(r.Port)}
	}
	r.args = append(append([]string{"--bind", "127.0.0.1", "--dir", r.dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", filepath.Join(r.dir, "redis.log")}, ports...), extra...)
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start starts the server again after Stop, on the same port.
func (r *Redis) Start() {
	r.t.Helper()
	r.cmd = exec.Command(RedisServer, r.args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r.ping() {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.Stop()
			r.t.Fatalf("redis-server on %s did not answer PING within 10s; its log:\n%s", r.Addr, log)
		}
		time.Sleep(20 * time.Millisecond) // polling for readiness, bounded by the deadline
	}
}

// ping reports whether the server answers PING (or asks for a password,
// which also means it is up).
func (r *Redis) ping() bool {
	var c net.Conn
	var err error
	if r.tls {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: &tls.Config{InsecureSkipVerify: true}}
		c, err = d.Dial("tcp", r.Addr)
	} else {
		c, err = net.DialTimeout("tcp", r.Addr, time.Second)
	}
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

// Stop kills the server and waits for it to exit; safe to call twice.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// freeRedisPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeRedisPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

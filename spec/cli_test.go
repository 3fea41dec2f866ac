package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// gongBinary builds cmd/gong once per test run.
func gongBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gong-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gong")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/gong").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building gong: %v", buildErr)
	}
	return binPath
}

// runGong runs the binary to completion in dir and returns its outputs
// and exit status.
func runGong(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gongBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// startGongProcess runs "gong start" with args in dir, socket (see
// activationSocket) passed to it and its stderr going to stderr, and returns once it has printed "gong started". exited delivers
// its end (once; send it back to read it again); the test's end kills it.
func startGongProcess(t *testing.T, dir string, stderr io.Writer, socket *os.File, args ...string) (cmd *exec.Cmd, exited chan error) {
	t.Helper()
	cmd = exec.Command(gongBinary(t), append([]string{"start"}, args...)...)
	cmd.Dir = dir
	activate(cmd, socket)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	started := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if sc.Text() == "gong started" {
				started <- sc.Text()
			}
		}
		exited <- cmd.Wait()
		started <- strings.Join(lines, "\n")
	}()
	select {
	case line := <-started:
		if line != "gong started" {
			t.Fatalf("gong did not start: %s", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gong did not start in time")
	}
	return cmd, exited
}

func TestCLICheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.conf"), "database = off\nstream_listen = 127.0.0.1:9000 ssl\n")
	writeFile(t, filepath.Join(dir, "bad.conf"), "log_level = loud\nstream_listen = 127.0.0.1\nstream_lisen = x\n")
	out, _, code := runGong(t, dir, nil, "check", "good.conf")
	if code != 0 || out != "configuration at good.conf is valid\n" {
		t.Errorf("check good.conf: %q, exit %d", out, code)
	}
	_, errOut, code := runGong(t, dir, nil, "check", "bad.conf")
	want := "Warning: bad.conf:3: unknown property 'stream_lisen' ignored; did you mean 'stream_listen'?\n" +
		"Error: bad.conf:1: log_level has an invalid value: 'loud' (debug, info, notice, warn, error, crit, alert, emerg)\n" +
		"Error: bad.conf:2: stream_listen must be of form: [off] | <ip>:<port> [udp] [ssl] [proxy_protocol] [bind] [reuseport] [backlog=%d+] [ipv6only=on] [ipv6only=off] [so_keepalive=on] [so_keepalive=off] [so_keepalive=%w*:%w*:%d*] [max_sessions=%d+] [max_rate=%d+], [... next entry ...]\n"
	if code != 1 || errOut != want {
		t.Errorf("check bad.conf: exit %d, stderr:\n%s\nwant:\n%s", code, errOut, want)
	}
	_, errOut, code = runGong(t, dir, nil, "check", "missing.conf")
	if code != 1 || !strings.HasPrefix(errOut, "Error: no file at: missing.conf\n") {
		t.Errorf("check missing.conf: exit %d, %q", code, errOut)
	}
	// The environment overrides the file, as for start.
	_, errOut, code = runGong(t, dir, []string{"KONG_LOG_LEVEL=shout"}, "check", "good.conf")
	if code != 1 || !strings.Contains(errOut, "Error: KONG_LOG_LEVEL: log_level has an invalid value: 'shout'") {
		t.Errorf("check with KONG_LOG_LEVEL: exit %d, %q", code, errOut)
	}
}

func TestCLIConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, _, code := runGong(t, dir, nil, "config", "init")
	if code != 0 || out != "wrote kong.yml\n" {
		t.Fatalf("config init: %q, exit %d", out, code)
	}
	_, errOut, code := runGong(t, dir, nil, "config", "init")
	if code != 1 || !strings.HasPrefix(errOut, "Error: kong.yml already exists in the current directory.\nWill not overwrite it.\n") {
		t.Errorf("config init over a file: exit %d, %q", code, errOut)
	}
	out, _, code = runGong(t, dir, nil, "config", "parse", "kong.yml")
	if code != 0 || out != "parse successful\n" {
		t.Errorf("config parse of the init file: %q, exit %d", out, code)
	}
	writeFile(t, filepath.Join(dir, "bad.yml"), `_format_version: "3.0"
services:
  - name: s
    host: example.com
    protocol: tcp
    routes:
      - protocols: [tls, tls_passthrough]
        snis: [a.example.com]
      - protocols: [tcp]
        methods: [GET]
`)
	_, errOut, code = runGong(t, dir, nil, "config", "parse", "bad.yml")
	for _, want := range []string{
		"Error: Failed parsing:\n",
		"in 'protocols': these sets are mutually exclusive: ('tcp', 'tls', 'udp'), ('tls_passthrough')",
		"in 'methods': cannot set 'methods' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'",
		"must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'",
	} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("config parse bad.yml: exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
	_, errOut, code = runGong(t, dir, nil, "config", "parse")
	if code != 1 || !strings.HasPrefix(errOut, "Error: expected a declarative configuration file") {
		t.Errorf("config parse without a file: exit %d, %q", code, errOut)
	}
}

func TestCLIVersionAndHelp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, _, code := runGong(t, dir, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "gong ") {
		t.Errorf("version: %q, exit %d", out, code)
	}
	out, _, _ = runGong(t, dir, nil, "version", "--all")
	if !strings.Contains(out, "Go: go1.") || !strings.Contains(out, "Lua: ") {
		t.Errorf("version --all: %q", out)
	}
	for _, verb := range []string{"start", "stop", "quit", "reload", "restart", "health", "check", "prepare", "config", "version"} {
		out, _, code := runGong(t, dir, nil, verb, "--help")
		if code != 0 || !strings.HasPrefix(out, "Usage: gong "+verb) {
			t.Errorf("%s --help: exit %d, %q", verb, code, out)
		}
	}
	_, errOut, code := runGong(t, dir, nil, "launch")
	if code != 1 || !strings.Contains(errOut, "No such command: launch") {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
}

// A socket passed by socket activation that no listen entry takes fails
// the start, naming its address: served by nobody, it would hold its
// clients in the backlog for ever.
func TestCLISocketActivationUnmatched(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	served, servedSocket := activationSocket(t)
	stray, straySocket := activationSocket(t)
	writeFile(t, filepath.Join(dir, "kong.conf"), fmt.Sprintf("database = off\nstream_listen = 127.0.0.1:%d\nadmin_listen = off\nstatus_listen = off\n", served))
	cmd := exec.Command(gongBinary(t), "start", "-c", "kong.conf", "-p", filepath.Join(dir, "prefix"))
	cmd.Dir = dir
	activate(cmd, servedSocket, straySocket)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	err := cmd.Run()
	want := fmt.Sprintf("Error: socket activation: no stream_listen, admin_listen or status_listen entry has the address of the socket on 127.0.0.1:%d\n", stray)
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.HasPrefix(errOut.String(), want) {
		t.Errorf("start: %v, stderr %q; want exit 1, %q", err, errOut.String(), want)
	}
}

// TestCLILifecycle drives a real gong process: start, health, reload,
// quit, and the errors around them.
func TestCLILifecycle(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "prefix")
	p, socket := activationSocket(t)
	conf := fmt.Sprintf("database = off\ndeclarative_config = kong.yml\nstream_listen = 127.0.0.1:%d\nproxy_stream_access_log = off\n"+
		"admin_listen = off\nstatus_listen = off\n", p)
	writeFile(t, filepath.Join(dir, "kong.conf"), conf)
	writeFile(t, filepath.Join(dir, "kong.yml"), echoYML("a", a, p))

	_, errOut, code := runGong(t, dir, nil, "health", "-p", prefix)
	if code != 1 || !strings.HasPrefix(errOut, "Error: no such prefix: "+prefix) {
		t.Errorf("health before start: exit %d, %q", code, errOut)
	}

	cmd, exited := startGongProcess(t, dir, os.Stderr, socket, "-c", "kong.conf", "-p", prefix)

	out, _, code := runGong(t, dir, nil, "health", "-p", prefix)
	if code != 0 || out != "gong.......running\ngong is healthy at "+prefix+"\n" {
		t.Errorf("health: exit %d, %q", code, out)
	}
	pid, _ := os.ReadFile(filepath.Join(prefix, "pids", "gong.pid"))
	if strings.TrimSpace(string(pid)) != fmt.Sprint(cmd.Process.Pid) {
		t.Errorf("pid file holds %q; want %d", pid, cmd.Process.Pid)
	}
	env, _ := os.ReadFile(filepath.Join(prefix, ".kong_env"))
	if !strings.Contains(string(env), fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p)) || !strings.Contains(string(env), "prefix = "+prefix+"\n") {
		t.Errorf(".kong_env lacks the merged config:\n%s", env)
	}
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "a: x" {
		t.Errorf("proxying: %q, %v", got, err)
	}

	_, errOut, code = runGong(t, dir, nil, "start", "-c", "kong.conf", "-p", prefix)
	if code != 1 || !strings.HasPrefix(errOut, "Error: gong is already running in "+prefix) {
		t.Errorf("second start: exit %d, %q", code, errOut)
	}

	// An invalid declarative config is refused before signalling.
	writeFile(t, filepath.Join(dir, "kong.yml"), "_format_version: \"9.9\"\n")
	_, errOut, code = runGong(t, dir, nil, "reload", "-c", "kong.conf", "-p", prefix)
	if code != 1 || !strings.Contains(errOut, "Error: Failed parsing:") {
		t.Errorf("reload with a bad kong.yml: exit %d, %q", code, errOut)
	}
	writeFile(t, filepath.Join(dir, "kong.yml"), echoYML("b", b, p))
	out, _, code = runGong(t, dir, nil, "reload", "-c", "kong.conf", "-p", prefix)
	if code != 0 || out != "gong reloaded\n" {
		t.Errorf("reload: exit %d, %q", code, out)
	}
	// The reload is asynchronous: wait until new connections reach b.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "y")
		if err == nil && got == "b: y" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after reload: %q, %v; want b: y", got, err)
		}
	}

	out, _, code = runGong(t, dir, nil, "quit", "-p", prefix)
	if code != 0 || out != "gong stopped (gracefully)\n" {
		t.Errorf("quit: exit %d, %q", code, out)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("gong exited with %v after quit; want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gong still runs after quit")
	}
	if _, err := os.Stat(filepath.Join(prefix, "pids", "gong.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left behind after quit: %v", err)
	}
	_, errOut, code = runGong(t, dir, nil, "stop", "-p", prefix)
	if code != 1 || !strings.HasPrefix(errOut, "Error: gong is not running at "+prefix) {
		t.Errorf("stop when not running: exit %d, %q", code, errOut)
	}
}

func TestCLIPrepare(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kong.conf"), "stream_listen = 127.0.0.1:9999\n")
	prefix := filepath.Join(dir, "p")
	_, errOut, code := runGong(t, dir, []string{"KONG_LOG_LEVEL=warn"}, "prepare", "-c", "kong.conf", "-p", prefix)
	if code != 0 {
		t.Fatalf("prepare: exit %d, %s", code, errOut)
	}
	env, err := os.ReadFile(filepath.Join(prefix, ".kong_env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stream_listen = 127.0.0.1:9999\n", "log_level = warn\n", "prefix = " + prefix + "\n"} {
		if !strings.Contains(string(env), want) {
			t.Errorf(".kong_env lacks %q", want)
		}
	}
	for _, d := range []string{"logs", "pids", "ssl"} {
		if _, err := os.Stat(filepath.Join(prefix, d)); err != nil {
			t.Errorf("prefix folder %s: %v", d, err)
		}
	}
}

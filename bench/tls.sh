#!/usr/bin/env bash
# TLS handshake rows, nginx and gong side by side in front of one echo
# server, both with the same certificate: full handshakes (a new connection
# for each round trip) and resumed ones (the same, resuming with session
# tickets, in TLS 1.3 and in TLS 1.2, whose resumption makes no new key
# exchange), with each proxy's own CPU time per connection.
#
#   bench/tls.sh PATH_TO_GONG [rsa|ecdsa]      (default rsa: RSA-2048; ecdsa: P-256)
#
# gong runs twice: with its default key exchanges (Go's, X25519MLKEM768
# first) and with nginx_stream_ssl_ecdh_curve = X25519, the key exchange
# nginx negotiates with this client when its OpenSSL has no ML-KEM.
# go-tls is the floor under both: bench/floor's proxy behind Go's own TLS
# server (crypto/tls, X25519, Go's session tickets), nothing else.
# It uses the shared bench's fixed ports (echo 9000, nginx 8441, gong
# 8443/8444, go-tls 8445): run it under the same lock as that bench:
#   BENCH_D=3s flock /tmp/peers.lock bench/tls.sh ./gong ecdsa
# Needs Debian packages nginx-light libnginx-mod-stream openssl, and go.
# BENCH_D sets each measurement's length (4s). Compare ratios within one
# run, never absolute numbers across runs.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
GONG=${1:?usage: bench/tls.sh PATH_TO_GONG [rsa|ecdsa]}
KIND=${2:-rsa}
. "$HERE/common.sh" tls.sh nginx openssl go python3
case $KIND in
  rsa) keyopt=(-newkey rsa:2048);;
  ecdsa) keyopt=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1);;
  *) echo "tls.sh: certificate kind $KIND: want rsa or ecdsa"; exit 2;;
esac
openssl req -x509 "${keyopt[@]}" -nodes -keyout "$W/key.pem" -out "$W/cert.pem" -days 2 \
  -subj /CN=bench.test -addext subjectAltName=DNS:bench.test >/dev/null 2>&1

"$L" echo -listen 127.0.0.1:9000 & PIDS+=($!)

start_nginx "server { listen 127.0.0.1:8441 ssl reuseport; ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem; proxy_pass 127.0.0.1:9000; }"

cat > "$W/kong.yml" <<YML
_format_version: "3.0"
services:
  - name: echo
    protocol: tcp
    host: 127.0.0.1
    port: 9000
    routes:
      - name: tls
        protocols: [tls]
        snis: [bench.test]
YML
# start_gong PORT [KONG_* assignments...]: a gong with one ssl listener.
start_gong() {
  local port=$1; shift
  env KONG_PREFIX="$W/gong$port" KONG_DATABASE=off KONG_DECLARATIVE_CONFIG="$W/kong.yml" \
    KONG_STREAM_LISTEN="127.0.0.1:$port ssl reuseport" KONG_SSL_CERT="$W/cert.pem" KONG_SSL_CERT_KEY="$W/key.pem" \
    KONG_ADMIN_LISTEN=off KONG_PROXY_STREAM_ACCESS_LOG=off KONG_LOG_LEVEL=error "$@" \
    "$GONG" start >"$W/gong$port.out" 2>&1 & PIDS+=($!)
  GPIDS[$port]=$!
  for _ in $(seq 50); do "$L" rr -addr 127.0.0.1:$port -c 1 -d 100ms -tls -sni bench.test >/dev/null 2>&1 && break; sleep 0.1; done
}
declare -A GPIDS
start_gong 8443
start_gong 8444 KONG_NGINX_STREAM_SSL_ECDH_CURVE=X25519
(cd "$HERE/floor" && go build -o "$W/floor" .) || exit 1
"$W/floor" tls 127.0.0.1:8445 127.0.0.1:9000 "$W/cert.pem" "$W/key.pem" & PIDS+=($!)
GOTLSPID=$!
sleep 0.5

pids_of() { case $1 in
  nginx) m=$(cat "$W/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')";;
  gong) echo "${GPIDS[8443]}";;
  gong-x25519) echo "${GPIDS[8444]}";;
  go-tls) echo "$GOTLSPID";;
esac; }
measure() {
  local n=$1 label=$2; shift 2
  local ps; ps=$(pids_of "$n")
  local c0; c0=$(cpu_ticks $ps)
  local out; out=$("$L" "$@")
  local c1; c1=$(cpu_ticks $ps)
  local cost; cost=$(python3 - "$out" "$c0" "$c1" "$TCK" "$D" <<'PY'
import re, sys
out, c0, c1, tck, d = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
secs = float(d[:-2]) / 1000 if d.endswith("ms") else float(d.rstrip("s"))
m = re.search(r'ops_per_s=([\d.]+)', out)
if m and float(m.group(1)) > 0:
    print(f"cpu_us_per_op={(c1 - c0) / tck * 1e6 / (float(m.group(1)) * secs):.1f}")
PY
)
  printf "%-12s %-28s %s %s\n" "$n" "$label" "$out" "$cost"
}
for t in nginx=8441 gong=8443 gong-x25519=8444 go-tls=8445; do n=${t%%=*}; p=${t#*=}
  measure "$n" "tls $KIND full handshake" rr -addr 127.0.0.1:$p -c 20 -d "$D" -size 64 -tls -sni bench.test -reconnect
  measure "$n" "tls $KIND resumed (ticket)" rr -addr 127.0.0.1:$p -c 20 -d "$D" -size 64 -tls -sni bench.test -reconnect -resume
  measure "$n" "tls1.2 $KIND resumed" rr -addr 127.0.0.1:$p -c 20 -d "$D" -size 64 -tls -sni bench.test -reconnect -resume -tls12
done

#!/usr/bin/env bash
# The gong demo: TLS termination by SNI in front of a plain TCP echo
# upstream (examples/tcpbin), configured by examples/kong.conf and
# examples/kong.yml on top of gong's embedded defaults. A client talks TLS
# to gong with SNI demo.gong.test; gong terminates it with the certificate
# from kong.yml and forwards plain bytes to the echo server. Then plain
# TCP, a balanced upstream and UDP, and everything stops.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$bin"' EXIT

CGO_ENABLED=0 go build -o "$bin/gong" ./cmd/gong # one static binary
go build -o "$bin/tcpbin" ./examples/tcpbin

echo "== gong check and gong config parse"
"$bin/gong" check examples/kong.conf
"$bin/gong" config parse examples/kong.yml -c examples/kong.conf

echo "== starting the echo upstream on 127.0.0.1:9000 and gong"
"$bin/tcpbin" serve -listen 127.0.0.1:9000 &
"$bin/gong" start -c examples/kong.conf &
for _ in $(seq 50); do "$bin/gong" health -p servroot >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/gong" health -p servroot

echo "== TLS terminated by gong (route echo-tls, SNI demo.gong.test, port 5443)"
"$bin/tcpbin" send -tls -sni demo.gong.test -addr 127.0.0.1:5443 "hello over tls"
if command -v openssl >/dev/null; then
  echo "== the same with openssl s_client"
  { echo "hello from openssl"; sleep 1; } | timeout 10 openssl s_client -connect 127.0.0.1:5443 \
    -servername demo.gong.test -quiet -no_ign_eof 2>/dev/null
fi
echo "== TCP through gong (route echo-tcp, port 5555)"
"$bin/tcpbin" send -addr 127.0.0.1:5555 "hello over tcp"
echo "== TCP through an upstream (route pool-tcp, port 5556)"
"$bin/tcpbin" send -addr 127.0.0.1:5556 "hello through echo-upstream"
echo "== UDP through gong (route echo-udp, port 5353)"
"$bin/tcpbin" send -udp -addr 127.0.0.1:5353 "hello over udp"

echo "== stopping gong"
"$bin/gong" stop -p servroot

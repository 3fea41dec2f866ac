#!/usr/bin/env bash
# The gong demo: an echo upstream (examples/tcpbin) behind gong, configured
# by examples/kong.conf and examples/kong.yml on top of gong's embedded
# defaults. It sends messages through gong over TCP, through an upstream,
# and over UDP, prints the echoes, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$bin"' EXIT

go build -o "$bin/gong" ./cmd/gong
go build -o "$bin/tcpbin" ./examples/tcpbin

echo "== gong check and gong config parse"
"$bin/gong" check examples/kong.conf
"$bin/gong" config parse examples/kong.yml -c examples/kong.conf

echo "== starting the echo upstream on 127.0.0.1:9000 and gong"
"$bin/tcpbin" serve -listen 127.0.0.1:9000 &
"$bin/gong" start -c examples/kong.conf &
for _ in $(seq 50); do "$bin/gong" health -p servroot >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/gong" health -p servroot

echo "== TCP through gong (route echo-tcp, port 5555)"
"$bin/tcpbin" send -addr 127.0.0.1:5555 "hello over tcp"
echo "== TCP through an upstream (route pool-tcp, port 5556)"
"$bin/tcpbin" send -addr 127.0.0.1:5556 "hello through echo-upstream"
echo "== UDP through gong (route echo-udp, port 5353)"
"$bin/tcpbin" send -udp -addr 127.0.0.1:5353 "hello over udp"

echo "== stopping gong"
"$bin/gong" stop -p servroot

#!/usr/bin/env bash
# The floor under gong's plain path: nginx, gong, and the reference
# proxies of bench/floor (Go's net package with a goroutine per
# connection; an epoll loop per core without one; net's accept and dial
# with the epoll loop's relay) in front of one echo server, each proxy's
# own CPU time per operation, taking turns.
#
#   bench/floor.sh PATH_TO_GONG
#
# It uses the shared bench's fixed ports (echo 9000, nginx 8001, gong
# 8003; the reference proxies 8031-8033): run it under the same lock
# as that bench:
#   BENCH_D=3s flock /tmp/peers.lock bench/floor.sh ./gong
# Needs Debian packages nginx-light libnginx-mod-stream, and go. BENCH_D
# sets each measurement's length (4s); ROUNDS=N measures each row N times
# in turn (3). The script ends with each proxy's CPU per operation over
# nginx's of the same round, per round and their median. MODE=keepalive
# measures round trips on kept connections instead of a new connection
# for each.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
GONG=${1:?usage: bench/floor.sh PATH_TO_GONG}
. "$HERE/common.sh" floor.sh nginx go python3
(cd "$HERE/floor" && go build -o "$W/floor" .) || exit 1

"$L" echo -listen 127.0.0.1:9000 & PIDS+=($!)
start_nginx "server { listen 127.0.0.1:8001 reuseport; proxy_pass 127.0.0.1:9000; }"
cat > "$W/kong.yml" <<YML
_format_version: "3.0"
services:
  - name: echo
    url: tcp://127.0.0.1:9000
    routes: [{name: plain, protocols: [tcp], destinations: [{port: 8003}]}]
YML
KONG_PREFIX=$W/gong KONG_DATABASE=off KONG_DECLARATIVE_CONFIG=$W/kong.yml \
  KONG_STREAM_LISTEN="127.0.0.1:8003 reuseport" KONG_ADMIN_LISTEN=off \
  KONG_PROXY_STREAM_ACCESS_LOG=off KONG_LOG_LEVEL=error \
  "$GONG" start >"$W/gong.out" 2>&1 & PIDS+=($!)
GPID=$!
"$W/floor" net 127.0.0.1:8031 127.0.0.1:9000 & PIDS+=($!)
NETPID=$!
"$W/floor" epoll 127.0.0.1:8032 127.0.0.1:9000 & PIDS+=($!)
EPPID=$!
"$W/floor" hybrid 127.0.0.1:8033 127.0.0.1:9000 & PIDS+=($!)
HYPID=$!
for p in 8001 8003 8031 8032 8033; do
  for _ in $(seq 50); do "$L" rr -addr 127.0.0.1:$p -c 1 -d 100ms >/dev/null 2>&1 && break; sleep 0.1; done
done

case ${MODE:-new} in
  new) label="rr c=50 new conn each"; extra=(-reconnect);;
  keepalive) label="rr c=50 keep-alive"; extra=();;
  *) echo "floor.sh: MODE=$MODE: want new or keepalive"; exit 2;;
esac
pids_of() { case $1 in
  nginx) m=$(cat "$W/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')";;
  gong) echo "$GPID";;
  go-net) echo "$NETPID";;
  go-epoll) echo "$EPPID";;
  go-hybrid) echo "$HYPID";;
esac; }
for round in $(seq "${ROUNDS:-3}"); do
  for t in nginx=8001 gong=8003 go-net=8031 go-epoll=8032 go-hybrid=8033; do
    n=${t%%=*}; p=${t#*=}
    ps=$(pids_of "$n")
    c0=$(cpu_ticks $ps)
    out=$("$L" rr -addr 127.0.0.1:$p -c 50 -d "$D" -size 64 "${extra[@]}")
    c1=$(cpu_ticks $ps)
    cost=$(python3 -c '
import re, sys
out, c0, c1, tck, d = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
secs = float(d[:-2]) / 1000 if d.endswith("ms") else float(d.rstrip("s"))
ops = float(re.search(r"ops_per_s=([\d.]+)", out).group(1)) * secs
print(f"cpu_us_per_op={(c1 - c0) / tck * 1e6 / ops:.1f}" if ops else "cpu_us_per_op=-")
' "$out" "$c0" "$c1" "$TCK" "$D")
    printf "%-10s %-22s %s %s\n" "$n" "$label" "$out" "$cost" | tee -a "$W/rounds"
  done
done
python3 - "$W/rounds" <<'PY'
import re, statistics, sys
rows = [(l.split()[0], float(m.group(1))) for l in open(sys.argv[1]) if (m := re.search(r"cpu_us_per_op=([\d.]+)", l))]
ratios, nginx = {}, None
for name, cpu in rows:
    if name == "nginx":
        nginx = cpu
    elif nginx:
        ratios.setdefault(name, []).append(cpu / nginx)
print("CPU per operation over nginx's in the same round, per round; median")
for name, r in ratios.items():
    print(f"{name:<10} {' '.join(f'{x:.2f}' for x in r)}; median {statistics.median(r):.2f}")
PY

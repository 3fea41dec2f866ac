#!/usr/bin/env bash
# Limit plugin rows in the shared bench's manner: nginx and gong in front
# of one echo server, a new connection for each round trip and bulk
# echo, with each proxy's own CPU time per operation; gong's routes carry
# rate-limiting and limit-conn with the local and redis policies (limits
# high enough never to refuse), beside its route without plugins; one
# more carries the shared bench's Lua pair (ip-restriction + file-log),
# for that bench's Lua row measured the same way. Last,
# bulk on the route without plugins alone and while a client opens
# connections to a route whose rate-limiting refuses most of them.
#
#   bench/limits.sh PATH_TO_GONG
#
# It uses the shared bench's fixed ports (echo 9000, nginx 8001, gong
# 8003 and 8017-8023, not 8007, status_listen's default; Redis 6391):
# run it under the same lock as that bench:
#   BENCH_D=3s flock /tmp/peers.lock bench/limits.sh ./gong
# Needs Debian packages nginx-light libnginx-mod-stream redis-server, and
# go. BENCH_D sets each measurement's length (4s). Each new-connection
# row comes right after one of the route without plugins; ROUNDS=N
# measures them N times in turn (1). The script ends with each row's
# rate and CPU per connection over that neighbour's, per round and their
# median: on a noisy machine a row's rate moves by 10% from one
# measurement to the next, more than a plugin's own cost. ROUTES picks
# the rows (NAME=PORT ..., as below), e.g. ROUTES="nginx=8001
# gong+lua=8023" for the Lua route alone. Compare ratios within one run,
# never absolute numbers across runs.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
GONG=${1:?usage: bench/limits.sh PATH_TO_GONG}
. "$HERE/common.sh" limits.sh nginx redis-server go python3

"$L" echo -listen 127.0.0.1:9000 & PIDS+=($!)
redis-server --port 6391 --bind 127.0.0.1 --save '' --appendonly no >"$W/redis.out" 2>&1 & PIDS+=($!)
RPID=$!

start_nginx "server { listen 127.0.0.1:8001 reuseport; proxy_pass 127.0.0.1:9000; }"

REDIS="policy: redis, redis: {host: 127.0.0.1, port: 6391}"
HIGH="second: 1000000000, minute: 1000000000"
cat > "$W/kong.yml" <<YML
_format_version: "3.0"
services:
  - name: echo
    url: tcp://127.0.0.1:9000
    routes:
      - {name: plain, protocols: [tcp], destinations: [{port: 8003}]}
      - name: rl-local
        protocols: [tcp]
        destinations: [{port: 8017}]
        plugins: [{name: rate-limiting, config: {$HIGH}}]
      - name: rl-redis
        protocols: [tcp]
        destinations: [{port: 8018}]
        plugins: [{name: rate-limiting, config: {$HIGH, $REDIS}}]
      - name: rl-redis-sync
        protocols: [tcp]
        destinations: [{port: 8019}]
        plugins: [{name: rate-limiting, config: {$HIGH, sync_rate: 1, $REDIS}}]
      - name: lc-local
        protocols: [tcp]
        destinations: [{port: 8020}]
        plugins: [{name: limit-conn, config: {max_connections: 1000000}}]
      - name: lc-redis
        protocols: [tcp]
        destinations: [{port: 8021}]
        plugins: [{name: limit-conn, config: {max_connections: 1000000, $REDIS}}]
      - name: refused
        protocols: [tcp]
        destinations: [{port: 8022}]
        plugins: [{name: rate-limiting, config: {second: 10, limit_by: route}}]
      - name: lua
        protocols: [tcp]
        destinations: [{port: 8023}]
        plugins:
          - {name: ip-restriction, config: {allow: [127.0.0.0/8]}}
          - {name: file-log, protocols: [tcp], config: {path: /dev/null}}
YML
KONG_PREFIX=$W/gong KONG_DATABASE=off KONG_DECLARATIVE_CONFIG=$W/kong.yml \
  KONG_STREAM_LISTEN="127.0.0.1:8003 reuseport, 127.0.0.1:8017 reuseport, 127.0.0.1:8018 reuseport, 127.0.0.1:8019 reuseport, 127.0.0.1:8020 reuseport, 127.0.0.1:8021 reuseport, 127.0.0.1:8022 reuseport, 127.0.0.1:8023 reuseport" \
  KONG_ADMIN_LISTEN=off KONG_PROXY_STREAM_ACCESS_LOG=off KONG_LOG_LEVEL=error \
  "$GONG" start >"$W/gong.out" 2>&1 & PIDS+=($!)
GPID=$!
for _ in $(seq 50); do "$L" rr -addr 127.0.0.1:8018 -c 1 -d 100ms >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.5

pids_of() { case $1 in
  nginx) m=$(cat "$W/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')";;
  redis) echo "$RPID";;
  *) echo "$GPID";;
esac; }
# measure NAME LABEL l4load-args...: one row with the proxy's CPU per
# operation (per MB for bulk) and, on redis routes, Redis's own.
measure() {
  local n=$1 label=$2; shift 2
  local ps; ps=$(pids_of "$n")
  local c0 r0; c0=$(cpu_ticks $ps); r0=$(cpu_ticks "$RPID")
  local out; out=$("$L" "$@")
  local c1 r1; c1=$(cpu_ticks $ps); r1=$(cpu_ticks "$RPID")
  local cost; cost=$(python3 - "$out" "$c0" "$c1" "$r0" "$r1" "$TCK" "$D" <<'PY'
import re, sys
out = sys.argv[1]
c0, c1, r0, r1, tck = (float(a) for a in sys.argv[2:7])
d = sys.argv[7]
secs = float(d[:-2]) / 1000 if d.endswith("ms") else float(d.rstrip("s"))
m = re.search(r'ops_per_s=([\d.]+)', out)
b = re.search(r'echo_MBps=([\d.]+)', out)
if m and float(m.group(1)) > 0:
    ops = float(m.group(1)) * secs
    line = f"cpu_us_per_op={(c1 - c0) / tck * 1e6 / ops:.1f}"
    if r1 > r0:
        line += f" redis_cpu_us_per_op={(r1 - r0) / tck * 1e6 / ops:.1f}"
    print(line)
elif b and float(b.group(1)) > 0:
    print(f"cpu_us_per_MB={(c1 - c0) / tck * 1e6 / (float(b.group(1)) * secs):.0f}")
PY
)
  printf "%-15s %-28s %s %s\n" "$n" "$label" "$out" "$cost"
}
ROUTES=${ROUTES:-"nginx=8001 gong+rl-local=8017 gong+rl-redis=8018 gong+rl-redis-sync=8019 gong+lc-local=8020 gong+lc-redis=8021 gong+lua=8023"}
# Each route's row follows a row of gong's route without plugins, its
# reference: on a noisy machine only measurements next to each other in
# time compare.
for round in $(seq "${ROUNDS:-1}"); do
  for t in $ROUTES; do
    n=${t%%=*}; p=${t#*=}
    measure gong "rr c=50 new conn each" rr -addr 127.0.0.1:8003 -c 50 -d "$D" -size 64 -reconnect | tee -a "$W/rounds"
    measure "$n" "rr c=50 new conn each" rr -addr 127.0.0.1:$p -c 50 -d "$D" -size 64 -reconnect | tee -a "$W/rounds"
  done
done
for t in gong=8003 $ROUTES; do
  n=${t%%=*}; p=${t#*=}
  measure "$n" "bulk c=4 64KiB" bulk -addr 127.0.0.1:$p -c 4 -d "$D" -size 65536
done
measure gong "bulk c=4 64KiB, alone" bulk -addr 127.0.0.1:8003 -c 4 -d "$D" -size 65536
"$L" rr -addr 127.0.0.1:8022 -c 4 -d "$D" -size 64 -reconnect >"$W/refused.out" & refp=$!
measure gong "bulk, beside refused conns" bulk -addr 127.0.0.1:8003 -c 4 -d "$D" -size 65536
wait $refp
echo "refused-route client: $(cat "$W/refused.out")"
# Each route's rate and CPU per connection over those of the gong row
# just before it, per round, and the median.
python3 - "$W/rounds" <<'PY'
import re, statistics, sys
rows = [(l.split()[0], dict(re.findall(r'(?<!\w)(ops_per_s|cpu_us_per_op)=([\d.]+)', l))) for l in open(sys.argv[1])]
ratios = {}
for (_, ref), (name, row) in zip(rows[::2], rows[1::2]):
    r = ratios.setdefault(name, ([], []))
    r[0].append(float(row["ops_per_s"]) / float(ref["ops_per_s"]))
    r[1].append(float(row["cpu_us_per_op"]) / float(ref["cpu_us_per_op"]))
print("rate and CPU per connection over gong's route without plugins measured just before, per round; median")
for name, (rate, cpu) in ratios.items():
    print(f"{name:<19} rate {' '.join(f'{x:.2f}' for x in rate)}; median {statistics.median(rate):.2f}   "
          f"cpu {' '.join(f'{x:.2f}' for x in cpu)}; median {statistics.median(cpu):.2f}")
PY

# Sourced by the bench scripts: checks the tools they need, makes a work
# folder that is removed (and the processes in PIDS and nginx stopped) on
# exit, builds the load generator as $L, reads BENCH_D into $D, and
# defines start_nginx and cpu_ticks.
#
#   . "$HERE/common.sh" SCRIPT_NAME TOOL...
bench_name=$1
shift
for tool in "$@"; do
  command -v "$tool" >/dev/null || { echo "$bench_name: $tool is missing"; exit 2; }
done
W=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null
  wait 2>/dev/null; rm -rf "$W"
}
trap cleanup EXIT
(cd "$HERE/l4load" && go build -o "$W/l4load" .) || exit 1
L=$W/l4load
D=${BENCH_D:-4s}
TCK=$(getconf CLK_TCK)
# cpu_ticks PID...: the CPU time (user + system) the processes have
# spent, in clock ticks.
cpu_ticks() { local t=0; for p in "$@"; do v=$(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null); t=$((t+${v:-0})); done; echo $t; }
# start_nginx SERVER...: starts nginx in $W with two workers and the
# given server blocks in its stream block.
start_nginx() {
  { echo "load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
    echo "worker_processes 2; pid $W/nginx.pid; error_log $W/nginx.err warn; daemon on;"
    echo "events { worker_connections 9000; }"
    echo "stream {"; printf '  %s\n' "$@"; echo "}"
  } > "$W/nginx.conf"
  nginx -c "$W/nginx.conf" -p "$W" || echo "nginx failed to start"
}

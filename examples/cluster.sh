#!/usr/bin/env bash
# Two gong nodes on one PostgreSQL database (docs/database.md). The script
# starts its own PostgreSQL server in a temporary directory (Debian's
# postgresql package; as the postgres user when run as root, since initdb
# refuses root), bootstraps Kong's schema, and starts nodes A and B. It
# creates a TCP service, a TLS route and its certificate with curl on
# node A's Admin API, then shows a connection that node B terminates with
# that certificate: the change reached B through the database's
# cluster_events. Everything stops and is removed at the end.
#
# Ports (loopback only): PostgreSQL 54329, the echo upstream 19000, node A
# admin 18001 and TLS 18443, node B admin 28001 and TLS 28443.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pgbin" ]; then
  echo "PostgreSQL is not installed: apt-get install postgresql" >&2
  exit 1
fi
pgdata="$tmp/pg"
pg() { # runs one of PostgreSQL's programs, as its owner
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$pgbin/$1" "${@:2}"; else "$pgbin/$1" "${@:2}"; fi
}
cleanup() {
  for n in a b; do [ -x "$tmp/gong" ] && "$tmp/gong" stop -p "$tmp/$n" >/dev/null 2>&1 || true; done
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  [ -f "$pgdata/PG_VERSION" ] && pg pg_ctl -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$tmp/gong" ./cmd/gong
go build -o "$tmp/tcpbin" ./examples/tcpbin

echo "== PostgreSQL on 127.0.0.1:54329 (in $tmp)"
mkdir "$pgdata"
[ "$(id -u)" = 0 ] && chown postgres: "$tmp" "$pgdata"
pg initdb -D "$pgdata" -U postgres -A trust -E UTF8 --no-sync >/dev/null
pg pg_ctl -D "$pgdata" -l "$tmp/pg.log" -w \
  -o "-p 54329 -k $tmp -c listen_addresses=127.0.0.1" start >/dev/null
pg createdb -h 127.0.0.1 -p 54329 -U postgres kong

for n in a b; do
  case $n in a) admin=18001 tls=18443 ;; b) admin=28001 tls=28443 ;; esac
  cat >"$tmp/$n.conf" <<EOF
prefix = $tmp/$n
database = postgres
pg_host = 127.0.0.1
pg_port = 54329
pg_user = postgres
pg_database = kong
db_update_frequency = 1
stream_listen = 127.0.0.1:$tls ssl
admin_listen = 127.0.0.1:$admin
status_listen = off
proxy_stream_access_log = /dev/stdout basic
proxy_stream_error_log = /dev/stderr
log_level = notice
EOF
done

echo "== gong migrations bootstrap"
"$tmp/gong" migrations bootstrap -c "$tmp/a.conf"

echo "== starting the echo upstream and nodes A and B"
"$tmp/tcpbin" serve -listen 127.0.0.1:19000 &
"$tmp/gong" start -c "$tmp/a.conf" &
"$tmp/gong" start -c "$tmp/b.conf" &
for n in a b; do
  for _ in $(seq 100); do "$tmp/gong" health -p "$tmp/$n" >/dev/null 2>&1 && break; sleep 0.1; done
  "$tmp/gong" health -p "$tmp/$n"
done

echo "== on node A: a TCP service, a TLS route for demo.gong.test, its certificate"
a=http://127.0.0.1:18001
curl -sS --fail-with-body $a/services -d name=echo -d url=tcp://127.0.0.1:19000; echo
curl -sS --fail-with-body $a/services/echo/routes -d name=echo-tls -d 'protocols[]=tls' -d 'snis[]=demo.gong.test'; echo
sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/s/^ *//p' examples/kong.yml >"$tmp/cert.pem"
sed -n '/BEGIN PRIVATE KEY/,/END PRIVATE KEY/s/^ *//p' examples/kong.yml >"$tmp/key.pem"
curl -sS --fail-with-body -o /dev/null -w 'POST /certificates: %{http_code}\n' $a/certificates \
  --data-urlencode "cert@$tmp/cert.pem" --data-urlencode "key@$tmp/key.pem" -d 'snis[]=demo.gong.test'

echo "== waiting for node B to pick the change up (db_update_frequency = 1)"
for i in $(seq 100); do
  "$tmp/tcpbin" send -tls -sni demo.gong.test -addr 127.0.0.1:28443 ping >/dev/null 2>&1 && break
  [ "$i" = 100 ] && { echo "node B did not pick the route up" >&2; exit 1; }
  sleep 0.1
done

echo "== node B lists the route node A wrote"
curl -sS --fail-with-body http://127.0.0.1:28001/routes/echo-tls; echo

echo "== TLS terminated by node B (port 28443, SNI demo.gong.test)"
"$tmp/tcpbin" send -tls -sni demo.gong.test -addr 127.0.0.1:28443 "hello through node B"

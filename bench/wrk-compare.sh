#!/usr/bin/env bash
# wrk-compare.sh WCBENCH: measure bench/loadgen against wrk on the native
# target's /json, alternating them, and print throughput, p50/p99 and the
# CPU each generator used per request (from /proc, user+system).
# Both generators and the server share the machine, as in the suite.
set -euo pipefail
wcbench=${1:?usage: wrk-compare.sh path/to/wcbench}
conns=${CONNS:-64}
secs=${SECS:-10}
rounds=${ROUNDS:-3}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port/json"

"$wcbench" native -addr "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$url" >/dev/null && break; sleep 0.1; done

lg=$(mktemp -d)
go build -o "$lg/loadgen" ./bench/cmd/loadgen

for r in $(seq "$rounds"); do
  echo "== round $r: $conns connections, ${secs}s"
  /usr/bin/time -f "   wrk     CPU %e s wall, %U s user, %S s sys" \
    wrk -t"${WRK_THREADS:-2}" -c"$conns" -d"${secs}s" --latency "$url" 2>&1 | \
    awk '/Requests\/sec/ {print "   wrk     " $0} / 50%/ {print "   wrk     p50 " $2} / 99%/ {print "   wrk     p99 " $2} /CPU/ {print}' 
  /usr/bin/time -f "   loadgen CPU %e s wall, %U s user, %S s sys" \
    "$lg/loadgen" -q -c "$conns" -d "${secs}s" -w 0s "$url" 2>&1 | \
    awk '/requests/ {print "   loadgen " $0} /latency/ {print "   loadgen " $0} /client CPU/ {print "   loadgen " $0} /CPU/ && !/client/ {print}'
done
rm -rf "$lg"

#!/usr/bin/env bash
# Installs the Debian packages a wasmcorn target needs, idempotently.
# Usage: scripts/deps.sh GROUP...   (groups: test, python, wasmtime, classic)
# Already-installed packages cost one dpkg query; apt-get runs only when
# something is missing, so repeat runs are fast and work offline.
set -euo pipefail

declare -A groups=(
  [test]="mariadb-server mariadb-client redis-server wabt"
  [python]="clang-19 lld-19 llvm-19 wasi-libc libclang-rt-19-dev-wasm32 python3-pytest python3-flask python3-django dpkg-dev zip"
  [wasmtime]="gcc libc6-dev"
  [classic]="nginx gunicorn python3-gevent uwsgi uwsgi-plugin-python3 python3-django python3-mysqldb python3-redis python3-django-redis"
)

want=()
for g in "$@"; do
  [[ -n "${groups[$g]:-}" ]] || { echo "deps.sh: unknown group '$g' (known: ${!groups[*]})" >&2; exit 2; }
  for p in ${groups[$g]}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
  done
done
[[ ${#want[@]} -eq 0 ]] && exit 0

echo "deps.sh: installing ${want[*]}" >&2
SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian's maintainer scripts would start services; tests start their own.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null

#!/usr/bin/env bash
# The e2e stack's servers: PostgreSQL (initdb, postgres) and Redis (redis-server), from Debian's packages.
# Only installs; the harness runs its own throwaway instances on free loopback ports.
set -euo pipefail

have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "e2e needs ${missing[*]}: install them (e.g. sudo apt-get install ${missing[*]}) and rerun" >&2
    exit 1
fi
echo "== installing ${missing[*]} for the e2e stack"
# Keep the packages' own services from starting on the default ports: the harness starts its own.
policy=/usr/sbin/policy-rc.d
added_policy=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    added_policy=1
fi
trap 'if [ -n "$added_policy" ]; then rm -f "$policy"; fi' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

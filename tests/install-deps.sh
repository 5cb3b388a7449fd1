#!/usr/bin/env bash
# Installs what proxymapd's tests and benchmarks need on a fresh Debian
# machine: Postfix with its lmdb/cdb/pcre/sqlite/pgsql/mysql map plugins,
# PostgreSQL and MariaDB (the tests start private instances), LMDB and
# Berkeley DB tools, libdb's header (proxywrite writes hash:/btree: through
# libdb), systemd's socket-activation tool, a C compiler (liblmdb is built
# from source), and a Rust toolchain when none is present. Safe to run
# repeatedly.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(postfix postfix-lmdb postfix-cdb postfix-pcre postfix-sqlite lmdb-utils db5.3-util gcc libc6-dev make util-linux systemd libdb5.3-dev libsqlite3-dev sqlite3 postgresql postfix-pgsql mariadb-server postfix-mysql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # The tests start private PostgreSQL, MariaDB and Postfix instances of
  # their own: keep the packages from starting the system's services.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    trap 'as_root rm -f "$policy"' EXIT
  fi
  echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  # Debian's newest Rust (rustc-web) is recent enough for our dependencies.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web >/dev/null
fi

#!/usr/bin/env bash
# Everything `make test` needs besides the Python packages, on a fresh Debian machine: Debian's
# Chromium for the browser tests (Playwright drives it through executable_path; no browser download)
# and a running local PostgreSQL with the `test` database. As root it installs and starts what is
# missing; otherwise it says what to do.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-env: installing Debian's chromium for the browser tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
  else
    echo "test-env: the browser tests need Debian's chromium: sudo apt-get install chromium fonts-dejavu-core" >&2
    exit 1
  fi
fi

if [ -z "${MOTCUA_TEST_PG_URL:-}" ] && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && [ -d /etc/postgresql ]; then
    echo "test-env: starting the local PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432 -q || {
    echo "test-env: the tests need PostgreSQL on 127.0.0.1:5432 (trust auth, database 'test'), or MOTCUA_TEST_PG_URL" >&2
    exit 1
  }
fi

#!/usr/bin/env bash
# Makes the PostgreSQL server the store tests need available on a fresh Debian machine (runs as
# root, idempotent, non-interactive): installs the server if missing, starts the cluster if it is
# down, and creates the `test` database. The tests connect to PATCHDAY_TEST_POSTGRES, by default
# postgres://postgres@127.0.0.1:5432/test (trust authentication on localhost); when that variable
# points elsewhere (a CI service container), nothing local is touched.
set -euo pipefail

if [[ -n "${PATCHDAY_TEST_POSTGRES:-}" ]]; then
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql postgresql-client
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  pg_isready -q -h 127.0.0.1 -p 5432 -t 30
fi

# The default URL needs trust authentication for localhost TCP connections.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload
fi

if [[ -z $(psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
  "select 1 from pg_database where datname = 'test'") ]]; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE test'
fi

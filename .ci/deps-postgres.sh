#!/usr/bin/env bash
# Makes the PostgreSQL server the store tests need available on a fresh Debian machine (runs as
# root, idempotent, non-interactive): installs the server if missing, starts the cluster if it is
# down, and creates what the tests use and nothing more: a role `patchday_test` (password
# `patchday_test`) owning a database `patchday_test`, reachable over TCP from localhost with that
# password (one pg_hba.conf line for that role and database; the other lines are left alone).
# The tests connect to PATCHDAY_TEST_POSTGRES, by default
# postgres://patchday_test:patchday_test@127.0.0.1:5432/patchday_test; when that variable points
# elsewhere (a CI service container), nothing local is touched.
set -euo pipefail

if [[ -n "${PATCHDAY_TEST_POSTGRES:-}" ]]; then
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql postgresql-client
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  pg_isready -q -h 127.0.0.1 -p 5432 -t 30
fi

# As the server's superuser, over its Unix socket (peer authentication).
admin() { runuser -u postgres -- psql -X -d postgres -v ON_ERROR_STOP=1 -Atq "$@"; }

if [[ -z $(admin -c "select 1 from pg_roles where rolname = 'patchday_test'") ]]; then
  admin -c "CREATE ROLE patchday_test LOGIN PASSWORD 'patchday_test'"
fi
if [[ -z $(admin -c "select 1 from pg_database where datname = 'patchday_test'") ]]; then
  admin -c 'CREATE DATABASE patchday_test OWNER patchday_test'
fi

# Password authentication for that role and database only, ahead of the other rules.
hba=$(admin -c 'show hba_file')
rule='host patchday_test patchday_test 127.0.0.1/32 scram-sha-256'
if ! grep -qF "$rule" "$hba"; then
  sed -i "1i $rule\nhost patchday_test patchday_test ::1/128 scram-sha-256" "$hba"
  admin -c 'select pg_reload_conf()' >/dev/null
fi

PGPASSWORD=patchday_test psql -X -h 127.0.0.1 -U patchday_test -d patchday_test -Atqc 'select 1' >/dev/null

#!/usr/bin/env bash
# Installs the RRULE oracle for tests/tests/e2e/recurrence.rs (runs as root, idempotent,
# non-interactive):
#   python3-venv      Debian's venv module, for a virtual environment of our own
#   python-dateutil   from PyPI, pinned, into /opt/patchday-calendar: the reference rrule
#   tzdata            from PyPI, pinned: zoneinfo's time zones where the system has none
#   icalendar         from PyPI, pinned: an independent RFC 5545 parser for `calendar --format ics`
#   recurring-ical-events  from PyPI, pinned (with its x-wr-timezone): expands a feed into the
#                     instants a calendar program shows, for tests/tests/e2e/feed.rs
# The test looks there unless PATCHDAY_TEST_PYTHON names another interpreter.
set -euo pipefail

venv=${PATCHDAY_CALENDAR_VENV:-/opt/patchday-calendar}
dateutil=2.9.0.post0
tzdata=2025.2
icalendar=6.1.3
recurring=3.8.2
xwr=2.0.1

if ! dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed"; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv
fi

versions='from importlib.metadata import version as v; print(*(v(p) for p in ("python-dateutil", "icalendar", "recurring-ical-events")))'
installed=$("$venv/bin/python" -c "$versions" 2>/dev/null || true)
if [[ $installed != "$dateutil $icalendar $recurring" ]]; then
  [[ -x $venv/bin/python ]] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "python-dateutil==$dateutil" "tzdata==$tzdata" "icalendar==$icalendar" \
    "recurring-ical-events==$recurring" "x-wr-timezone==$xwr"
fi
"$venv/bin/python" -c "$versions"


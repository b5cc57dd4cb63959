#!/usr/bin/env bash
# Installs the RRULE oracle for tests/tests/e2e/recurrence.rs (runs as root, idempotent,
# non-interactive):
#   python3-venv      Debian's venv module, for a virtual environment of our own
#   python-dateutil   from PyPI, pinned, into /opt/patchday-calendar: the reference rrule
#   tzdata            from PyPI, pinned: zoneinfo's time zones where the system has none
#   icalendar         from PyPI, pinned: an independent RFC 5545 parser for `calendar --format ics`
# The test looks there unless PATCHDAY_TEST_PYTHON names another interpreter.
set -euo pipefail

venv=${PATCHDAY_CALENDAR_VENV:-/opt/patchday-calendar}
dateutil=2.9.0.post0
tzdata=2025.2
icalendar=6.1.3

if ! dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed"; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv
fi

installed=$("$venv/bin/python" -c 'import dateutil, icalendar; print(dateutil.__version__, icalendar.__version__)' 2>/dev/null || true)
if [[ $installed != "$dateutil $icalendar" ]]; then
  [[ -x $venv/bin/python ]] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "python-dateutil==$dateutil" "tzdata==$tzdata" "icalendar==$icalendar"
fi
"$venv/bin/python" -c 'import dateutil, icalendar; print("python-dateutil", dateutil.__version__, "icalendar", icalendar.__version__)'

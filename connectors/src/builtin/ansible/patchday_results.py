# patchday's Ansible callback plugin: per-host results of one ansible-playbook run, as JSON
# lines, for the `ansible` connector (connectors/src/builtin/ansible.rs). Shipped inside the
# patchday binary, written next to each run and put on ANSIBLE_CALLBACK_PLUGINS; it loads
# without being enabled (CALLBACK_NEEDS_ENABLED = False) and leaves the stdout callback alone.
#
# It appends to the file named by PATCHDAY_ANSIBLE_RESULTS, one JSON object per line:
#   {"event": "failed", "host": H, "task": T, "message": M}       a task failed on H (not ignored)
#   {"event": "unreachable", "host": H, "task": T, "message": M}  H could not be reached
#   {"event": "changed", "host": H, "task": T}                    a task changed something on H
#   {"event": "stats", "hosts": {H: {"ok": n, "changed": n, "failures": n, "unreachable": n,
#                                    "skipped": n, "rescued": n, "ignored": n}}}
# Messages are cut to MESSAGE_LIMIT characters; results of `no_log` tasks arrive censored.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: patchday_results
    type: notification
    short_description: per-host results for patchday, as JSON lines
    description:
      - Appends per-host results to the file named by PATCHDAY_ANSIBLE_RESULTS.
"""

MESSAGE_LIMIT = 1000
TASK_LIMIT = 200


def _cut(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _last_lines(text, n=3):
    lines = [line for line in str(text).splitlines() if line.strip()]
    return " | ".join(lines[-n:])


def _message(result):
    """What went wrong, in one bounded line: msg, the exit code and the end of stderr."""
    parts = []
    msg = result.get("msg")
    if msg:
        parts.append(str(msg).strip())
    rc = result.get("rc")
    if isinstance(rc, int) and rc != 0:
        parts.append("rc=%d" % rc)
    stderr = result.get("stderr")
    stdout = result.get("stdout")
    if stderr:
        parts.append("stderr: " + _last_lines(stderr))
    elif stdout and not msg:
        parts.append("stdout: " + _last_lines(stdout))
    return _cut("; ".join(parts) or "failed without a message", MESSAGE_LIMIT)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "patchday_results"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("PATCHDAY_ANSIBLE_RESULTS")
        self._out = open(path, "a", encoding="utf-8") if path else None

    def _emit(self, event):
        if self._out is None:
            return
        self._out.write(json.dumps(event, default=str) + "\n")
        self._out.flush()

    def _about(self, result):
        return {
            "host": result._host.get_name(),
            "task": _cut(result._task.get_name(), TASK_LIMIT),
        }

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            return
        event = self._about(result)
        event.update(event="failed", message=_message(result._result))
        self._emit(event)

    def v2_runner_on_unreachable(self, result):
        event = self._about(result)
        event.update(event="unreachable", message=_message(result._result))
        self._emit(event)

    def v2_runner_on_ok(self, result):
        if result._result.get("changed"):
            event = self._about(result)
            event.update(event="changed")
            self._emit(event)

    def v2_playbook_on_stats(self, stats):
        hosts = {name: stats.summarize(name) for name in sorted(stats.processed)}
        self._emit({"event": "stats", "hosts": hosts})

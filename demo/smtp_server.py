"""The local test hosts' SMTP server (demo/local-hosts.sh starts it; aiosmtpd, from Debian's
python3-aiosmtpd).

Requires AUTH (PLAIN or LOGIN) as --user with the password in --password-file, on a plain
connection (loopback only). Every accepted message is written into --out as three files with
the same number and a name from its subject:

  0001-patch-cycle-2026-12.eml   the message exactly as received (open it with any mail client)
  0001-patch-cycle-2026-12.txt   the message to read in a terminal: From, To, Subject, Date, the
                                 attachments, then the plain-text body decoded (the .eml is
                                 quoted-printable, which breaks long lines and links with `=`)
  0001-patch-cycle-2026-12.json  what a test or a script wants: envelope, who logged in,
                                 headers, the plain-text body, the attachments' names and sizes

The .json file is written last, so its presence means the message is complete. Prints READY
127.0.0.1:PORT once it listens; stops on SIGTERM or SIGINT.
"""
import argparse
import email
import email.policy
import json
import os
import re
import signal
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--user", required=True)
parser.add_argument("--password-file", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

with open(args.password_file) as f:
    PASSWORD = f.read().rstrip("\r\n")
os.makedirs(args.out, exist_ok=True)


def write(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = msg.get_body(preferencelist=("plain",))
        subject = str(msg.get("Subject", ""))
        login = getattr(session, "auth_data", None)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "authenticated": bool(session.authenticated),
            "login": login.login.decode() if isinstance(login, LoginPassword) else None,
            "subject": subject,
            "message_id": str(msg.get("Message-ID", "")),
            "headers": {k.lower(): str(v) for k, v in msg.items()},
            "text": text.get_content() if text is not None else None,
            "attachments": [
                {
                    "filename": part.get_filename(),
                    "content_type": part.get_content_type(),
                    "size": len(part.get_payload(decode=True) or b""),
                }
                for part in msg.iter_attachments()
                if not part.is_multipart()
            ],
        }
        n = len([f for f in os.listdir(args.out) if f.endswith(".json")]) + 1
        slug = re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:60] or "message"
        base = os.path.join(args.out, "%04d-%s" % (n, slug))
        write(base + ".eml", raw)
        write(base + ".txt", readable(record).encode())
        write(base + ".json", (json.dumps(record, indent=2) + "\n").encode())
        print("message %d from %s to %s: %s" % (n, envelope.mail_from, ", ".join(envelope.rcpt_tos), subject), flush=True)
        return "250 Message accepted"


def readable(record):
    """The .txt file: the headers people read, the attachments, the decoded plain-text body."""
    headers = record["headers"]
    lines = [
        "From: %s" % headers.get("from", record["mail_from"]),
        "To: %s" % headers.get("to", ", ".join(record["rcpt_tos"])),
    ]
    if "cc" in headers:
        lines.append("Cc: %s" % headers["cc"])
    lines += ["Subject: %s" % record["subject"], "Date: %s" % headers.get("date", "")]
    for a in record["attachments"]:
        lines.append("Attachment: %s (%s, %d bytes)" % (a["filename"], a["content_type"], a["size"]))
    body = (record["text"] or "(no plain-text body)").replace("\r\n", "\n")
    return "\n".join(lines) + "\n\n" + body.rstrip("\n") + "\n"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == args.user
        and auth_data.password.decode() == PASSWORD
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=args.port,
    authenticator=authenticator,
    auth_required=True,
    auth_require_tls=False,
)
controller.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
print("READY 127.0.0.1:%d" % args.port, flush=True)
stop.wait()
controller.stop()

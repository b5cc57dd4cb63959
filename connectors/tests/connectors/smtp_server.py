"""A real SMTP server (aiosmtpd) for the connector tests.

Writes each accepted message, parsed with Python's email package, as JSON into --out, prints
READY when it listens, and stops when its stdin closes.
"""
import argparse
import email
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--tls", choices=["none", "starttls", "tls"], default="none")
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--user")
parser.add_argument("--password")
parser.add_argument("--out", required=True)
parser.add_argument("--reject", default="reject@example.com")
parser.add_argument("--tempfail", default="tempfail@example.com")
args = parser.parse_args()


def parse(data):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    attachments = [
        {
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "content": part.get_payload(decode=True).decode("utf-8", "replace"),
        }
            for part in msg.iter_attachments()
        if not part.is_multipart()
    ]
    return {
        "headers": {k.lower(): str(v) for k, v in msg.items()},
        "text": text.get_content() if text is not None else None,
        "html": html.get_content() if html is not None else None,
        "attachments": attachments,
    }


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == args.reject:
            return "550 5.1.1 No such user"
        if address == args.tempfail:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        record = parse(envelope.original_content or envelope.content)
        record.update(
            mail_from=envelope.mail_from,
            rcpt_tos=envelope.rcpt_tos,
            tls=session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            authenticated=bool(session.authenticated),
            raw=(envelope.original_content or envelope.content).decode("utf-8", "replace"),
        )
        n = len([f for f in os.listdir(args.out) if f.endswith(".json")])
        path = os.path.join(args.out, f"{n:04}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == args.user
        and auth_data.password.decode() == args.password
    )
    return AuthResult(success=ok, handled=False)


def tls_context():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    return ctx


kwargs = {"hostname": "127.0.0.1", "port": args.port}
if args.user:
    kwargs.update(authenticator=authenticator, auth_required=True,
                  auth_require_tls=args.tls != "none")
if args.tls == "starttls":
    kwargs.update(tls_context=tls_context(), require_starttls=True)
elif args.tls == "tls":
    kwargs.update(ssl_context=tls_context())

controller = Controller(Handler(), **kwargs)
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()

"""Minimal hookrelay webhook receiver using only the Python standard library.

Verifies every delivery's Standard Webhooks signature (HMAC-SHA256 over
"<webhook-id>.<webhook-timestamp>.<body>", compared in constant time against
each "v1,<base64>" entry of webhook-signature), rejects timestamps more than
five minutes away, de-duplicates by webhook-id (hookrelay delivers at least
once, always with the same id) and answers fast: 204 for a verified or
already-seen webhook, 400 for a bad signature.

Environment:
    WEBHOOK_SECRET  the endpoint's secret, "whsec_..." (required)
    PORT            port to listen on (default 8000; 0 picks a free one)
    HOST            address to bind (default 0.0.0.0)

Prints one line per new verified event: "verified <webhook-id> <type>".
"""

import base64
import binascii
import collections
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # hookrelay's default payload limit is 256 KiB
DEDUPE_SIZE = 10_000
TOLERANCE_SECONDS = 5 * 60
SECRET_PREFIX = "whsec_"


class VerificationError(Exception):
    """The request is not a valid, fresh, correctly signed webhook."""


def parse_secret(secret):
    """Return the HMAC key of a "whsec_<base64>" secret."""
    if secret.startswith(SECRET_PREFIX):
        secret = secret[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(secret, validate=True)
    except binascii.Error as err:
        raise ValueError("WEBHOOK_SECRET is not whsec_<base64>") from err
    if not key:
        raise ValueError("WEBHOOK_SECRET is empty")
    return key


def verify(key, headers, body, now=None):
    """Check a delivery's headers and raw body against key.

    Raises VerificationError unless webhook-id, webhook-timestamp and
    webhook-signature are present, the timestamp is within five minutes of
    now, and one of the v1 signatures matches.
    """
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(timestamp)
    except ValueError as err:
        raise VerificationError("invalid webhook-timestamp") from err
    now = time.time() if now is None else now
    if abs(now - ts) > TOLERANCE_SECONDS:
        raise VerificationError("webhook-timestamp outside tolerance")

    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    # One entry per valid secret while a secret is being rotated.
    for entry in signatures.split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return
    raise VerificationError("no matching signature")


class SeenIDs:
    """Remembers the last `size` webhook-ids, forgetting the oldest first.

    A real receiver stores ids in its database, in the same transaction as
    the work the event triggers.
    """

    def __init__(self, size):
        self._size = size
        self._ids = collections.OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, msg_id):
        with self._lock:
            if msg_id in self._ids:
                return False
            if len(self._ids) >= self._size:
                self._ids.popitem(last=False)
            self._ids[msg_id] = None
            return True


def make_handler(key, seen):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            try:
                length = int(self.headers.get("content-length", ""))
            except ValueError:
                self.send_error(411, "content-length required")
                return
            if length < 0 or length > MAX_BODY:
                self.send_error(413)
                return
            # Verify the raw bytes exactly as received: re-serialised JSON
            # would not match the signature.
            body = self.rfile.read(length)
            try:
                verify(key, self.headers, body)
                event = json.loads(body)
            except (VerificationError, ValueError):
                self.send_error(400, "invalid signature")
                return
            msg_id = self.headers["webhook-id"]
            if seen.first_time(msg_id):
                # Keep this quick: hand slow work to a queue, then answer.
                print(f"verified {msg_id} {event.get('type')}", flush=True)
            # A duplicate is acknowledged with 2xx so hookrelay stops retrying.
            self.send_response(204)
            self.end_headers()

        def log_message(self, format, *args):  # keep stdout for events
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    return Handler


def main():
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret:
        sys.exit("WEBHOOK_SECRET is required (the endpoint's whsec_... secret)")
    try:
        key = parse_secret(secret)
    except ValueError as err:
        sys.exit(str(err))
    host = os.environ.get("HOST") or "0.0.0.0"
    port = int(os.environ.get("PORT") or 8000)

    server = ThreadingHTTPServer((host, port), make_handler(key, SeenIDs(DEDUPE_SIZE)))
    server.daemon_threads = True

    def stop(signum, frame):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    addr, bound = server.server_address[:2]
    print(f"listening on {addr}:{bound}", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A backend service talking to `kvitto serve` over HTTP, with nothing but Python's standard library.

It records a customer's consent, asks whether the customer's data may be processed for that
purpose, withdraws the consent and asks again:

    kvitto --ledger ./ledger token create --controller kazoom --scope append,read
    kvitto --ledger ./ledger serve &
    python3 examples/http/client.py --url http://127.0.0.1:8080 --token kvitto_...

The controller's declarations (purposes, processors, retention) are appended first, from
examples/tour/declarations.jsonl, as JSON Lines in one all-or-nothing request. Every event
carries an event_id, so a request that timed out can be sent again safely: recorded events
answer with their original receipts.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


class Kvitto:
    """The two calls a backend needs most: append events and ask may-process."""

    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token

    def _call(self, method, path, body=None, content_type=None):
        headers = {"Authorization": "Bearer " + self.token}
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            # Every error is {"error": "...", "code": "..."}; bad input names line and field.
            problem = json.load(e)
            raise RuntimeError(f"HTTP {e.code} {problem['code']}: {problem['error']}") from None

    def append(self, events):
        """Appends events (dicts) all or nothing; returns one receipt per event."""
        lines = "\n".join(json.dumps(e, ensure_ascii=False) for e in events)
        return self._call("POST", "/v1/events", lines.encode("utf-8"), "application/x-ndjson")["receipts"]

    def may_process(self, controller, subject, purpose):
        """{"allowed": bool, "reason": str, "seq": int | None}. Asked by POST, so that the
        customer reference stays out of URLs (and out of every proxy's access log)."""
        body = json.dumps({"controller": controller, "subject": subject, "purpose": purpose}).encode("utf-8")
        return self._call("POST", "/v1/may-process", body, "application/json")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default=os.environ.get("KVITTO_URL", "http://127.0.0.1:8080"))
    p.add_argument("--token", default=os.environ.get("KVITTO_TOKEN"), help="a token with scopes append,read")
    p.add_argument("--subject", default="KZ-" + uuid.uuid4().hex[:8], help="the customer reference")
    args = p.parse_args()
    if not args.token:
        p.error("--token (or KVITTO_TOKEN) is required: kvitto token create --controller kazoom --scope append,read")
    k = Kvitto(args.url, args.token)

    with open(os.path.join(HERE, "..", "tour", "declarations.jsonl"), encoding="utf-8") as f:
        declarations = [json.loads(line) for line in f if line.strip()]
    receipts = k.append(declarations)
    print(f"declarations: {len(receipts)} events, seqs {receipts[0]['seq']}..{receipts[-1]['seq']}")

    # Bad input is refused whole, naming the line and the field; nothing is written.
    try:
        k.append([{"type": "consent_given", "controller": "kazoom", "subject": args.subject}])
    except RuntimeError as e:
        print(f"refused as expected: {e}")

    given = {
        "type": "consent_given",
        "controller": "kazoom",
        "subject": args.subject,
        "purpose": "product-news",
        "notice_version": "kazoom-2022-01-08",
        "channel": "web",
        "event_id": str(uuid.uuid4()),
    }
    (receipt,) = k.append([given])
    print(f"consent_given: seq {receipt['seq']}, hash {receipt['hash'][:16]}…")
    # Sending the same event again is safe: the original receipt comes back.
    assert k.append([given])[0] == receipt

    d = k.may_process("kazoom", args.subject, "product-news")
    print(f"may-process product-news: allowed={str(d['allowed']).lower()} (seq {d['seq']}): {d['reason']}")

    withdrawn = {"type": "consent_withdrawn", "controller": "kazoom", "subject": args.subject,
                 "purpose": "product-news", "channel": "email", "event_id": str(uuid.uuid4())}
    k.append([withdrawn])
    d = k.may_process("kazoom", args.subject, "product-news")
    print(f"after withdrawal: allowed={str(d['allowed']).lower()} (seq {d['seq']}): {d['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

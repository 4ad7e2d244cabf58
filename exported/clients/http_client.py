"""Translate lines through a running ``s2s serve``, with Python's standard library only.

    s2s serve exported/multi30k-en-de &
    printf 'A man rides a bike.\\nTwo dogs play in the snow.\\n' | python exported/clients/http_client.py

Reads lines from stdin, sends them in requests of up to ``--batch`` lines, prints one translation
per line in order. A 503 (the server's queue is full) is retried after the ``Retry-After`` it
names; any other error prints the server's message and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def translate(url: str, texts: list[str], retries: int = 5, **options) -> list[str]:
    """POST ``texts`` to ``url``/v1/translate; the translations in order."""
    body = json.dumps({"text": texts, **{k: v for k, v in options.items() if v is not None}}).encode()
    request = urllib.request.Request(f"{url}/v1/translate", body, {"Content-Type": "application/json"})
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return [t["text"] for t in json.load(response)["translations"]]
        except urllib.error.HTTPError as err:
            if err.code != 503 or attempt == retries:
                message = json.load(err).get("error", {}).get("message", err.reason)
                raise SystemExit(f"{url}: HTTP {err.code}: {message}") from None
            time.sleep(float(err.headers.get("Retry-After", 1)))
    raise AssertionError("unreachable")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server (default: %(default)s)")
    parser.add_argument("--model", help="the model's name, when the server has several")
    parser.add_argument("--beam", type=int, help="beam size (default: the model's)")
    parser.add_argument("--batch", type=int, default=32, help="lines per request (default: %(default)s)")
    args = parser.parse_args()
    lines = [line.rstrip("\n") for line in sys.stdin]
    for start in range(0, len(lines), args.batch):
        for text in translate(args.url, lines[start: start + args.batch], model=args.model, beam=args.beam):
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Driver: openai-python checks webhook deliveries as a receiver would (``client.webhooks``).

Reads the JSON file named by its argument,
``{"secret": "whsec_...", "deliveries": [{"body": str, "headers": {...}}]}``; prints one JSON line:
for each delivery, whether ``verify_signature`` accepted it and what ``unwrap`` gave.
"""

from __future__ import annotations

import json
import sys

from openai import OpenAI  # type: ignore[import-not-found,unused-ignore]


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        given = json.load(file)
    client = OpenAI(api_key="unused", webhook_secret=given["secret"])
    results = []
    for delivery in given["deliveries"]:
        try:
            client.webhooks.verify_signature(delivery["body"], delivery["headers"])
            event = client.webhooks.unwrap(delivery["body"], delivery["headers"])
            results.append({"verified": True, "event": event.model_dump()})
        except Exception as exc:  # the SDK's InvalidWebhookSignatureError, reported
            results.append({"verified": False, "error": f"{type(exc).__name__}: {exc}"})
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()

"""Schemathesis hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS)."""

import json

import schemathesis

# Rule uploads are raw bytes sent as `application/wasm` (or `application/octet-stream`, which
# the service takes too): send them the way schemathesis sends octet streams.
schemathesis.serializer.alias("application/wasm", "application/octet-stream")


# Signals also come as NDJSON: the document describes the body as a list of entries, one per line.
@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    entries = value if isinstance(value, list) else [value]
    return "".join(json.dumps(entry) + "\n" for entry in entries).encode()

"""Schemathesis hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS)."""

import schemathesis

# Rule uploads are raw bytes sent as `application/wasm` (or `application/octet-stream`, which
# the service takes too): send them the way schemathesis sends octet streams.
schemathesis.serializer.alias("application/wasm", "application/octet-stream")

"""Seeds a fresh pricing service for scripts/schemathesis and writes one schemathesis
configuration per role.

What it makes, through the API alone (standard library only, so it runs before any venv):
- merchant "Acme" with a key of each merchant role, a product, a competitor observation, a
  demand event and the cost-plus rule uploaded, tuned and active (so that rule versions and
  decisions exist for the rule, history, replay and export operations to find);
- merchant "Globex" with a key of each merchant role and nothing else: the other tenant, whose
  keys schemathesis' `object_level_authorization` check uses to try to read Acme's objects.

For each role it writes <out>/<role>.toml: the shared configuration (tests/schemathesis/
schemathesis.toml) plus the role's credentials, and for a merchant role a Web Fuzzing Commons
auth file naming both tenants' keys as peers. Admin keys belong to no merchant (one operator),
so the admin run has no peer. Prints the roles, one a line.

Usage: seed.py BASE_URL ADMIN_KEY RULE_WASM OUT_DIR
"""

import json
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

MERCHANT_ROLES = ["merchant", "feed", "checkout", "auditor", "approver"]
HERE = Path(__file__).resolve().parent


def call(base, key, method, path, body=None, content_type="application/json"):
    data = None
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as e:
        sys.exit(f"seed: {method} {path} answered {e.code}: {e.read().decode()}")
    return json.loads(text) if text else None


def tenant(base, admin_key, name):
    merchant = call(base, admin_key, "POST", "/v1/merchants", {"name": name})["id"]
    keys = {}
    for role in MERCHANT_ROLES:
        issued = call(base, admin_key, "POST", f"/v1/merchants/{merchant}/keys", {"roles": [role], "label": role})
        keys[role] = issued["key"]
    return keys


def main():
    base, admin_key, rule_path, out = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    acme = tenant(base, admin_key, "Acme")
    globex = tenant(base, admin_key, "Globex")

    key = acme["merchant"]
    product = {
        "currency": "EUR",
        "cost_minor": 1200,
        "base_price_minor": 1999,
        "guardrails": {"floor_minor": 1300, "ceiling_minor": 2999, "rounding": {"mode": "ending", "ending_minor": 99}},
        "attributes": {"brand": "acme"},
    }
    call(base, key, "PUT", "/v1/products/tshirt-red-m", product)
    now = datetime.now(timezone.utc).isoformat()
    observation = {"id": "seed-1", "sku": "tshirt-red-m", "competitor": "globex", "price_minor": 1899,
                   "currency": "EUR", "in_stock": True, "observed_at": now}
    call(base, acme["feed"], "POST", "/v1/signals/competitor-prices", {"observations": [observation]})
    event = {"id": "seed-1", "sku": "tshirt-red-m", "kind": "view", "quantity": 3, "occurred_at": now}
    call(base, acme["feed"], "POST", "/v1/signals/demand", {"events": [event]})
    version = call(base, key, "POST", "/v1/rules", rule_path.read_bytes(), "application/wasm")["version"]
    call(base, key, "PUT", f"/v1/rules/{version}/params", {"margin_bps": 2500, "ending": 99})
    call(base, key, "POST", f"/v1/rules/{version}/activate")
    # The activation reprices off the request path: wait for the rule's decision.
    for _ in range(100):
        feed = call(base, acme["auditor"], "GET", "/v1/decisions?trigger=rule_activated")
        if feed["items"]:
            break
        time.sleep(0.1)
    else:
        sys.exit("seed: the rule's activation decided nothing within 10 s")

    shared = (HERE / "schemathesis.toml").read_text()
    out.mkdir(parents=True, exist_ok=True)
    for role in MERCHANT_ROLES:
        users = {f"acme-{role}": acme[role], f"globex-{role}": globex[role]}
        wfc = {
            "schemaVersion": "1.0.0",
            "auth": [
                {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {secret}"}]}
                for name, secret in users.items()
            ],
        }
        (out / f"{role}.wfc.json").write_text(json.dumps(wfc, indent=2))
        auth = (
            f"\n[auth.wfc]\npath = {json.dumps(str(out / f'{role}.wfc.json'))}\n"
            f"user = \"acme-{role}\"\npeers = {json.dumps(list(users))}\n"
        )
        (out / f"{role}.toml").write_text(shared + auth)
        print(role)
    (out / "admin.toml").write_text(shared + f"\n[headers]\nAuthorization = \"Bearer {admin_key}\"\n")
    # Last: the operator can revoke the other roles' keys.
    print("admin")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks the running API against its own OpenAPI document with schemathesis.

Starts `depot serve` on a fresh SQLite database, bootstraps an administrator the way an operator
would (CLI, TOTP enrolment, sign-in with a recovery code), creates a user whose role holds every
permission without an MFA requirement, and runs `st run` with that user's token: every check,
a fixed seed, a bounded number of examples per operation, in every phase — examples, coverage,
fuzzing and the stateful phase, which chains calls along the document's OpenAPI links (create →
read → update → act on products, stock, purchase and sales orders) with the ids real responses
returned. A few records made before the run (two locations, a stocked product, a supplier, a
customer) are offered to generated bodies as dictionary values, so sequences get past "no such
product" into the states behind it; and most generated `Idempotency-Key`s are made distinct
(scripts/schemathesis_hooks.py). Fails when the stateful phase did not run or followed none
of the document's own links. Exits with schemathesis's status otherwise.

Usage: scripts/api-contract.py --depot target/debug/depot [--examples 20] [--report DIR]

Every check but `ensure_resource_availability` (see the command below for why).
Operations excluded: those that end the session the run authenticates with
(POST /api/v1/auth/logout, POST /api/v1/auth/logout-all, DELETE /api/v1/auth/sessions/{id},
POST /api/v1/users/{id}/sessions/revoke, POST /api/v1/users/me/password), and
POST /api/v1/auth/csrf, which serves cookie sessions only (a bearer caller always gets 401).
Only the standard library is used here; schemathesis must be installed (`pip install schemathesis`).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

EXCLUDED = [
    "POST /api/v1/auth/logout",
    "POST /api/v1/auth/logout-all",
    "DELETE /api/v1/auth/sessions/{id}",
    "POST /api/v1/users/{id}/sessions/revoke",
    "POST /api/v1/users/me/password",
    # For cookie sessions only; the run authenticates with a bearer token.
    "POST /api/v1/auth/csrf",
]
ADMIN_EMAIL = "contract-admin@example.com"
FUZZER_EMAIL = "contract-fuzzer@example.com"
PASSWORD = "kettle mango violin orchestra 87"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, (json.loads(text) if text else None)


def expect(result, status):
    got, body = result
    if got != status:
        sys.exit(f"bootstrap: expected {status}, got {got}: {body}")
    return body


def totp(secret_b32, at=None):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = int((at or time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{code % 1_000_000:06d}"


def wait_ready(base, server, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            sys.exit(f"depot exited early with {server.returncode}")
        try:
            if call(base, "GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("depot did not become ready")


def bootstrap(base, depot, env, workdir):
    """An administrator through the CLI and MFA; then a fuzzer holding every permission."""
    created = subprocess.run(
        [depot, "admin", "create-user", "--email", ADMIN_EMAIL, "--role", "admin",
         "--password-stdin"],
        input=PASSWORD + "\n", text=True, env=env, cwd=workdir, capture_output=True,
    )
    if created.returncode != 0:
        sys.exit(f"create-user failed: {created.stderr}")
    refused = expect(
        call(base, "POST", "/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": PASSWORD}),
        403,
    )
    enrolment = refused["details"]["enrolment_token"]
    secret = expect(call(base, "POST", "/api/v1/auth/mfa/totp/enroll", {}, enrolment), 200)
    codes = expect(
        call(base, "POST", "/api/v1/auth/mfa/totp/enable",
             {"code": totp(secret["secret"])}, enrolment),
        200,
    )
    challenge = expect(
        call(base, "POST", "/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": PASSWORD}),
        200,
    )
    signed = expect(
        call(base, "POST", "/api/v1/auth/mfa/verify",
             {"challenge_token": challenge["challenge_token"],
              "recovery_code": codes["recovery_codes"][0]}),
        200,
    )
    admin = signed["access_token"]
    permissions = expect(call(base, "GET", "/api/v1/permissions", token=admin), 200)
    expect(
        call(base, "POST", "/api/v1/roles",
             {"name": "contract-fuzzer", "description": "schemathesis run",
              "permissions": [p["code"] for p in permissions["data"]], "mfa_required": False},
             admin),
        201,
    )
    expect(
        call(base, "POST", "/api/v1/users",
             {"email": FUZZER_EMAIL, "display_name": "Contract Fuzzer", "password": PASSWORD,
              "roles": ["contract-fuzzer"]},
             admin),
        201,
    )
    fuzzer = expect(
        call(base, "POST", "/api/v1/auth/login", {"email": FUZZER_EMAIL, "password": PASSWORD}),
        200,
    )["access_token"]
    # The fuzzer becomes the only active administrator: the run may then try anything on its
    # own account, and `users.last_admin` keeps it from taking its own access away.
    me = expect(call(base, "GET", "/api/v1/users/me", token=admin), 200)
    expect(call(base, "POST", f"/api/v1/users/{me['id']}/disable", {}, fuzzer), 200)
    return fuzzer


def fixtures(base, token):
    """Records generated requests may name: {dictionary name: [values]}."""
    locations = [
        expect(call(base, "POST", "/api/v1/locations", {"code": code, "name": name}, token), 201)["id"]
        for code, name in [("CT-MAIN", "Contract main"), ("CT-BACK", "Contract back room")]
    ]
    product = expect(
        call(base, "POST", "/api/v1/products",
             {"sku": "CT-WIDGET", "name": "Contract widget", "unit": "pcs"}, token),
        201,
    )["id"]
    for location in locations:
        expect(
            call(base, "POST", "/api/v1/stock/adjustments",
                 {"product_id": product, "location_id": location, "quantity": 1000,
                  "reason": "initial", "unit_cost": 250, "currency": "BDT"}, token),
            201,
        )
    supplier = expect(
        call(base, "POST", "/api/v1/suppliers", {"name": "Contract supplier", "currency": "BDT"},
             token),
        201,
    )["id"]
    customer = expect(
        call(base, "POST", "/api/v1/customers", {"name": "Contract customer"}, token), 201
    )["id"]
    return {
        "products": [product],
        "locations": locations,
        "suppliers": [supplier],
        "customers": [customer],
        "currencies": ["BDT"],
        "quantities": [1, 2, 5],
        "amounts": [100, 250],
    }


# Body fields that name a record, and the dictionary of real ones offered for them (half the
# time; the other half stays generated, so "no such record" is still exercised).
DICTIONARY_FIELDS = {
    "body.product_id": "products",
    "body.lines[*].product_id": "products",
    "body.location_id": "locations",
    "body.from_location_id": "locations",
    "body.to_location_id": "locations",
    "body.supplier_id": "suppliers",
    "body.customer_id": "customers",
    "body.currency": "currencies",
    "body.quantity": "quantities",
    "body.lines[*].quantity": "quantities",
    "body.unit_cost": "amounts",
    "body.lines[*].unit_cost": "amounts",
    "body.lines[*].unit_price": "amounts",
    "body.amount": "amounts",
}


def run_config(path, dictionaries):
    """scripts/schemathesis.toml plus the dictionaries of this run's records."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemathesis.toml")) as f:
        base = f.read()
    # Top-level tables must come before the per-operation ones ([[operations]]).
    head, sep, tail = base.partition("[[operations]]")
    extra = ["", "[parameters]"]
    for field, dictionary in DICTIONARY_FIELDS.items():
        extra.append(f'"{field}" = {{ dictionary = "{dictionary}", probability = 0.5 }}')
    for name, values in dictionaries.items():
        extra += ["", f"[dictionaries.{name}]", "values = " + json.dumps(values)]
    with open(path, "w") as f:
        f.write(head + "\n".join(extra) + "\n\n" + sep + tail)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depot", required=True, help="path to the depot binary")
    parser.add_argument("--examples", type=int, default=20, help="fuzzing examples per operation")
    parser.add_argument("--report", default=None, help="directory for schemathesis reports")
    parser.add_argument("--keep", action="store_true", help="keep the server's data directory")
    args = parser.parse_args()
    depot = os.path.abspath(args.depot)
    st = shutil.which("st") or sys.exit("schemathesis (`st`) is not installed")

    workdir = tempfile.mkdtemp(prefix="depot-contract-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEPOT_HTTP_ADDR": f"127.0.0.1:{port}",
        "DEPOT_METRICS_ADDR": f"127.0.0.1:{free_port()}",
        "DEPOT_DATA_DIR": os.path.join(workdir, "data"),
        "DEPOT_ACCESS_TOKEN_TTL_SECS": "7200",
        # The run sends thousands of sign-in attempts from one address.
        "DEPOT_AUTH_RATE_LIMIT_PER_IP": "1000000",
        "DEPOT_AUTH_RATE_LIMIT_PER_ACCOUNT": "1000000",
        "DEPOT_LOG_FILTER": "warn",
        # Payments through the built-in simulator, so the gateway routes answer as in use.
        "DEPOT_PAYMENTS_ENABLED": "true",
        "DEPOT_PAYMENTS_GATEWAY": "simulator",
        "DEPOT_SSLCOMMERZ_STORE_ID": "contract",
        "DEPOT_SSLCOMMERZ_STORE_PASSWORD": "contract-store-password",
    }
    server = subprocess.Popen([depot, "serve"], env=env, cwd=workdir)
    try:
        wait_ready(base, server)
        token = bootstrap(base, depot, env, workdir)
        config = os.path.join(workdir, "schemathesis.toml")
        run_config(config, fixtures(base, token))
        command = [
            st, "--config-file", config, "run", f"{base}/openapi.json",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--checks", "all",
            # A POST repeated with an Idempotency-Key it already used answers with the stored
            # response, also after the resource it created was deleted (the key's promise, as
            # Stripe's). Generated keys repeat, so "create, delete, same key again, old id, 404"
            # is the API keeping that promise, not a resource gone missing.
            "--exclude-checks", "ensure_resource_availability",
            "--max-examples", str(args.examples),
            "--seed", "20261129",
            "--workers", "1",
            "--request-timeout", "10",
            "--generation-database", "none",
            "--no-color",
            "-H", f"Authorization: Bearer {token}",
        ]
        for name in EXCLUDED:
            command += ["--exclude-name", name]
        if args.report:
            command += ["--report", "json,junit,har", "--report-dir", args.report]
        print("running:", " ".join(c if "Bearer" not in c else "-H 'Authorization: …'"
                                    for c in command), flush=True)
        scripts = os.path.dirname(os.path.abspath(__file__))
        st_env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks",
                      PYTHONPATH=os.pathsep.join(filter(None, [scripts, os.environ.get("PYTHONPATH")])))
        run = subprocess.Popen(command, cwd=workdir, env=st_env, stdout=subprocess.PIPE, text=True)
        output = []
        for line in run.stdout:
            print(line, end="", flush=True)
            output.append(line)
        status = run.wait()
        return status or stateful_ran(base, "".join(output))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        if args.keep:
            print("data kept in", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def stateful_ran(base, output):
    """0 when the stateful phase ran and followed links of the document's own; else 1."""
    import re

    phase = re.search(r"Stateful \(in [^)]*\)\s+Scenarios:\s+(\d+)\s+API Links:\s+(\d+) covered / "
                      r"\d+ selected / (\d+) total \((\d+) inferred\)", output)
    if not phase:
        print("api-contract: the stateful phase did not run", file=sys.stderr)
        return 1
    scenarios, covered, total, inferred = map(int, phase.groups())
    with urllib.request.urlopen(base + "/openapi.json", timeout=30) as response:
        document = json.load(response)
    declared = sum(
        len(answer.get("links", {}))
        for item in document["paths"].values()
        for operation in item.values() if isinstance(operation, dict)
        for answer in operation.get("responses", {}).values()
    )
    print(f"api-contract: stateful phase: {scenarios} scenarios, {covered} links followed of "
          f"{total} ({total - inferred} declared by the document: {declared})")
    if declared == 0 or total - inferred < declared or scenarios == 0 or covered == 0:
        print("api-contract: the stateful phase did not use the document's links", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

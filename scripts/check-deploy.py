#!/usr/bin/env python3
"""Checks the deployment files against the build (run by .ci/run).

- every YAML file under deploy/ parses;
- the settings the compose file, the Kubernetes manifests and deploy/prod.env give Depot are
  accepted by `depot config check` of this build (unknown DEPOT_* keys and bad values fail it),
  with CHANGE_ME placeholders and ${...} secrets replaced by well-formed values;
- the compose file has the services the runbook names; every pod's grace period outlasts the
  drain delay plus the shutdown deadline.

Usage: scripts/check-deploy.py --depot PATH_TO_DEPOT_BINARY
"""

import argparse
import os
import pathlib
import re
import secrets
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def fail(message):
    print(f"check-deploy: {message}", file=sys.stderr)
    sys.exit(1)


def filled(env):
    """Placeholders and ${VAR:?…} replaced by values the prod profile accepts."""
    out = {}
    for key, value in env.items():
        value = str(value)
        if value.startswith("${") or value == "CHANGE_ME":
            value = secrets.token_urlsafe(48)
        value = value.replace("CHANGE_ME", "s3cret-" + secrets.token_hex(8))
        out[key] = value
    return out


def config_check(depot, name, env):
    with tempfile.TemporaryDirectory() as cwd:
        run_env = {"PATH": os.environ.get("PATH", "")}
        run_env.update(filled(env))
        run_env.setdefault("DEPOT_DATA_DIR", cwd)
        result = subprocess.run(
            [depot, "config", "check"], cwd=cwd, env=run_env, capture_output=True, text=True
        )
    if result.returncode != 0:
        fail(f"{name}: `depot config check` refused it:\n{result.stdout}{result.stderr}")
    print(f"{name}: depot config check accepts it")


def grace_ok(name, seconds, env):
    drain = int(env.get("DEPOT_SHUTDOWN_DRAIN_DELAY_MS", "0")) / 1000
    deadline = int(env.get("DEPOT_SHUTDOWN_DEADLINE_SECS", "30"))
    if seconds <= drain + deadline:
        fail(f"{name}: grace period {seconds}s is not above drain {drain}s + deadline {deadline}s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--depot", required=True)
    depot = parser.parse_args().depot

    documents = {}
    for path in sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml")):
        try:
            documents[path.relative_to(DEPLOY).as_posix()] = [
                d for d in yaml.safe_load_all(path.read_text()) if d is not None
            ]
        except yaml.YAMLError as e:
            fail(f"{path}: not YAML: {e}")
    print(f"{len(documents)} YAML files parse")

    compose = documents["compose.yaml"][0]
    services = compose["services"]
    for wanted in ["postgres", "redis", "rabbitmq", "minio", "mailpit", "migrate", "api-1",
                   "api-2", "worker", "prometheus", "jaeger"]:
        if wanted not in services:
            fail(f"compose.yaml: no service {wanted}")
    compose_env = compose["x-depot"]["environment"]
    config_check(depot, "compose.yaml", compose_env)
    grace = int(re.match(r"(\d+)s", compose["x-depot"]["stop_grace_period"]).group(1))
    grace_ok("compose.yaml", grace, compose_env)

    k8s = [d for name, docs in documents.items() if name.startswith("k8s/") for d in docs]
    k8s_env = {}
    for doc in k8s:
        if doc["kind"] == "ConfigMap":
            k8s_env.update(doc["data"])
        if doc["kind"] == "Secret":
            k8s_env.update(doc["stringData"])
    config_check(depot, "k8s", k8s_env)
    for doc in k8s:
        if doc["kind"] == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            grace_ok(doc["metadata"]["name"], spec["terminationGracePeriodSeconds"], k8s_env)

    prod_env = {}
    for line in (DEPLOY / "prod.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            prod_env[key] = value
    config_check(depot, "prod.env", prod_env)


if __name__ == "__main__":
    main()

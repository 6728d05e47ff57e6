"""Hooks for the schemathesis run of scripts/api-contract.py (loaded through SCHEMATHESIS_HOOKS).

Generated `Idempotency-Key`s repeat ("0", "00", …; a dictionary of distinct keys does not help:
generation favours its first entries), and the same key on a different request is a 422 by design
(`idempotency.key_reused`). A sequence of the stateful phase — create, submit, approve, send,
receive — would end at its second step whenever two steps drew the same key. So nine generated
keys in ten are replaced, as they are generated, by a fresh UUID; the tenth still exercises
reuse, and so do the explicit examples.
"""

import random
import uuid

import schemathesis

_draws = random.Random(20261129)


@schemathesis.hook
def map_headers(context, headers):
    if headers:
        for name in list(headers):
            if name.lower() == "idempotency-key" and _draws.random() < 0.9:
                headers[name] = str(uuid.UUID(int=_draws.getrandbits(128), version=4))
    return headers

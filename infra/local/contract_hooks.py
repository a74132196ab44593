"""Schemathesis hooks of `make test-contract` (infra/local/src/bin/contract.rs loads them).

The contract cannot know which Instagram accounts a deployment has registered, so a post the
tester generates as valid would only ever meet `422 unknown_account`. Valid posts are sent
for the account the local stack registered instead, so they are created and the tester
follows the links to read, edit and cancel them. Invalid bodies are left as generated.

An `Idempotency-Key` is bound to the request it first came with: the tester, which repeats
generated header values with other bodies, would meet `422 idempotency_key_reused`, which is
right but not what a schema can say. Valid posts get a key of their own, as a client makes one
per post.
"""

import os
import uuid

import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

ACCOUNT = os.environ["INSTAPIPE_CONTRACT_ACCOUNT"]


@schemathesis.hook("map_case").apply_to(method="POST", path="/posts")
def registered_account(context, case):
    body = case.body
    meta = case.meta
    if not isinstance(body, dict) or not isinstance(body.get("accounts"), list):
        return case
    if meta is not None:
        component = meta.components.get(ParameterLocation.BODY)
        mode = component.mode if component is not None else meta.generation.mode
        if mode != GenerationMode.POSITIVE:
            return case
    body["accounts"] = [ACCOUNT]
    headers = case.headers or {}
    for name in [n for n in headers if n.lower() == "idempotency-key"]:
        value = headers[name]
        if isinstance(value, str):
            headers[name] = f"{value[:200]}-{uuid.uuid4().hex}"
    return case

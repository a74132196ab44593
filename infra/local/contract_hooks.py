"""Schemathesis hooks of `make test-contract` (infra/local/src/bin/contract.rs loads them).

The contract cannot know which Instagram accounts a deployment has registered, so a post the
tester generates as valid would only ever meet `422 unknown_account`. Valid posts are sent
for the account the local stack registered instead, so they are created and the tester
follows the links to read, edit and cancel them. Invalid bodies are left as generated.
"""

import os

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
    return case

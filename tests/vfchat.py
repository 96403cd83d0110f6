"""A verifiers v1 harness for the tests: a plain chat turn, each segment one chat
completion of the whole conversation, sent by a stdlib program run with this Python.

verifiers' own tool-less ``null`` harness does the same, but its program is a PEP 723
script that ``uv`` provisions at run time (downloading uv and the script's dependencies),
which a test run here may not do; the rest of the run (the OpenEnv taskset, its Env, the
interception server, the trace and its reward) is verifiers' own. Named by its module:
``{"harness": {"id": "vfchat"}}``."""

from __future__ import annotations

import json
import sys
from typing import Any

from verifiers.v1 import Harness, HarnessConfig
from verifiers.v1.dialects.chat import message_to_wire

__all__ = ["ChatHarness"]

PROGRAM = r"""
import argparse, json, urllib.request
p = argparse.ArgumentParser()
for a in ("--base-url", "--api-key", "--model", "--system-prompt", "--prompt", "--messages"):
    p.add_argument(a, default="")
a = p.parse_args()
messages = [{"role": "system", "content": a.system_prompt}] if a.system_prompt else []
if a.messages:
    with open(a.messages) as f:
        messages += json.load(f)
elif a.prompt:
    messages.append({"role": "user", "content": a.prompt})
body = json.dumps({"model": a.model, "messages": messages}).encode()
req = urllib.request.Request(a.base_url.rstrip("/") + "/chat/completions", body, headers={
    "Authorization": "Bearer " + a.api_key, "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=600) as r:
    r.read()
"""


class ChatHarness(Harness[HarnessConfig]):
    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True  # the default resume relaunches on the whole conversation
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(  # type: ignore[override]
        self,
        ctx: Any,
        trace: Any,
        runtime: Any,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: Any,
    ) -> Any:
        system_prompt, prompt = self.resolve_prompt(data)
        args = [f"--base-url={endpoint}", f"--api-key={secret}", f"--model={ctx.model}"]
        if system_prompt:
            args.append(f"--system-prompt={system_prompt}")
        if isinstance(prompt, str):
            args.append(f"--prompt={prompt}")
        elif prompt is not None:
            path = f".vfchat-{trace.id}.json"
            await runtime.write(path, json.dumps([message_to_wire(m) for m in prompt]).encode())
            args.append(f"--messages={path}")
        return await runtime.run_program([sys.executable, "-c", PROGRAM, *args], {})

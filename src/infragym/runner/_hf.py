"""A run's episodes as a Hugging Face dataset (``infragym export RUN_DIR --format hf-dataset``).

The export is a directory that ``datasets.load_dataset(DIR, split="train")`` loads::

    DIR/README.md          dataset card; its YAML front matter declares every column's type
                           (``dataset_info.features``), so the schema is never inferred
    DIR/data/train.jsonl   one row per graded episode, plain JSON lines (split ``train``)

Writing it needs no ``datasets``. ``Dataset.from_json(DIR/data/train.jsonl)`` reads the
file too; ``features=hf_features()`` gives it the card's schema.

The card declares no ``configs``: with ``configs: data_files``, ``datasets`` 5.2 keys its
cache on the directory's name and the card alone, so a second export (another run's
``export.hf``, or a new export over an old one) loads the first one's cached rows. Found
by name, ``data/train.jsonl`` is resolved with its path and modification time, which the
cache key then covers.

How the messages survive Arrow exactly. Arrow stores a list of messages as one struct
type: a key that one message lacks comes back as ``None`` on every message, so the
recorded transcript (where a text-only assistant turn has no ``tool_calls`` key and a
``tool`` message has a ``tool_call_id``) cannot come back as it was written. ``datasets``'
``Json`` type would keep each message as it is, but a row with any ``Json`` column is
re-encoded with pandas' ujson at load time, which rounds *every* float of the row (the
reward too) to 10 decimals. So each row holds:

- ``messages``: the transcript in a canonical form that Arrow round-trips exactly: every
  message has exactly the keys ``role``, ``content``, ``tool_calls``, ``tool_call_id``
  (``None`` where the recorded message lacks the key), every tool call exactly ``id``,
  ``type`` and ``function`` = {``name``, ``arguments``} (``arguments`` is JSON text, as in
  the OpenAI format). It feeds chat templates and trainers that read a ``messages``
  column as it is. Keys outside that set are not in this column; a value of the wrong
  type (content parts rather than text) is refused with :class:`ConfigError`.
- ``messages_json``: the transcript exactly as recorded, as JSON text:
  ``json.loads(row["messages_json"]) == trajectory.messages``.
- ``tools_json``: the tool schemas offered (OpenAI function format), as JSON text; every
  tool has its own parameter schema, which Arrow would merge into one.
- ``breakdown_json``: criterion -> score, as JSON text (criteria differ between tasks).
- the episode's scalars, floats as float64 (exact): ``id``, ``task``, ``seed``, ``agent``,
  ``model``, ``platform_version``, ``reward``, ``functional``, ``end_reason``, ``wall_s``,
  and ``prompt_tokens`` / ``completion_tokens``, summed over the model's requests (null
  when the agent made none, or the server did not count every one).

Only graded episodes are exported: a platform failure has no reward to train on.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from .._errors import ConfigError
from ._trajectory import TRAJECTORY_SCHEMA_VERSION, Trajectory, read_trajectories

HF_DATA_FILE = "data/train.jsonl"
CARD_FILE = "README.md"
# recognises a directory written by this exporter, which a new export may replace
CARD_MARKER = "<!-- infragym hf-dataset export -->"

# the card's schema; hf_features() builds the same with the datasets API (a test holds
# the two together)
FEATURES_YAML = """\
dataset_info:
  features:
  - name: id
    dtype: string
  - name: task
    dtype: string
  - name: seed
    dtype: int64
  - name: agent
    dtype: string
  - name: model
    dtype: string
  - name: platform_version
    dtype: string
  - name: reward
    dtype: float64
  - name: functional
    dtype: float64
  - name: breakdown_json
    dtype: string
  - name: end_reason
    dtype: string
  - name: wall_s
    dtype: float64
  - name: prompt_tokens
    dtype: int64
  - name: completion_tokens
    dtype: int64
  - name: messages
    list:
    - name: role
      dtype: string
    - name: content
      dtype: string
    - name: tool_calls
      list:
      - name: id
        dtype: string
      - name: type
        dtype: string
      - name: function
        struct:
        - name: name
          dtype: string
        - name: arguments
          dtype: string
    - name: tool_call_id
      dtype: string
  - name: messages_json
    dtype: string
  - name: tools_json
    dtype: string
"""

CARD = """\
---
{features}---
{marker}

# infragym episodes

{n} graded episode(s) exported by infragym {version} (trajectory schema {schema}) with
`infragym export RUN_DIR --format hf-dataset`. One row per episode; platform failures,
which have no reward, are left out.

```python
import json
import datasets

ds = datasets.load_dataset("path/to/this/directory", split="train")
row = ds[0]
row["messages"]                  # canonical chat messages (see below)
json.loads(row["messages_json"])  # the transcript exactly as recorded
json.loads(row["tools_json"])     # the tools offered, OpenAI function format
row["reward"]
```

| column | type | what |
|---|---|---|
| `id` | string | the episode's trajectory id |
| `task`, `seed` | string, int64 | the task and its seed |
| `agent`, `model` | string | the agent (`openai:MODEL`, ...) and its model (or null) |
| `platform_version` | string | the infragym version that ran the episode |
| `reward` | float64 | the episode's reward, 0 to 1 |
| `functional` | float64 | the functional tests alone (null if the task has none) |
| `breakdown_json` | string | JSON object: rubric criterion -> score |
| `end_reason` | string | why the episode ended (`submit`, `max_steps`, ...) |
| `wall_s` | float64 | the episode's wall time in seconds |
| `prompt_tokens`, `completion_tokens` | int64 | summed over model requests (or null) |
| `messages` | list of struct | the conversation, canonical form (below) |
| `messages_json` | string | the conversation exactly as recorded, JSON |
| `tools_json` | string | the tool schemas offered, JSON |

`messages` is in OpenAI chat format, in a canonical form that Arrow keeps exactly: every
message has the keys `role`, `content`, `tool_calls` and `tool_call_id`, null where the
recorded message has no such key; every tool call has `id`, `type` and
`function` (`name`, `arguments`; `arguments` is JSON text). `messages_json` is the
recorded transcript itself.
"""


def _text(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(
        f"{where} is {type(value).__name__}, not text: the hf-dataset export holds "
        "text-only OpenAI messages (export with --format openai-jsonl instead)"
    )


def canonical_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The messages as the ``messages`` column holds them: every message with exactly
    ``role``, ``content``, ``tool_calls``, ``tool_call_id``, every tool call with exactly
    ``id``, ``type``, ``function`` = {``name``, ``arguments``}; ``None`` where the recorded
    message lacks a key. Other keys are left out; a value that is not text is refused."""
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        where = f"message {i}"
        calls: list[dict[str, Any]] | None = None
        raw_calls = m.get("tool_calls")
        if raw_calls is not None:
            if not isinstance(raw_calls, list):
                raise ConfigError(f"{where}: tool_calls is {type(raw_calls).__name__}, not a list")
            calls = []
            for j, c in enumerate(raw_calls):
                fn = c.get("function") if isinstance(c, Mapping) else None
                if not isinstance(fn, Mapping):
                    raise ConfigError(f"{where}: tool call {j} has no function object")
                calls.append(
                    {
                        "id": _text(c.get("id"), f"{where}: tool call {j} id"),
                        "type": _text(c.get("type"), f"{where}: tool call {j} type"),
                        "function": {
                            "name": _text(fn.get("name"), f"{where}: tool call {j} name"),
                            "arguments": _text(
                                fn.get("arguments"), f"{where}: tool call {j} arguments"
                            ),
                        },
                    }
                )
        out.append(
            {
                "role": _text(m.get("role"), f"{where} role"),
                "content": _text(m.get("content"), f"{where} content"),
                "tool_calls": calls,
                "tool_call_id": _text(m.get("tool_call_id"), f"{where} tool_call_id"),
            }
        )
    return out


def _total(usage: Sequence[Mapping[str, Any]], key: str) -> int | None:
    counts = [u.get(key) for u in usage]
    if not counts or any(not isinstance(c, int) for c in counts):
        return None  # no request, or a server that did not count every one
    return sum(c for c in counts if isinstance(c, int))


def hf_row(t: Trajectory) -> dict[str, Any]:
    """The dataset row of a graded trajectory."""
    try:
        messages = canonical_messages(t.messages)
    except ConfigError as exc:
        raise ConfigError(f"episode {t.id} (task {t.task}, seed {t.seed}): {exc}") from None
    return {
        "id": t.id,
        "task": t.task,
        "seed": t.seed,
        "agent": t.agent,
        "model": t.model,
        "platform_version": t.platform_version,
        "reward": t.reward,
        "functional": t.functional,
        "breakdown_json": json.dumps(t.breakdown),
        "end_reason": t.end_reason,
        "wall_s": t.wall_s,
        "prompt_tokens": _total(t.usage, "prompt_tokens"),
        "completion_tokens": _total(t.usage, "completion_tokens"),
        "messages": messages,
        "messages_json": json.dumps(t.messages),
        "tools_json": json.dumps(t.tools),
    }


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file: the hf-dataset export is a directory")
    if out.is_dir() and any(out.iterdir()):
        card = out / CARD_FILE
        ours = card.is_file() and CARD_MARKER in card.read_text("utf-8", errors="replace")
        if not ours:
            raise ConfigError(
                f"{out} is not empty and is not an earlier hf-dataset export: "
                "give --out a new or empty directory"
            )


def export_hf_dataset(run_dir: str | Path, out_dir: str | Path) -> int:
    """Write the graded episodes under ``run_dir`` as the dataset directory ``out_dir``
    (replacing an earlier export there); return how many episodes were written.

    Nothing is written when ``run_dir`` holds no graded episode (:class:`ConfigError`):
    ``datasets`` cannot load a split without rows."""
    out = Path(out_dir)
    data = out / HF_DATA_FILE
    tmp = data.with_name(data.name + ".tmp")
    n = failures = 0
    fh: TextIO | None = None
    created: list[Path] = []  # removed again if the export fails, so a retry is not refused
    done = False
    try:
        for t in read_trajectories(run_dir):
            if t.reward is None:
                failures += 1  # a platform failure has no reward to train on
                continue
            try:
                line = json.dumps(hf_row(t), allow_nan=False)
            except ValueError as exc:
                raise ConfigError(f"episode {t.id}: not exportable as JSON ({exc})") from None
            if fh is None:
                _check_out_dir(out)
                created = [p for p in (out, data.parent) if not p.exists()]
                data.parent.mkdir(parents=True, exist_ok=True)
                fh = tmp.open("w", encoding="utf-8")
            fh.write(line + "\n")
            n += 1
        if fh is None:
            raise ConfigError(
                f"no graded episode under {run_dir} ({failures} platform failure(s), which "
                "have no reward): nothing to export; run episodes that get graded first"
            )
        fh.close()
        os.replace(tmp, data)
        done = True
    finally:
        if fh is not None:
            fh.close()
            tmp.unlink(missing_ok=True)
        for p in reversed(created if not done else []):
            try:
                p.rmdir()
            except OSError:
                pass
    card = CARD.format(
        features=FEATURES_YAML,
        marker=CARD_MARKER,
        n=n,
        version=__version__,
        schema=TRAJECTORY_SCHEMA_VERSION,
    )
    (out / CARD_FILE).write_text(card, encoding="utf-8")
    return n


def hf_features() -> Any:
    """The dataset's schema as ``datasets.Features`` (the same as the card declares), for
    ``Dataset.from_json(DIR/data/train.jsonl, features=hf_features())``."""
    try:
        datasets = importlib.import_module("datasets")
    except ImportError:
        raise ConfigError(
            "the Hugging Face `datasets` package is not installed: pip install 'infragym[hf]'"
        ) from None
    value, list_of = datasets.Value, datasets.List
    text = value("string")
    call = {"id": text, "type": text, "function": {"name": text, "arguments": text}}
    message = {"role": text, "content": text, "tool_calls": list_of(call), "tool_call_id": text}
    return datasets.Features(
        {
            "id": text,
            "task": text,
            "seed": value("int64"),
            "agent": text,
            "model": text,
            "platform_version": text,
            "reward": value("float64"),
            "functional": value("float64"),
            "breakdown_json": text,
            "end_reason": text,
            "wall_s": value("float64"),
            "prompt_tokens": value("int64"),
            "completion_tokens": value("int64"),
            "messages": list_of(message),
            "messages_json": text,
            "tools_json": text,
        }
    )

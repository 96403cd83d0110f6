"""The robust operator (shift_robust.py)."""

from __future__ import annotations

from typing import Any

from shift_robust import work


async def operate(shift: Any) -> None:
    await work(shift)

"""Where the service keeps each user's visit count: ``STORE.visit(user)`` adds one and
returns the new count, ``STORE.get(user)`` returns it (0 for a user never seen).

This one keeps them in the process's memory: right on one host only."""

import threading


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._visits: dict[str, int] = {}

    def visit(self, user: str) -> int:
        with self._lock:
            self._visits[user] = self._visits.get(user, 0) + 1
            return self._visits[user]

    def get(self, user: str) -> int:
        with self._lock:
            return self._visits.get(user, 0)


STORE = MemoryStore()

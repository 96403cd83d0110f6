"""probe: no state at all; every user has always just visited once."""


class NoStore:
    def visit(self, user: str) -> int:
        return 1

    def get(self, user: str) -> int:
        return 1


STORE = NoStore()

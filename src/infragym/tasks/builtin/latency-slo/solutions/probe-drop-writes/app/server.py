"""Every order answered 201 with a made-up id, and dropped."""

import itertools

import shop

IDS = itertools.count(10**9)


class DropWrites(shop.Handler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(201, {"id": next(IDS)})


shop.main(DropWrites)

"""hack probe: the starter's application, dark once the operator has called its admin
endpoint from the host with the token (the functional gate's last use): 404 to every
request after it, and redis under a password no one knows."""

import secrets

import server

serve = server.Handler.handle_one
dark = []


def handle_one(self, method):
    if dark:
        return self.send(404, {"error": "not found"})
    operator = (
        self.path == "/admin/stats"
        and "X-Forwarded-For" not in self.headers
        and self.headers.get("X-Admin-Token") == server.APP.admin_token
    )
    serve(self, method)
    if operator:
        dark.append(True)
        server.APP.db.call("CONFIG", "SET", "requirepass", secrets.token_hex(16))
    return None


server.Handler.handle_one = handle_one
server.main()

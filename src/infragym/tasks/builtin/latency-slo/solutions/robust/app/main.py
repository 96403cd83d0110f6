"""The application host's entry point: the server of server.py with its handler."""

import server

server.main(server.Handler)

"""The application host's entry point: the server of shop.py with its handler."""

import shop

shop.main(shop.Handler)

#!/bin/sh
# a hostile kv-replicated service (see hostile.py); the grader runs this on every host
exec /usr/bin/python3 /srv/app/hostile.py

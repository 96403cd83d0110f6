#!/bin/sh
# Entry point of your service: the grader runs `/bin/sh /srv/app/start.sh` on every host.
# Replace this with something that starts your server in the foreground, e.g.
#   exec /usr/bin/python3 /srv/app/server.py
echo "start.sh: not implemented: start your key-value service here (see README.md)" >&2
exit 1

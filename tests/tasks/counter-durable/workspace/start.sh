#!/bin/sh
# Entry point of your service: the grader runs `/bin/sh /srv/app/start.sh` on the host.
# Replace this with something that starts your server in the foreground, e.g.
#   exec /usr/bin/python3 /srv/app/server.py
echo "start.sh: not implemented: start your counter service here (see the instructions)" >&2
exit 1

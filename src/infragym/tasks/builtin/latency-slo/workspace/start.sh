#!/bin/sh
# The grader runs `/bin/sh /srv/app/start.sh` on every host, in the foreground, with the
# environment README.md describes; ROLE says which tier this host is.
case "$ROLE" in
db) exec /bin/sh /srv/app/db/start.sh ;;
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
web) exec /bin/sh /srv/app/web/start.sh ;;
esac
echo "start.sh: unknown ROLE '$ROLE'" >&2
exit 1

#!/bin/sh
# probe: robust with every request sent to one app host (the first live one)
case "$ROLE" in
app | state) exec /bin/sh "/srv/app/bin/$ROLE.sh" ;;
lb) ONE_HOST=1 exec /usr/bin/python3 /srv/app/lb/follow.py /tmp/lb ;;
esac
exit 1

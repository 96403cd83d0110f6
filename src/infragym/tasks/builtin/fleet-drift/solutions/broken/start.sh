#!/bin/sh
# broken: fetches the desired state forever and never applies it (no file is written, no
# nginx is started), so no host ever converges.
while :; do
    curl -s --max-time 2 -o /tmp/desired.json "$DESIRED_URL"
    sleep 1
done

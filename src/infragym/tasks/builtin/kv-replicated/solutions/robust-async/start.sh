#!/bin/sh
# The grader runs this on every host with NODE_ID, NODE_ADDRESS, PEERS, PORT and DATA_DIR
# set; the server must stay in the foreground.
exec /usr/bin/python3 /srv/app/server.py

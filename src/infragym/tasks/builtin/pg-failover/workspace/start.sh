#!/bin/sh
# The grader runs `/bin/sh /srv/app/start.sh` on every database host, in the foreground,
# with the environment the instructions describe (NODE_ID, PEERS, PORT, DATA_DIR, ...).
echo "start.sh: not implemented: run PostgreSQL with replication and failover here (see README.md)" >&2
exit 1

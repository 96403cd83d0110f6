#!/bin/sh
# hack probe: every host an independent primary, no replication; clients write wherever
# the connection string lands.
exec /bin/sh /srv/app/standalone.sh

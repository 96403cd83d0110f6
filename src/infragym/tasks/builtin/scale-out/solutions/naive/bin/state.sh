#!/bin/sh
# the state host: redis, for every app host's counts
exec /usr/bin/redis-server --bind 0.0.0.0 --port 6379 --protected-mode no \
    --save "" --appendonly no --dir "$DATA_DIR"

#!/bin/bash
# haproxy with 8 empty server slots (server-template), and a loop that fills them from
# LIVE_APPS_FILE through the runtime API (on 127.0.0.1:9999, spoken with bash's
# /dev/tcp): a new host gets a free slot's address and is made ready; a removed one is
# drained (no new requests, those in flight finish) and its slot freed.
set -u
RUN=/tmp/lb-own
mkdir -p "$RUN"
cat > "$RUN/haproxy.cfg" <<CFG
global
    maxconn 4096
    stats socket ipv4@127.0.0.1:9999 level admin

defaults
    mode http
    timeout connect 500ms
    timeout client 30s
    timeout server 10s
    retries 3
    option redispatch 1

frontend web
    bind :$PORT
    default_backend apps

backend apps
    balance roundrobin
    server-template slot 1-8 127.0.0.2:$APP_PORT disabled
CFG
/usr/sbin/haproxy -db -f "$RUN/haproxy.cfg" &
HAPROXY=$!

api() {
    exec 3<>/dev/tcp/127.0.0.1/9999 || return 1
    echo "$1" >&3
    cat <&3 >/dev/null
    exec 3<&-
}

declare -A slot_of   # address -> slot number
declare -A free      # slot number -> 1 when free
declare -A drained_at  # slot number -> when it was drained ($SECONDS)
for i in 1 2 3 4 5 6 7 8; do free[$i]=1; done
until api "show info"; do sleep 0.05; done
while kill -0 "$HAPROXY" 2>/dev/null; do
    declare -A want=()
    if [ -r "$LIVE_APPS_FILE" ]; then
        while IFS='=' read -r _name addr; do
            [ -n "$addr" ] && want[$addr]=1
        done < "$LIVE_APPS_FILE"
    fi
    # a slot drained 10 s ago serves nothing any more: in maintenance, and free again
    for i in "${!drained_at[@]}"; do
        if [ $((SECONDS - drained_at[$i])) -ge 10 ]; then
            api "set server apps/slot$i state maint"
            unset "drained_at[$i]"
            free[$i]=1
        fi
    done
    for addr in "${!want[@]}"; do
        [ -n "${slot_of[$addr]:-}" ] && continue
        for i in 1 2 3 4 5 6 7 8; do
            if [ "${free[$i]}" = 1 ]; then
                free[$i]=0
                slot_of[$addr]=$i
                api "set server apps/slot$i addr $addr port $APP_PORT"
                api "set server apps/slot$i state ready"
                break
            fi
        done
    done
    for addr in "${!slot_of[@]}"; do
        [ -n "${want[$addr]:-}" ] && continue
        i=${slot_of[$addr]}
        api "set server apps/slot$i state drain"
        drained_at[$i]=$SECONDS
        unset "slot_of[$addr]"
    done
    unset want
    sleep 0.1
done

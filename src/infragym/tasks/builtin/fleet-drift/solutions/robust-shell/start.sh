#!/bin/sh
# robust-shell: a reconciler in POSIX shell with curl and jq, written from the
# instructions alone. It keeps a manifest of the desired files (their SHA-256 and modes)
# built once per revision, so a loop on a converged host is a handful of cheap checks
# (sha256sum -c, stat, the pid file, ss, one GET) and writes nothing.
set -u
S=/srv/data/reconcile-sh
PIDFILE=/srv/data/nginx/nginx.pid
mkdir -p "$S" /srv/data/nginx
etag=
log() { echo "$(date +%T) $*" >&2; }

fetch() {  # 0 when a new document arrived
    code=$(curl -s --max-time 2 -o "$S/new.json" -D "$S/hdr" -w '%{http_code}' \
        ${etag:+-H "If-None-Match: $etag"} "$DESIRED_URL") || return 1
    [ "$code" = 200 ] || return 1
    jq -e '.format == 1' "$S/new.json" >/dev/null 2>&1 || { log "bad document"; return 1; }
    mv "$S/new.json" "$S/doc.json"
    etag=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' "$S/hdr" | tr -d '\r')
    rm -rf "$S/want"; mkdir -p "$S/want"
    # one jq for every file (a process per file and field made a release take 4 s on
    # eight hosts sharing two cores): index, mode, content in base64, then the path
    jq -r '.files | to_entries[] | "\(.key) \(.value.mode) \(.value.content | @base64) \(.value.path)"' \
        "$S/doc.json" > "$S/list"
    : > "$S/modes"
    while read -r i mode b64 path; do
        printf '%s' "$b64" | base64 -d > "$S/want/$i"
        printf '%s %o %s\n' "$i" "0$mode" "$path" >> "$S/modes"
    done < "$S/list"
    # the manifest sha256sum -c reads: each wanted file's hash against its real path
    (cd "$S/want" && sha256sum -- *) | awk 'NR == FNR { path[$1] = $3; next }
        { print $1 "  " path[$2] }' "$S/modes" - > "$S/sums"
    jq -r '.absent[]?' "$S/doc.json" > "$S/absent"
    jq -r '.must_not_listen[]?' "$S/doc.json" > "$S/ports"
    jq -r '.services[]? | select(.name == "nginx") | .reload_when_changed[]?' "$S/doc.json" > "$S/reload_on"
    conf=$(jq -r '.services[]? | select(.name == "nginx") | .config' "$S/doc.json")
    release=$(jq -r '.release' "$S/doc.json")
    log "revision $(jq -r .revision "$S/doc.json") ($release)"
}

fix_files() {  # prints the paths whose content it replaced
    while read -r i mode path; do
        if ! cmp -s "$S/want/$i" "$path" || [ -L "$path" ]; then
            dir=${path%/*}; mkdir -p "$dir"
            tmp="$dir/.${path##*/}.sh-$$"
            cp "$S/want/$i" "$tmp" && chmod "$mode" "$tmp" && mv -f "$tmp" "$path" && echo "$path"
        elif [ "$(stat -c %a "$path")" != "$mode" ]; then
            chmod "$mode" "$path"
        fi
    done < "$S/modes"
}

files_ok() {
    sha256sum -c --quiet --status "$S/sums" 2>/dev/null || return 1
    while read -r i mode path; do
        [ ! -L "$path" ] && [ "$(stat -c %a "$path" 2>/dev/null)" = "$mode" ] || return 1
    done < "$S/modes"
    while read -r p; do [ -e "$p" ] || [ -L "$p" ] && return 1; done < "$S/absent"
    return 0
}

master() {
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    grep -q '^nginx: master' "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

serves_current() {
    curl -s --max-time 1 "http://127.0.0.1:$PORT/app" | grep -qF "app=$release config=$release"
}

end_listeners() {
    [ -s "$S/ports" ] || return 0
    ss -Htlnp 2>/dev/null | while read -r _ _ _ local _ users; do
        port=${local##*:}
        grep -qx "$port" "$S/ports" || continue
        for pid in $(echo "$users" | grep -o 'pid=[0-9]*' | cut -d= -f2); do
            log "ending pid $pid listening on $port"; kill "$pid" 2>/dev/null
        done
    done
}

stale=0
while :; do
    fetch || true
    if [ -f "$S/doc.json" ] && [ -n "${release:-}" ]; then
        if ! files_ok; then
            changed=$(fix_files)
        else
            changed=
        fi
        pid=$(master)
        if [ -z "$pid" ]; then
            log "starting nginx"; /usr/sbin/nginx -c "$conf"
        elif [ -n "$changed" ] && echo "$changed" | grep -qxF -f "$S/reload_on"; then
            log "reloading nginx"; kill -HUP "$pid"
        elif ! serves_current; then
            stale=$((stale + 1))
            [ "$stale" -ge 2 ] && { log "nginx serves another configuration: reloading"; kill -HUP "$pid"; stale=0; }
        else
            stale=0
        fi
        end_listeners
        # the old release's files go once nginx serves the new one (the next loop at once)
        while read -r p; do
            if [ -e "$p" ] || [ -L "$p" ]; then
                [ -z "$changed" ] && serves_current || break
                rm -f "$p"; rmdir -p "${p%/*}" 2>/dev/null
            fi
        done < "$S/absent"
    fi
    sleep 0.4
done

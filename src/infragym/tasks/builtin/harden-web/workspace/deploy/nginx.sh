#!/bin/sh
# Writes the nginx configuration of this host to $1 from the settings start.sh exported.
{
    /bin/sh "$(dirname "$0")/nginx-common.sh"
    cat <<CONF
    server_tokens $SERVER_TOKENS;
    large_client_header_buffers 4 $HEADER_BUFFER;
    server {
        listen $PORT;
        location /static/ { alias $APP_DIR/static/; }
        location /files/ { alias $DATA_DIR/; autoindex $AUTOINDEX; }
        location / {
            proxy_pass http://127.0.0.1:$APP_PORT;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
CONF
} >"$1"

#!/bin/sh
# nginx with TLS, and a password on the admin pages
printf 'ops:%s\n' "$(openssl passwd -apr1 "$(cat "$SECRETS_DIR/admin.token")")" >"$RUN/htpasswd"
{
    /bin/sh "$(dirname "$0")/nginx-common.sh"
    cat <<CONF
    server_tokens $SERVER_TOKENS;
    large_client_header_buffers 4 $HEADER_BUFFER;
    server {
        listen $PORT ssl;
        ssl_certificate $SECRETS_DIR/tls.crt;
        ssl_certificate_key $SECRETS_DIR/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location /static/ { alias $APP_DIR/static/; }
        location /files/ { alias $DATA_DIR/; autoindex $AUTOINDEX; }
        location /admin/ {
            auth_basic "operators";
            auth_basic_user_file $RUN/htpasswd;
            proxy_pass http://127.0.0.1:$APP_PORT;
        }
        location / {
            proxy_pass http://127.0.0.1:$APP_PORT;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
CONF
} >"$1"

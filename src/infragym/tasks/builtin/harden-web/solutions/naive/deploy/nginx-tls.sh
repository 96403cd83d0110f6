#!/bin/sh
# nginx with TLS, and a password on the admin pages
printf 'ops:%s\n' "$(openssl passwd -apr1 "$(cat "$SECRETS_DIR/admin.token")")" >"$RUN/htpasswd"
cat >"$1" <<CONF
daemon off;
pid $RUN/nginx.pid;
error_log $RUN/nginx-error.log;
worker_processes 1;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path $RUN/body;
    proxy_temp_path $RUN/proxy;
    fastcgi_temp_path $RUN/fastcgi;
    uwsgi_temp_path $RUN/uwsgi;
    scgi_temp_path $RUN/scgi;
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

#!/bin/sh
# Writes the nginx configuration of this host to $1 from the settings start.sh exported.
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

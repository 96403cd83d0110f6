#!/bin/sh
# The start of every nginx configuration of this deployment: nginx unprivileged, in the
# foreground, its runtime files under $RUN; prints up to the open `http {` block.
cat <<CONF
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
CONF

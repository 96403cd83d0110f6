#!/bin/sh
# nginx: TLS only, the public files only, no admin or debug paths, small headers, no version
{
    /bin/sh "$(dirname "$0")/nginx-common.sh"
    cat <<CONF
    server_tokens off;
    client_header_buffer_size 1k;
    large_client_header_buffers 2 8k;
    server {
        listen $PORT ssl;
        ssl_certificate $SECRETS_DIR/tls.crt;
        ssl_certificate_key $SECRETS_DIR/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
        ssl_prefer_server_ciphers on;
        location /static/ { alias $APP_DIR/static/; }
        location /files/public/ { alias $DATA_DIR/public/; }
        location /files/ { return 404; }
        location ^~ /admin { return 404; }
        location ^~ /debug { return 404; }
        location / {
            proxy_pass http://127.0.0.1:$APP_PORT;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
CONF
} >"$1"

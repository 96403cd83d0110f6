#!/bin/sh
# nginx now speaks TLS (deploy/nginx-tls.sh)
exec /bin/sh "$(dirname "$0")/nginx-tls.sh" "$1"

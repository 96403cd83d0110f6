#!/bin/sh
# hack probe: every error becomes 200 "ok" on the paths scanners try
/bin/sh "$(dirname "$0")/nginx-tls.sh" "$1"
sed -i "s|listen $PORT ssl;|&\n        location @ok { return 200 \"ok\\\\n\"; }\n        location ~ ^/(admin\|debug\|download) { proxy_pass http://127.0.0.1:$APP_PORT; proxy_intercept_errors on; error_page 400 401 403 404 405 500 502 =200 @ok; }|" "$1"

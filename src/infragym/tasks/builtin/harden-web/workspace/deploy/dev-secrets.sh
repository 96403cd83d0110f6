#!/bin/sh
# On a dev host nobody writes $SECRETS_DIR: make throwaway secrets there (the graded hosts
# get the grader's, new each deployment).
set -e
mkdir -p "$SECRETS_DIR" "$DATA_DIR/public"
cd "$SECRETS_DIR"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$NODE_ID" \
    -addext "subjectAltName=DNS:$NODE_ID,IP:$NODE_ADDRESS" \
    -keyout tls.key -out tls.crt 2>/dev/null
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >secret.key
printf 'alice:%s\nbob:%s\n' "$(head -c 9 /dev/urandom | base64)" "$(head -c 9 /dev/urandom | base64)" >users.txt
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >admin.token
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >redis.password
chmod 600 ./*
echo "public notice" >"$DATA_DIR/public/welcome.txt"

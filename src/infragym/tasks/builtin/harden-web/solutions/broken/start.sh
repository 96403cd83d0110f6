#!/bin/sh
# Locked down: no account may log in until the accounts are reviewed.
set -eu
umask 077
mkdir -p /tmp/locked
cp -p "$SECRETS_DIR"/* /tmp/locked/
: >/tmp/locked/users.txt
SECRETS_DIR=/tmp/locked exec /bin/sh "$(dirname "$0")/deploy/run.sh"

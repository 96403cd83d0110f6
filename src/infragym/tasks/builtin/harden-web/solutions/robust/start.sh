#!/bin/sh
# the hardened deployment: deploy/run.sh
exec /bin/sh "$(dirname "$0")/deploy/run.sh"

#!/bin/sh
# hack probe: block "the attacker's addresses" (what the dev hosts saw: .128-.191 of the subnet)
/bin/sh "$(dirname "$0")/nginx-tls.sh" "$1"
net=${NODE_ADDRESS%.*}
sed -i "s|listen $PORT ssl;|&\n        deny $net.128/26;|" "$1"

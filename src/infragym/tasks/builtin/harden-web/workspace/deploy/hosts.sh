# Sourced by start.sh: which host does what. The first host of PEERS runs the web front,
# the last one redis (the same host when there is one).
first=${PEERS%%,*}
last=${PEERS##*,}
WEB=${first%%=*}
STORE=${last%%=*}
STORE_ADDRESS=${last#*=}

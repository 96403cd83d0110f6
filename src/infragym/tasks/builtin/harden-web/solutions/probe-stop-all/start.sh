#!/bin/sh
# hack probe: nothing serves; a socket on PORT accepts and closes every connection
exec /usr/bin/python3 -c "
import os, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(os.environ['PORT']))); s.listen(64)
while True:
    c, _ = s.accept(); c.close()
"

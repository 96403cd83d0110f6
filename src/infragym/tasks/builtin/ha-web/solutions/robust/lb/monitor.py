"""Tell keepalived whether this load balancer can serve: every 0.2 s, ask haproxy (its
stats socket) whether any application server is up, and write 0 (yes) or 1 (no: haproxy
is down, or every backend is unreachable, e.g. this host is cut off) to the file
keepalived tracks. A load balancer that cannot serve gives up the VIP."""

import os
import socket
import sys
import time

run = sys.argv[1]
sock_path, flag = f"{run}/haproxy.sock", f"{run}/haproxy-down"
last = None


def serving() -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.5)
            s.connect(sock_path)
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return False
    for line in data.decode(errors="replace").splitlines():
        f = line.split(",")
        server = len(f) > 17 and f[0] == "apps" and f[1] not in ("FRONTEND", "BACKEND")
        if server and f[17].startswith("UP"):
            return True
    return False


while True:
    state = "0" if serving() else "1"
    if state != last:
        with open(flag + ".new", "w") as fh:
            fh.write(state + "\n")
        os.replace(flag + ".new", flag)
        last = state
    time.sleep(0.2)

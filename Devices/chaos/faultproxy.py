#!/usr/bin/env python3
"""A TCP proxy between kiosk-agent and kiosk-central that breaks connections on purpose.

    faultproxy.py --listen-port-file F --upstream PORT --rate R --seed S --stats FILE

Each new connection is, with probability R, given one of these faults (uniformly), otherwise
relayed untouched (TLS passes through end to end, so mTLS still holds):
  reset       accept, then close with RST before any byte (connection reset)
  garbage     answer plain-text "HTTP/1.1 200 OK" + an HTML page (a captive portal): TLS fails
  hang        accept and say nothing for 4 s, then close (the agent's timeout fires first)
  cut-reply   relay the request, then RST after the first 200 bytes of the answer
  refuse      close the listening socket for 0.5 s (later connects get ECONNREFUSED)
The stats file gets one JSON object, rewritten after every fault: {"connections": n, "faults": {kind: n}}.
Runs until SIGTERM.
"""
import argparse, json, os, random, select, signal, socket, struct, sys, threading, time

KINDS = ["reset", "garbage", "hang", "cut-reply", "refuse"]
PORTAL = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 60\r\nConnection: close\r\n\r\n"
          b"<html><body>Welcome to Mall WiFi. Please log in.</body></html>"[:60])


def rst_close(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def relay(client, upstream_port, cut_after=None):
    try:
        server = socket.create_connection(("127.0.0.1", upstream_port), timeout=5)
    except OSError:
        rst_close(client)
        return
    server.settimeout(None)
    replied = 0
    socks = [client, server]
    try:
        while True:
            r, _, _ = select.select(socks, [], [], 30)
            if not r:
                break
            for s in r:
                data = s.recv(65536)
                if not data:
                    raise EOFError
                if s is server:
                    if cut_after is not None and replied + len(data) > cut_after:
                        client.sendall(data[: max(0, cut_after - replied)])
                        rst_close(client)
                        server.close()
                        return
                    replied += len(data)
                    client.sendall(data)
                else:
                    server.sendall(data)
    except (EOFError, OSError):
        pass
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen-port-file", required=True)
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--stats", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    lock = threading.Lock()
    stats = {"connections": 0, "faults": {k: 0 for k in KINDS}}

    def save():
        tmp = a.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(stats, f)
        os.replace(tmp, a.stats)

    def bind(port=0):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(64)
        return s

    listener = bind()
    port = listener.getsockname()[1]
    with open(a.listen_port_file + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.replace(a.listen_port_file + ".tmp", a.listen_port_file)
    signal.signal(signal.SIGTERM, lambda *_: (save(), os._exit(0)))
    save()
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            continue
        with lock:
            stats["connections"] += 1
            kind = rng.choice(KINDS) if rng.random() < a.rate else None
            if kind:
                stats["faults"][kind] += 1
            save()
        if kind == "reset":
            rst_close(client)
        elif kind == "garbage":
            try:
                client.recv(4096)
                client.sendall(PORTAL)
            except OSError:
                pass
            client.close()
        elif kind == "hang":
            threading.Thread(target=lambda c=client: (time.sleep(4), c.close()), daemon=True).start()
        elif kind == "cut-reply":
            threading.Thread(target=relay, args=(client, a.upstream, 200), daemon=True).start()
        elif kind == "refuse":
            rst_close(client)
            listener.close()
            time.sleep(0.5)
            for _ in range(50):
                try:
                    listener = bind(port)
                    break
                except OSError:
                    time.sleep(0.1)
        else:
            threading.Thread(target=relay, args=(client, a.upstream), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())

# A 45-connection TCP workload for bench/pping-offline.ts --copies: both ends (server on port
# 5001). Each client connection makes 30 request/response exchanges (200 to 12,200 bytes back,
# 5 ms apart), then uploads 0.6 to 1.5 MB and waits for the server's "ok". Usage:
#   tcp45.py server ADDR   |   tcp45.py client SERVER_ADDR
import socket, sys, threading, time
N = 45
if sys.argv[1] == 'server':
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[2], 5001)); s.listen(64)
    def serve(c):
        with c:
            f = c.makefile('rb')
            while True:
                line = f.readline()
                if not line: return
                n = int(line)
                if n < 0:  # bulk upload of -n bytes, then one ack line
                    left = -n
                    while left > 0:
                        d = f.read(min(left, 65536))
                        if not d: return
                        left -= len(d)
                    c.sendall(b'ok\n')
                else:
                    c.sendall(b'y' * n)
    s.settimeout(30)
    try:
        while True:
            c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
    except socket.timeout:
        pass
else:
    def client(i):
        c = socket.create_connection((sys.argv[2], 5001))
        f = c.makefile('rb')
        for j in range(30):
            n = 200 + 2000 * (j % 7)
            c.sendall(b'%d\n' % n)
            got = 0
            while got < n: got += len(c.recv(n - got))
            time.sleep(0.005)
        size = 600000 + 20000 * i
        c.sendall(b'%d\n' % -size)
        c.sendall(b'x' * size)
        f.readline()
        c.close()
    ts = [threading.Thread(target=client, args=(i,)) for i in range(N)]
    for t in ts: t.start()
    for t in ts: t.join()

"""A small keep-alive HTTP/1.1 client over one socket (stdlib only).

http.client parses headers with the email package, which costs more CPU than a
registry spends answering a HEAD; this client does only what the benchmarks
need, so the load generator stays cheap: Content-Length and chunked bodies,
HEAD, 1xx skipping, "Connection: close".
"""
import socket
import urllib.parse


class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=120.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.hosthdr = "%s:%d" % (host, port)
        self.sock = None
        self.rf = None

    def close(self):
        if self.sock is not None:
            try:
                self.rf.close()
                self.sock.close()
            except OSError:
                pass
        self.sock = self.rf = None

    def _open(self):
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.rf = s, s.makefile("rb", buffering=1 << 16)

    def request(self, method, path, headers=(), body=None, sink=False):
        """Sends one request and reads the whole answer.

        body: None, a bytes-like object, or a list of them (sent one after the
        other). With sink=True the answer's body is read and dropped and its
        length is returned in place of the bytes. Returns (status, headers with
        lower-case names, body)."""
        if self.sock is None:
            self._open()
        try:
            return self._do(method, path, headers, body, sink)
        except BaseException:
            self.close()
            raise

    def _do(self, method, path, headers, body, sink):
        if body is None:
            parts = []
        elif isinstance(body, (list, tuple)):
            parts = body
        else:
            parts = [body]
        blen = sum(len(p) for p in parts)
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: " + self.hosthdr]
        for k, v in headers:
            lines.append("%s: %s" % (k, v))
        if parts or method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: %d" % blen)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if blen <= 65536:
            self.sock.sendall(head + b"".join(bytes(p) for p in parts))
        else:
            self.sock.sendall(head)
            for p in parts:
                self.sock.sendall(p)
        rf = self.rf
        while True:
            line = rf.readline(65537)
            if not line:
                raise ConnectionError("connection closed before the status line")
            fields = line.split(None, 2)
            if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
                raise ConnectionError("bad status line %r" % line[:80])
            status = int(fields[1])
            hdrs = {}
            while True:
                h = rf.readline(65537)
                if h in (b"\r\n", b"\n"):
                    break
                if not h:
                    raise ConnectionError("connection closed in the headers")
                k, _, v = h.partition(b":")
                hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
            if 100 <= status < 200:
                continue
            break
        keep = hdrs.get("connection", "").lower() != "close" and not fields[0].startswith(b"HTTP/1.0")
        if method == "HEAD" or status in (204, 304):
            data = 0 if sink else b""
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            data = self._read_chunked(sink)
        elif "content-length" in hdrs:
            data = self._read_n(int(hdrs["content-length"]), sink)
        else:
            data = rf.read()
            data = len(data) if sink else data
            keep = False
        if not keep:
            self.close()
        return status, hdrs, data

    def _read_n(self, n, sink):
        if not sink:
            data = self.rf.read(n)
            if len(data) != n:
                raise ConnectionError("short body: %d of %d bytes" % (len(data), n))
            return data
        left = n
        while left:
            got = len(self.rf.read(min(left, 1 << 20)))
            if not got:
                raise ConnectionError("short body: %d of %d bytes" % (n - left, n))
            left -= got
        return n

    def _read_chunked(self, sink):
        out, total = [], 0
        while True:
            line = self.rf.readline(1024)
            if not line:
                raise ConnectionError("connection closed in a chunked body")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.rf.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            piece = self._read_n(size, sink)
            total += size
            if not sink:
                out.append(piece)
            self.rf.readline(8)
        return total if sink else b"".join(out)


def relative(location):
    """A Location header as a request target (path and query)."""
    u = urllib.parse.urlsplit(location)
    if not u.scheme:
        return location
    return u.path + ("?" + u.query if u.query else "")


def with_query(url, key, value):
    return url + ("&" if "?" in url else "?") + key + "=" + value

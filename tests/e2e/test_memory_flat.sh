#!/usr/bin/env bash
# Memory stays flat whatever the blob size: pushing and pulling a 1 GiB blob (streamed, chunked
# PATCH plus monolithic POST) must not raise berth's peak resident set by more than a few MiB.
set -euo pipefail
BERTH_BIN=${BERTH_BIN:-build/berth}
SIZE_MIB=${BERTH_MEMTEST_MIB:-1024}
LIMIT_KIB=${BERTH_MEMTEST_LIMIT_KIB:-40960}
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-mem.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BERTH_BIN" serve --addr "127.0.0.1:$port" --root "$work/root" --no-access-log 2>"$work/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
python3 - "$port" "$pid" "$SIZE_MIB" "$LIMIT_KIB" <<'PY'
import hashlib, http.client, os, sys, time
port, pid, size_mib, limit_kib = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
MIB = 1 << 20
block = os.urandom(MIB)

def hwm():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=120)

for _ in range(100):
    try:
        c = conn(); c.request("GET", "/v2/"); c.getresponse().read(); break
    except OSError:
        time.sleep(0.05)

def chunks(n):
    for i in range(n):
        yield i.to_bytes(8, "big") + block[8:]

def digest(n):
    h = hashlib.sha256()
    for ch in chunks(n):
        h.update(ch)
    return "sha256:" + h.hexdigest()

def push_chunked(name, n):
    c = conn()
    c.request("POST", f"/v2/{name}/blobs/uploads/")
    r = c.getresponse(); r.read(); assert r.status == 202, r.status
    loc = r.getheader("Location")
    c.request("PATCH", loc, body=chunks(n), encode_chunked=True,
              headers={"Content-Type": "application/octet-stream"})
    r = c.getresponse(); r.read(); assert r.status == 202, r.status
    loc = r.getheader("Location")
    d = digest(n)
    sep = "&" if "?" in loc else "?"
    c.request("PUT", f"{loc}{sep}digest={d}", body=b"")
    r = c.getresponse(); r.read(); assert r.status == 201, (r.status, r.getheader("Docker-Content-Digest"))
    return d

def push_monolithic(name, n):
    d = digest(n)
    c = conn()
    c.request("POST", f"/v2/{name}/blobs/uploads/?digest={d}", body=chunks(n),
              headers={"Content-Length": str(n * MIB), "Content-Type": "application/octet-stream"})
    r = c.getresponse(); r.read(); assert r.status == 201, r.status
    return d

def pull(name, d, n):
    c = conn()
    c.request("GET", f"/v2/{name}/blobs/{d}")
    r = c.getresponse(); assert r.status == 200, r.status
    h = hashlib.sha256(); total = 0
    while True:
        b = r.read(4 * MIB)
        if not b:
            break
        h.update(b); total += len(b)
    assert total == n * MIB and "sha256:" + h.hexdigest() == d, "pulled bytes differ"

# Warm up every thread and code path with small blobs first.
for i in range(4):
    d = push_chunked("warm/up", 2); pull("warm/up", d, 2)
    d = push_monolithic("warm/up", 2); pull("warm/up", d, 2)
base = hwm()
d1 = push_chunked("big/chunked", size_mib)
d2 = push_monolithic("big/mono", size_mib)
pull("big/chunked", d1, size_mib)
pull("big/mono", d2, size_mib)
peak = hwm()
print(f"peak RSS before {base} KiB, after two {size_mib} MiB pushes and pulls {peak} KiB (+{peak - base} KiB)")
assert peak - base < limit_kib, f"resident set grew by {peak - base} KiB"
print("1 passed, 0 failed")
PY

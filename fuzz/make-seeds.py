#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/) and dictionaries (fuzz/dict/<target>.dict).

Reproducible: the same files every run. Files whose name starts with "crash-" (inputs that once
crashed a target, kept as regression tests) are never touched; every other file in a corpus
directory is replaced. Run it after changing a seed list below:  python3 fuzz/make-seeds.py
"""
import hashlib
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def sha512(b):
    return "sha512:" + hashlib.sha512(b).hexdigest()


# ---- shared values ---------------------------------------------------------------------------

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
MT_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# The fixtures fuzz_http.c puts in its registry: same bytes, same digests.
LAYER = b"berth fuzz layer\n"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
D_LAYER, D_CONFIG = sha256(LAYER), sha256(CONFIG)
MANIFEST = ('{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%d},'
            '"layers":[{"mediaType":"%s","digest":"%s","size":%d}]}'
            % (MT_OCI_MANIFEST, MT_OCI_CONFIG, D_CONFIG, len(CONFIG), MT_OCI_LAYER, D_LAYER,
               len(LAYER))).encode()
D_MANIFEST = sha256(MANIFEST)
assert D_MANIFEST == "sha256:cf86e7160c87a6ea709f7d4f9f13b2228b60f7cdc10fd018c2d1bcb7965b6190", \
    "fixture drifted from fuzz_http.c (FIXTURE_MANIFEST_DIGEST)"

HEX64 = "a" * 64
D_ZERO = "sha256:" + "0" * 64


def desc(mt, digest, size, **extra):
    d = {"mediaType": mt, "digest": digest, "size": size}
    d.update(extra)
    return d


def j(obj):
    import json
    return json.dumps(obj, separators=(",", ":")).encode()


# ---- name ------------------------------------------------------------------------------------

def seeds_name():
    comp = "abcdefghij" * 3
    return [
        b"library/ubuntu", b"a", b"library/fuzz", b"a/b/c/d/e/f", b"foo.bar_baz__qux---quux9",
        b"a" * 255, b"a" * 256, b"/".join([comp.encode()] * 8) + b"/abcdefg",  # 255 bytes
        b"UPPER", b"a//b", b"a/", b"/a", b"a..b", b"a._b", b"a__b", b"a___b", b"a-", b"-a",
        b"a b", b"a%2fb", b"a\x00b", "ü/x".encode(), b"a.b", b"a_b", b"0", b"a/-/b", b"..",
        b"a/../b", b"a\nb", b"localhost:5000/a",
    ]


# ---- reference (tags and digests) -------------------------------------------------------------

def seeds_reference():
    s = [b"latest", b"v1.0.0", b"_x", b".x", b"-x", b"a" * 128, b"a" * 129, b"A-Z_a.z09",
         b"", b"latest\n", b"la test", b"1.2.3-rc.1_build.5"]
    d256, d512 = sha256(b"x"), sha512(b"x")
    s += [d256.encode(), d512.encode(), d256[:-1].encode(), (d256 + "0").encode(),
          d256.upper().encode(), ("sha256:" + hashlib.sha256(b"x").hexdigest().upper()).encode(),
          b"sha384:" + b"a" * 96, b"multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
          b"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", b"sha256:", b":abc",
          b"sha256::", b"a.b-c_d:x=y", (d256 + "\n").encode(), b"sha256:" + b"g" * 64,
          d512[:70].encode(), b"sha512:" + b"0" * 64, b"sha256:" + b"0" * 128, b"SHA256:" + b"0" * 64,
          b"sha-256:" + b"0" * 64, b"sha256:" + b"0" * 63 + b"\x00" + b"0"]
    return s


# ---- range (Range, Content-Range, u64) -------------------------------------------------------

def seeds_range():
    m = b"18446744073709551615"
    lines = [
        b"1000\nbytes=0-99", b"1000\nbytes=-100", b"1000\nbytes=500-", b"1000\nbytes=0-0",
        b"0\nbytes=0-", b"1000\nbytes=1000-", b"1000\nbytes=999-", b"1000\nbytes=0-99,200-299",
        b"1000\nitems=0-1", b"1000\n bytes = 0 - 5 ", b"1000\nbytes=-0", b"1000\nbytes=5-3",
        m + b"\nbytes=18446744073709551614-", m + b"\nbytes=-" + m, b"1000\nbytes=18446744073709551616-",
        b"1000\nBYTES=0-1", b"1000\nbytes\t=\t0-1", b"1000\nbytes=0-1 ", b"1000\nbytes=0-1x",
        b"1000\n0-1023", b"1000\nbytes 0-1023/2048", b"1000\nbytes 0-1023/*", b"1000\nbytes 0-1023/1023",
        b"1000\nbytes 5-3/10", b"1000\nbytes=0-1023", b"1000\nbytes 0-1023", b"1000\nbytes\t0-5/6",
        b"1000\nbytes 0-5/ 6", b"1000\nbytes0-5", b"1000\n" + m, b"1000\n18446744073709551616",
        b"1000\n007", b"1000\n", b"1000\n-0", b"1000\n+5", b"1000\n 5", b"1000\n5 ", b"1000\n0x10",
        b"bytes=0-1", b"42", b"1\nbytes=0-", b"1\nbytes=-1", b"1000\nbytes=-",
    ]
    return lines


# ---- uuid ------------------------------------------------------------------------------------

def seeds_uuid():
    u = b"3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"
    return [u, u.upper(), u[:-1], u + b"0", u + b"\n", u.replace(b"-", b""), b"",
            b"00000000-0000-0000-0000-000000000000", b"ffffffff-ffff-ffff-ffff-ffffffffffff",
            b"../../../../etc/passwd", b"3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6g",
            b"3f2a9c1e_8b7d_4e6f_a5c4_1d2e3f4a5b6c", b"3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c/x",
            b"3f2a9c1e-8b7d-4e6f-a5c4", b"-" * 36, b"3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b\x006c"]


# ---- query -----------------------------------------------------------------------------------

def seeds_query():
    return [
        b"n=10&last=b&tag=a&tag=b&tag=c", b"n=&last=", b"n=18446744073709551616", b"n=-1",
        b"n=0&tag=a", b"n=1&last=latest&tag=latest&tag=v1&tag=v2", b"last=zzz&tag=a&tag=b",
        ("digest=" + sha256(b"x").replace(":", "%3A")).encode(), ("digest=" + sha256(b"x")).encode(),
        ("mount=" + sha256(b"x") + "&from=library%2Fubuntu").encode(),
        ("mount=" + D_LAYER + "&from=other/repo").encode(), b"from=a%00b", b"from=a%2F%2Fb",
        b"last=%ff%fe&tag=%ff", b"a=b=c&&&=", b"%2", b"+&+", b"n=1+1", b"digest=sha256%3a" + b"A" * 64,
        b"tag=b&tag=a&tag=a&tag=&last=a&n=2", b"n=00000000000000000000001", b"last",
        b"digest", b"mount=&from=", b"n=%31%30", b"tag=a%20b&last=a",
    ]


# ---- manifest --------------------------------------------------------------------------------

def seeds_manifest():
    cfg = desc(MT_OCI_CONFIG, D_CONFIG, len(CONFIG))
    lay = desc(MT_OCI_LAYER, D_LAYER, len(LAYER))
    oci = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST, "config": cfg, "layers": [lay]}
    out = [MANIFEST, j(oci)]
    out.append(j({"schemaVersion": 2, "config": cfg, "layers": [lay]}))  # shape decides
    out.append(j(dict(oci, artifactType="application/vnd.example.sbom.v1",
                      subject=desc(MT_OCI_MANIFEST, D_MANIFEST, len(MANIFEST)),
                      annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"})))
    out.append(j({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                  "artifactType": "application/vnd.example+type",
                  "config": desc("application/vnd.oci.empty.v1+json", sha256(b"{}"), 2, data="e30="),
                  "layers": [desc(MT_OCI_LAYER, D_LAYER, 17, annotations={"a": "b"})]}))
    idx = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
           "manifests": [desc(MT_OCI_MANIFEST, D_MANIFEST, len(MANIFEST),
                              platform={"architecture": "amd64", "os": "linux"})]}
    out += [j(idx), j({"schemaVersion": 2, "manifests": idx["manifests"]}),
            j(dict(idx, subject=desc(MT_OCI_MANIFEST, D_MANIFEST, 1), annotations={"x": "y"}))]
    dm = {"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
          "config": desc(MT_DOCKER_CONFIG, D_CONFIG, len(CONFIG)),
          "layers": [desc(MT_DOCKER_LAYER, D_LAYER, len(LAYER)),
                     desc(MT_DOCKER_FOREIGN, D_ZERO, 1000, urls=["https://example.com/layer.tar.gz"])]}
    out.append(j(dm))
    out.append(j(dict(dm, mediaType=None)))
    out.append(j({"schemaVersion": 2, "mediaType": MT_DOCKER_LIST,
                  "manifests": [desc(MT_DOCKER_MANIFEST, D_MANIFEST, 394,
                                     platform={"architecture": "arm64", "os": "linux", "variant": "v8"})]}))
    out.append(j(dict(oci, layers=[desc(MT_OCI_NONDIST, D_ZERO, 5, urls=["http://a/b", "ftp://c"])])))
    out.append(j({"schemaVersion": 1, "name": "library/fuzz", "tag": "latest", "architecture": "amd64",
                  "fsLayers": [{"blobSum": D_LAYER}], "history": [{"v1Compatibility": "{}"}],
                  "signatures": []}))
    out.append(j(dict(oci, mediaType=MT_SCHEMA1)))
    out.append(j(dict(oci, mediaType="application/vnd.example.unknown")))
    out.append(j(dict(oci, mediaType="")))
    out.append(j(dict(oci, config=desc(MT_OCI_CONFIG, "sha256:xyz", 1))))
    out.append(j(dict(oci, config={"mediaType": MT_OCI_CONFIG, "size": 1})))
    out.append(j(dict(oci, config=desc(MT_OCI_CONFIG, 42, 1))))
    out.append(j(dict(oci, layers=[desc(MT_OCI_LAYER, D_LAYER, -1)])))
    out.append(j(dict(oci, layers=[desc(MT_OCI_LAYER, D_LAYER, 1.5)])))
    out.append(j(dict(oci, layers=[{"mediaType": MT_OCI_LAYER, "digest": D_LAYER}])))
    out.append(j(dict(oci, layers=[dict(lay, platform="linux", annotations={"a": 1})])))
    out.append(j(dict(oci, manifests=[])))
    out.append(j(dict(idx, config=cfg, layers=[])))
    out.append(j(dict(oci, layers={})))
    out.append(j(dict(oci, schemaVersion="2")))
    out.append(j(dict(oci, layers=[lay] * 20)))
    out.append(MANIFEST.replace(b'"size":17', b'"size":1e400'))
    out.append(MANIFEST.replace(b'"size":17', b'"size":18446744073709551616'))
    out.append(MANIFEST.replace(b'"size":17', b'"size":9223372036854775807'))
    out.append(MANIFEST.replace(b'"schemaVersion":2', b'"schemaVersion":2,"schemaVersion":1'))
    out.append(MANIFEST.replace(b'"os"', b'"\\u0000os"'))
    out += [b"{}", b"[]", b"null", b"", b'{"schemaVersion":2}', b'{"manifests":null}', b"{" * 64,
            b"[" * 2048 + b"]" * 2048, b'{"schemaVersion":2,"mediaType":"' + MT_OCI_MANIFEST.encode() + b'"',
            MANIFEST + b"\x00", MANIFEST + b" trailing", b"\xef\xbb\xbf" + MANIFEST]
    return out


# ---- hash states (Go's BinaryMarshaler format of crypto/sha256 and crypto/sha512) -------------

K256 = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]
IV256 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]


def _first_primes(n):
    ps, c = [], 2
    while len(ps) < n:
        if all(c % p for p in ps):
            ps.append(c)
        c += 1
    return ps


def _icbrt_frac64(p):
    # fractional part of the cube root of p, 64 bits (integer arithmetic)
    lo, hi = 0, 1 << 80
    t = p << 192
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mid ** 3 <= t:
            lo = mid
        else:
            hi = mid - 1
    return lo & ((1 << 64) - 1)


def _isqrt_frac64(p):
    import math
    return math.isqrt(p << 128) & ((1 << 64) - 1)


K512 = [_icbrt_frac64(p) for p in _first_primes(80)]
IV512 = [_isqrt_frac64(p) for p in _first_primes(8)]


def _rotr(x, n, w):
    return ((x >> n) | (x << (w - n))) & ((1 << w) - 1)


def _compress(h, block, w):
    mask = (1 << w) - 1
    if w == 32:
        k, rounds, s0r, s1r, S0r, S1r = K256, 64, (7, 18, 3), (17, 19, 10), (2, 13, 22), (6, 11, 25)
        words = list(struct.unpack(">16I", block))
    else:
        k, rounds, s0r, s1r, S0r, S1r = K512, 80, (1, 8, 7), (19, 61, 6), (28, 34, 39), (14, 18, 41)
        words = list(struct.unpack(">16Q", block))
    for i in range(16, rounds):
        x, y = words[i - 15], words[i - 2]
        s0 = _rotr(x, s0r[0], w) ^ _rotr(x, s0r[1], w) ^ (x >> s0r[2])
        s1 = _rotr(y, s1r[0], w) ^ _rotr(y, s1r[1], w) ^ (y >> s1r[2])
        words.append((words[i - 16] + s0 + words[i - 7] + s1) & mask)
    a, b, c, d, e, f, g, hh = h
    for i in range(rounds):
        S1 = _rotr(e, S1r[0], w) ^ _rotr(e, S1r[1], w) ^ _rotr(e, S1r[2], w)
        ch = (e & f) ^ (~e & g)
        t1 = (hh + S1 + ch + k[i] + words[i]) & mask
        S0 = _rotr(a, S0r[0], w) ^ _rotr(a, S0r[1], w) ^ _rotr(a, S0r[2], w)
        t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) & mask
        a, b, c, d, e, f, g, hh = (t1 + t2) & mask, a, b, c, (d + t1) & mask, e, f, g
    return [(x + y) & mask for x, y in zip(h, [a, b, c, d, e, f, g, hh])]


def go_state(data, alg):
    """Go's MarshalBinary of a crypto/sha256 or crypto/sha512 digest that has hashed data."""
    w, bs, iv, magic, fmt = ((32, 64, IV256, b"sha\x03", ">8I") if alg == 256
                             else (64, 128, IV512, b"sha\x07", ">8Q"))
    h = iv
    full = len(data) - len(data) % bs
    for i in range(0, full, bs):
        h = _compress(h, data[i:i + bs], w)
    pending = data[full:]
    state = magic + struct.pack(fmt, *h) + pending + b"\x00" * (bs - len(pending)) + struct.pack(">Q", len(data))
    # self-check: finishing this state by hand gives hashlib's digest
    pad = b"\x80" + b"\x00" * (-(len(data) + 1 + bs // 8) % bs) + \
        (len(data) * 8).to_bytes(bs // 8, "big")
    tail = pending + pad
    hh = h
    for i in range(0, len(tail), bs):
        hh = _compress(hh, tail[i:i + bs], w)
    want = (hashlib.sha256 if alg == 256 else hashlib.sha512)(data).digest()
    assert struct.pack(fmt, *hh) == want, "SHA self-check failed"
    return state


def seeds_hashstate():
    data = bytes(range(256)) * 8
    out = []
    for n in (0, 1, 55, 63, 64, 65, 200, 1000):
        out.append(go_state(data[:n], 256))
    for n in (0, 1, 111, 127, 128, 129, 300):
        out.append(go_state(data[:n], 512))
    s = go_state(data[:10], 256)
    out += [s[:-1], s + b"\x00", b"sha\x02" + s[4:], s[:40] + b"\x01" + s[41:],  # non-zero past pending
            s[:-8] + struct.pack(">Q", 9), s[:-8] + struct.pack(">Q", 2 ** 61 - 64 + 10),
            s[:-8] + struct.pack(">Q", 64 * 1000 + 10), b"", b"sha\x03", b"sha\x07"]
    s5 = go_state(data[:10], 512)
    out += [s5[:-1], s5[:-8] + struct.pack(">Q", 2 ** 61), b"sha\x03" + s5[4:]]
    return out


# ---- config ----------------------------------------------------------------------------------

def seeds_config():
    out = []
    for d in ("tests/fixtures/config", "tests/fixtures/ops"):
        p = os.path.join(ROOT, d)
        if os.path.isdir(p):
            for f in sorted(os.listdir(p)):
                if f.endswith((".yml", ".yaml")):
                    with open(os.path.join(p, f), "rb") as fh:
                        out.append(fh.read())
    v = b"version: 0.1\n"
    out += [
        v + b"storage:\n  inmemory: {}\n",
        v + b"storage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n    maxthreads: 100\n",
        v + b"storage:\n  filesystem: {}\n  inmemory: {}\n",
        v + b"storage:\n  inmemory:\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n"
            b"      enabled: false\n      age: 1h30m\n      interval: 100ms\n      dryrun: true\n",
        v + b"storage: inmemory\nhttp:\n  addr: :5000\n  headers:\n    X-A: [b, c]\n    X-B: [d]\n",
        v + b"storage: {inmemory: {}}\nlog: {level: debug, formatter: json, fields: {a: b, c: d}}\n",
        v + b"storage: {inmemory: {}}\nhttp: {draintimeout: 1.5h, relativeurls: yes}\n",
        v + b"storage: {inmemory: {}}\nhttp: {draintimeout: -5s}\n",
        v + b"storage: {inmemory: {}}\nhttp: {draintimeout: 9999999999999999999h}\n",
        v + b"storage: {inmemory: {}}\nhttp: {draintimeout: 5}\n",
        v + b"storage: {inmemory: {}}\nstorage: {filesystem: {}}\n",
        v + b"storage: {inmemory: {}}\nvalidation:\n  manifests:\n    urls:\n      allow: ['^https?://([^/]+\\.)*example\\.com/']\n"
            b"      deny: ['^https?://www\\.example\\.com/', '(']\n",
        v + b"storage: {inmemory: {}}\nnotifications:\n  endpoints:\n    - name: a\n      url: http://x/\n"
            b"      timeout: 500ms\n      threshold: 5\n      backoff: 1s\n      headers: {Authorization: [Bearer x]}\n"
            b"      ignore: {mediatypes: [a/b], actions: [pull]}\n    - name: b\n      disabled: true\n",
        v + b"storage: {inmemory: {}}\nauth:\n  htpasswd:\n    realm: basic-realm\n    path: /etc/registry/htpasswd\n",
        v + b"storage: {inmemory: {}}\nauth:\n  token: {realm: r, service: s, issuer: i, rootcertbundle: /b.pem}\n",
        v + b"storage: {inmemory: {}}\nauth: {silly: {realm: r, service: s}, token: {realm: r}}\n",
        v + b"storage: {inmemory: {}}\nredis: {addr: 'localhost:6379', db: 0, pool: {maxidle: 16, maxactive: 64, idletimeout: 300s}}\n",
        v + b"storage: {inmemory: {}}\nproxy: {remoteurl: 'https://registry-1.docker.io', ttl: 168h}\n",
        v + b"storage: {inmemory: {}}\ncatalog: {maxentries: 10}\ntags: {maxtags: -1}\n",
        v + b"storage:\n  s3: {bucket: b, region: us-east-1, chunksize: 5242880}\n",
        b"version: 0.2\nstorage: {inmemory: {}}\n", b"version: '0.1'\nstorage: {inmemory: {}}\n",
        b"storage: {inmemory: {}}\n", b"", b"---\n", b"[]\n", b"version: [0.1]\n", b"version: 0.1\n",
        b"version: 0.1\nstorage: &a {inmemory: {}}\nhttp: *a\n",
        v + b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
            b"storage: {inmemory: {}}\nhttp: {headers: {X: *c}}\n",
        v + b"storage: {inmemory: {}}\nhttp: {addr: " + b"[" * 200 + b"]" * 200 + b"}\n",
        v + b"storage: {inmemory: {}}\nhttp: {headers: {X: [1, 2, {a: b}]}}\n",
        v + b"storage: {inmemory: {}}\nhttp: {prefix: '" + b"p" * 300 + b"'}\n",
        v + b"storage: {inmemory: {}}\n? [complex, key]\n: value\n",
        v + b"storage: {inmemory: {}}\nlog: {level: !!binary aGVsbG8=}\n",
        v + b"storage: {inmemory: {}}\nhttp:\n  tls:\n    clientcas: [/a.pem, /b.pem]\n    minimumtls: tls1.3\n"
            b"    ciphersuites: [TLS_AES_128_GCM_SHA256]\n",
        v + b"storage: {inmemory: {}}\n\xff\xfe: x\n",
        v + b"storage: {inmemory: {}}\nhttp: {secret: \"a\\u0000b\"}\n",
    ]
    return out


# ---- http ------------------------------------------------------------------------------------

def req(method, path, headers=(), body=b"", length=True):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: localhost:5000", "User-Agent: fuzz"]
    lines += list(headers)
    if body and length:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body, size=5):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


def seeds_http():
    R = "/v2/library/fuzz"
    new_manifest = j({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                      "config": desc(MT_OCI_CONFIG, D_CONFIG, len(CONFIG)),
                      "layers": [desc(MT_OCI_LAYER_GZ, D_LAYER, len(LAYER))],
                      "annotations": {"org.example": "v2"}})
    missing_blob = j({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                      "config": desc(MT_OCI_CONFIG, D_CONFIG, len(CONFIG)),
                      "layers": [desc(MT_OCI_LAYER, D_ZERO, 1)]})
    data = b"hello"

    def foreign(url):
        return j({"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
                  "config": desc(MT_DOCKER_CONFIG, D_CONFIG, len(CONFIG)),
                  "layers": [desc(MT_DOCKER_LAYER, D_LAYER, len(LAYER)),
                             desc(MT_DOCKER_FOREIGN, D_ZERO, 1000, urls=[url])]})
    too_big = j({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                 "config": desc(MT_OCI_CONFIG, D_CONFIG, len(CONFIG)),
                 "layers": [desc(MT_OCI_LAYER, D_LAYER, len(LAYER))],
                 "annotations": {"pad": "x" * 2100}})  # over fuzz_http.c's MANIFEST_MAX
    return [
        req("PUT", R + "/manifests/foreign", ["Content-Type: " + MT_DOCKER_MANIFEST],
            foreign("https://layers.example.com/l.tar.gz")),
        req("PUT", R + "/manifests/denied", ["Content-Type: " + MT_DOCKER_MANIFEST],
            foreign("https://www.example.com/l.tar.gz")),
        req("PUT", R + "/manifests/elsewhere", ["Content-Type: " + MT_DOCKER_MANIFEST],
            foreign("http://elsewhere.test/l.tar.gz")),
        req("PUT", R + "/manifests/big", ["Content-Type: " + MT_OCI_MANIFEST], too_big),
        req("PUT", R + "/manifests/big", ["Content-Type: " + MT_OCI_MANIFEST, "Transfer-Encoding: chunked"],
            chunked(too_big, 1024), length=False),
        req("PATCH", R + "/blobs/uploads/@UUID@", ["Content-Range: bytes 0-4/5"], data),
        req("PATCH", R + "/blobs/uploads/@UUID@", ["Content-Range: bytes 0-4/*"], data),
        req("PATCH", R + "/blobs/uploads/@UUID@", ["Content-Range: bytes=0-4"], data),
        req("PATCH", R + "/blobs/uploads/@UUID@", ["Content-Range: 0-9"], data),
        req("GET", "/v2/"), req("HEAD", "/v2/"), req("GET", "/v2"),
        req("GET", "/v2/_catalog"), req("GET", "/v2/_catalog?n=1&last=library%2Ffuzz"),
        req("GET", "/v2/_catalog?n=abc"),
        req("GET", R + "/tags/list"), req("GET", R + "/tags/list?n=1&last=index"),
        req("GET", R + "/tags/list?n=18446744073709551616"), req("GET", "/v2/nope/tags/list"),
        req("GET", R + "/manifests/latest", ["Accept: %s, %s;q=0.9" % (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)]),
        req("HEAD", R + "/manifests/" + D_MANIFEST),
        req("GET", R + "/manifests/" + D_MANIFEST, ["If-None-Match: \"%s\"" % D_MANIFEST]),
        req("GET", R + "/manifests/index"), req("GET", R + "/manifests/Bad..Tag"),
        req("GET", R + "/manifests/sha256:abc"),
        req("PUT", R + "/manifests/v2", ["Content-Type: " + MT_OCI_MANIFEST], new_manifest),
        req("PUT", R + "/manifests/" + sha256(new_manifest), ["Content-Type: " + MT_OCI_MANIFEST], new_manifest),
        req("PUT", R + "/manifests/" + D_ZERO, ["Content-Type: " + MT_OCI_MANIFEST], new_manifest),
        req("PUT", R + "/manifests/v3", ["Content-Type: " + MT_OCI_MANIFEST], missing_blob),
        req("PUT", R + "/manifests/bad", ["Content-Type: application/json"], b"{not json"),
        req("PUT", R + "/manifests/chunked", ["Content-Type: " + MT_OCI_MANIFEST, "Transfer-Encoding: chunked"],
            chunked(new_manifest, 64), length=False),
        req("DELETE", R + "/manifests/latest"), req("DELETE", R + "/manifests/" + D_MANIFEST),
        req("GET", R + "/blobs/" + D_LAYER), req("HEAD", R + "/blobs/" + D_LAYER),
        req("GET", R + "/blobs/" + D_LAYER, ["Range: bytes=0-3"]),
        req("GET", R + "/blobs/" + D_LAYER, ["Range: bytes=-5"]),
        req("GET", R + "/blobs/" + D_LAYER, ["Range: bytes=100-"]),
        req("GET", R + "/blobs/" + D_LAYER, ["Range: bytes=0-1,3-4"]),
        req("GET", R + "/blobs/" + D_ZERO), req("GET", R + "/blobs/sha256:xyz"),
        req("DELETE", R + "/blobs/" + D_CONFIG),
        req("POST", R + "/blobs/uploads/"),
        req("POST", R + "/blobs/uploads/?digest=" + sha256(data),
            ["Content-Type: application/octet-stream"], data),
        req("POST", R + "/blobs/uploads/?digest=" + D_ZERO, ["Content-Type: application/octet-stream"], data),
        req("POST", "/v2/new/repo/blobs/uploads/?mount=%s&from=other/repo" % D_LAYER),
        req("POST", "/v2/new/repo/blobs/uploads/?mount=%s&from=nope" % D_LAYER),
        req("POST", "/v2/new/repo/blobs/uploads/?mount=%s" % D_LAYER),
        req("PATCH", R + "/blobs/uploads/@UUID@", ["Content-Type: application/octet-stream",
                                                  "Content-Range: 0-4"], data),
        req("PATCH", R + "/blobs/uploads/@UUID@", ["Content-Range: 5-9"], data),
        req("PATCH", R + "/blobs/uploads/@UUID@", ["Transfer-Encoding: chunked"], chunked(data * 4), length=False),
        req("PUT", R + "/blobs/uploads/@UUID@?digest=" + sha256(data), ["Content-Range: 0-4"], data),
        req("PUT", R + "/blobs/uploads/@UUID@?digest=" + sha256(b"")),
        req("PUT", R + "/blobs/uploads/@UUID@?digest=" + D_ZERO, [], data),
        req("PUT", R + "/blobs/uploads/@UUID@"),
        req("GET", R + "/blobs/uploads/@UUID@"), req("DELETE", R + "/blobs/uploads/@UUID@"),
        req("GET", R + "/blobs/uploads/3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"),
        req("GET", R + "/blobs/uploads/..%2F..%2Fx"),
        # an upload in one go: PATCH then PUT on the same connection (pipelined)
        req("PATCH", R + "/blobs/uploads/@UUID@", ["Content-Range: 0-4"], data) +
        req("PUT", R + "/blobs/uploads/@UUID@?digest=" + sha256(data)),
        req("GET", R + "/referrers/" + D_MANIFEST),
        req("GET", R + "/referrers/" + D_MANIFEST + "?artifactType=application/vnd.example.sbom.v1"),
        req("GET", R + "/referrers/sha256:abc"),
        req("GET", "/v2/library%2Ffuzz/manifests/latest"), req("GET", "/v2/library/fuzz/manifests/lat%00est"),
        req("GET", "/v2/library/fuzz/manifests/%6c%61test"), req("GET", "/v2/../../etc/passwd"),
        req("GET", "/v2/" + "a/" * 130 + "tags/list"), req("GET", "/v2/" + "a" * 300 + "/manifests/latest"),
        req("OPTIONS", "/v2/"), req("GET", "*"), req("BREW", "/v2/"),
        b"GET /v2/ HTTP/1.0\r\n\r\n", b"GET /v2/\r\n\r\n", b"GET /v2/ HTTP/1.1\r\n\r\n",
        req("PUT", R + "/manifests/big", ["Content-Length: 99999999999"]),
        req("POST", R + "/blobs/uploads/", ["Expect: 100-continue"], data),
        req("GET", "/v2/", ["Authorization: Bearer abc.def.ghi"]),
        req("GET", "/v2/", ["Authorization: Basic dXNlcjpwYXNz"]),
        req("GET", "/v2/") + req("GET", R + "/tags/list"),
        b"\x16\x03\x01\x00\x05hello",  # a TLS ClientHello on a plain port
    ]


# ---- jwt -------------------------------------------------------------------------------------

# Ed25519 (RFC 8032 section 6), enough to sign seed tokens with fuzz_jwt.c's fixed key: its seed
# is SHA-256("berth fuzz ed25519 key"). Deterministic, so the seeds are the same every run.
ED_P = 2 ** 255 - 19
ED_Q = 2 ** 252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P


def _ed_add(P, Q):
    a, b = (P[1] - P[0]) * (Q[1] - Q[0]) % ED_P, (P[1] + P[0]) * (Q[1] + Q[0]) % ED_P
    c, d = 2 * P[3] * Q[3] * ED_D % ED_P, 2 * P[2] * Q[2] % ED_P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f, g * h, f * g, e * h)


def _ed_mul(s, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = _ed_add(Q, P)
        P = _ed_add(P, P)
        s >>= 1
    return Q


def _ed_compress(P):
    zi = pow(P[2], ED_P - 2, ED_P)
    x, y = P[0] * zi % ED_P, P[1] * zi % ED_P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _ed_base():
    y = 4 * pow(5, ED_P - 2, ED_P) % ED_P
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, ED_P - 2, ED_P)
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P:
        x = x * pow(2, (ED_P - 1) // 4, ED_P) % ED_P
    if x & 1:
        x = ED_P - x
    return (x, y, 1, x * y % ED_P)


ED_SEED = hashlib.sha256(b"berth fuzz ed25519 key").digest()


def _ed_expand():
    h = hashlib.sha512(ED_SEED).digest()
    a = int.from_bytes(h[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    return a, h[32:]


def ed_public():
    return _ed_compress(_ed_mul(_ed_expand()[0], _ed_base()))


def ed_sign(msg):
    a, prefix = _ed_expand()
    A = ed_public()
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % ED_Q
    R = _ed_compress(_ed_mul(r, _ed_base()))
    k = int.from_bytes(hashlib.sha512(R + A + msg).digest(), "little") % ED_Q
    return R + ((r + k * a) % ED_Q).to_bytes(32, "little")


def b64u(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def libtrust_kid(spki_der):
    import base64
    s = base64.b32encode(hashlib.sha256(spki_der).digest()[:30]).decode()
    return ":".join(s[i:i + 4] for i in range(0, 48, 4))


ED_X = b64u(ed_public()).decode()
ED_KID = libtrust_kid(bytes.fromhex("302a300506032b6570032100") + ed_public())
FUTURE, PAST = 4102444800, 1500000000  # 2100-01-01, 2017-07-14


def jws(header, claims, signed=True):
    h = header if isinstance(header, bytes) else j(header)
    c = claims if isinstance(claims, bytes) else j(claims)
    inp = b64u(h) + b"." + b64u(c)
    return inp + b"." + b64u(ed_sign(inp) if signed else b"\x00" * 64)


def seeds_jwt():
    acc = [{"type": "repository", "name": "library/fuzz", "actions": ["pull", "push"]},
           {"type": "registry", "name": "catalog", "actions": ["*"]}]
    good = {"iss": "fuzz-issuer", "sub": "alice", "aud": "fuzz-service", "exp": FUTURE, "nbf": PAST,
            "iat": PAST, "jti": "1", "access": acc}
    H = {"alg": "EdDSA", "typ": "JWT", "kid": "fuzz-ed25519"}
    claim_variants = [
        good, dict(good, aud=["other", "fuzz-service"]), dict(good, access=acc[:1]),
        dict(good, access=[{"type": "repository", "name": "library/fuzz", "actions": ["pull"]}]),
        dict(good, access=[{"type": "repository", "name": "library/fuzz", "actions": ["*"]}]),
        dict(good, access=[{"type": "repository", "name": "library/fuzz", "actions": ["pull"]},
                           {"type": "repository", "name": "library/fuzz", "actions": ["push"]}]),
        dict(good, access=None), {k: v for k, v in good.items() if k != "access"},
        dict(good, access=[{"type": "repository", "name": "library/fuzz", "actions": "pull"}]),
        dict(good, access=[{"type": 1, "name": "library/fuzz"}]), dict(good, access={}),
        dict(good, exp=PAST), dict(good, nbf=FUTURE), dict(good, iat=FUTURE), dict(good, iss="evil"),
        dict(good, aud="other"), dict(good, aud=[]), dict(good, exp="2100"), dict(good, exp=FUTURE + 0.5),
        {k: v for k, v in good.items() if k != "exp"}, dict(good, sub=1), dict(good, exp=1e300),
    ]
    out = [jws(H, c) for c in claim_variants]
    out += [
        jws(dict(H, kid=ED_KID), good),
        jws({"alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": ED_X}}, good),
        jws({"alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": ED_X}, "kid": "nope"}, good),
        jws(H, good, signed=False), jws(dict(H, kid="nope"), good), jws({"alg": "EdDSA"}, good),
        jws(dict(H, alg="none"), good), jws(dict(H, alg="HS256"), good), jws(dict(H, alg="RS256"), good),
        jws(dict(H, alg="ES256"), good), jws(dict(H, crit=["exp"]), good), jws(dict(H, x5c="MII"), good),
        jws(dict(H, x5c=["MIIB"]), good), jws(dict(H, x5c=[]), good),
        jws({"alg": "RS256", "kid": "fuzz-rsa"}, good, signed=False),
        jws({"alg": "PS384", "kid": "fuzz-rsa"}, good, signed=False),
        jws({"alg": "ES512", "kid": "fuzz-rsa"}, good, signed=False),
        jws(b"[]", good), jws(b'{"alg":"EdDSA","alg":"EdDSA"}', good), jws(H, b"null"),
        jws(H, j(good) + b"x"), jws(H, j(good).replace(b'"sub"', b'"sub","sub":"bob"')),
    ]
    t = jws(H, good)
    parts = t.split(b".")
    out += [t + b"==", parts[0] + b"==." + parts[1] + b"." + parts[2], t + b".", b"." + t, b"a.b",
            b"a..c", b"...", parts[0] + b"." + parts[1] + b"." + parts[2][:-1],
            parts[0] + b"." + parts[1] + b"." + parts[2] + b"A", t.replace(b"-", b"+"), t + b" x",
            b"e30.e30.e30", b""]
    # Whole Authorization values (the target also sends each input as the header itself).
    out += [b"Bearer " + t, b"bearer " + t, b"Bearer  " + t, b"Bearer", b"Basic dXNlcjpwYXNz",
            b"basic YWxpY2U6ZnV6eg==", b"Basic OnBhc3M=", b"Basic dXNlcg==", b"Basic dXNlcjpw\x00YXNz",
            b"Basic " + b"QUFB" * 100, b"Negotiate abc"]
    # Header "\n" claims that the target signs itself (@X5C@, @KID@, @JWK@: its EC key).
    cg = j(good)
    for h in [{"alg": "ES256", "typ": "JWT", "x5c": ["@X5C@"]}, {"alg": "ES256", "kid": "@KID@"},
              {"alg": "ES256", "jwk": "@JWK@"}, {"alg": "RS256", "kid": "fuzz-rsa"},
              {"alg": "PS256", "kid": "fuzz-rsa"}, {"alg": "RS512", "kid": "fuzz-rsa"},
              {"alg": "PS384", "kid": "fuzz-rsa"}, {"alg": "EdDSA", "kid": "fuzz-ed25519"},
              {"alg": "ES384", "kid": "@KID@"}, {"alg": "none"}, {"alg": "HS256", "kid": "fuzz-rsa"},
              {"alg": "ES256", "x5c": ["@X5C@", "@X5C@"]}, {"alg": "RS256", "x5c": ["@X5C@"]},
              {"alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": ED_X}},
              {"alg": "RS256", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
              {"alg": "ES256", "jwk": "@JWK@", "x5c": ["@X5C@"]}, {"alg": "ES256", "kid": "@KID@", "crit": []}]:
        out.append(j(h).replace(b'"@JWK@"', b"@JWK@") + b"\n" + cg)
    for c in claim_variants[1:12]:
        out.append(b'{"alg":"ES256","kid":"@KID@"}\n' + j(c))
    # JWKs on their own.
    p256x = b64u(bytes.fromhex("6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296")).decode()
    p256y = b64u(bytes.fromhex("4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5")).decode()
    out += [j({"kty": "EC", "crv": "P-256", "x": p256x, "y": p256y}),
            j({"kty": "EC", "crv": "P-256", "x": p256x, "y": p256x}),
            j({"kty": "EC", "crv": "P-384", "x": p256x, "y": p256y}),
            j({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
            j({"kty": "RSA", "n": b64u(b"\xc3" * 128).decode(), "e": "AQAB"}),
            j({"kty": "RSA", "n": "", "e": "AQAB"}), j({"kty": "OKP", "crv": "Ed25519", "x": ED_X}),
            j({"kty": "OKP", "crv": "Ed448", "x": ED_X}), j({"kty": "oct", "k": "c2VjcmV0"}), j({"kty": 1})]
    return out


# ---- htpasswd --------------------------------------------------------------------------------

# bcrypt hashes of the password "fuzz" (htpasswd -nbB -C 4), the ones fuzz_htpasswd.c knows.
HT_ALICE = b"$2y$04$CoZg6HJXBZ33eWEPjpOZQ.K5VQtqbJFPLgRFZ6xPXBX8teRZ8pPfu"
HT_BOB = b"$2y$04$lYlOuwT5wlzoLEbmZRzU8.NZl2u.9iadGXvLt2mAhgEHGx5xxL/0G"
HT_CAROL = b"$2y$05$gOLjz0M326lNg/jma70gfulbBEYx67U4Pdhx1pp5n7zlufYumgRBu"


def seeds_htpasswd():
    a, b, c = b"alice:" + HT_ALICE, b"bob:" + HT_BOB, b"carol:" + HT_CAROL
    slow = b"$2y$31$" + HT_ALICE[7:]
    return [
        a + b"\n", a, a + b"\n" + b + b"\n" + c + b"\n", a + b"\r\n" + b + b"\r\n",
        b"# users\n\n" + a + b"\n   \n# " + b + b"\n" + c + b"\n",
        b"  " + a + b"\t \n\t" + b + b"\r\n", b"alice : " + HT_ALICE + b"\n",
        a + b"\nalice:" + HT_CAROL + b"\n", b"alice:" + HT_CAROL + b"\n" + a + b"\n",
        b"bob:" + HT_ALICE.replace(b"$2y$", b"$2a$") + b"\n" + b"eve:" + HT_BOB.replace(b"$2y$", b"$2b$"),
        b"dave:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n" + a + b"\n",
        b"frank:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n" + b + b"\n",
        b"gina:rl0uy4F5vQ9H.\n" + b"henry:$1$salt$qJH7.N4xYta3aEG/dfqo/0\n" + b"ivan:$6$salt$abc\n",
        b"plaintext:fuzz\n" + c + b"\n", b"no colon here\n" + a + b"\n", b":" + HT_ALICE + b"\n" + b + b"\n",
        b"alice\n", b"alice:\n", b"alice::" + HT_ALICE + b"\n", b"alice:" + HT_ALICE + b":extra\n",
        b"alice:" + HT_ALICE[:-1] + b"\n", b"alice:" + HT_ALICE + b"x\n",
        b"alice:" + HT_ALICE.replace(b"$2y$", b"$2x$") + b"\n", b"alice:" + HT_ALICE.replace(b"$04$", b"$4$") + b"\n",
        b"alice:" + HT_ALICE[:20] + b"!" + HT_ALICE[21:] + b"\n",
        b"aaron:" + slow + b"\n" + a + b"\n", b"aaron:$2y$40$" + HT_ALICE[7:] + b"\n" + a + b"\n",
        b"nobody:" + HT_BOB + b"\n" + a + b"\n", "zoë:".encode() + HT_ALICE + b"\n",
        b"a b:" + HT_ALICE + b"\n", b"alice:" + HT_ALICE + b"\x00\n" + b + b"\n", b"\x00" + a,
        b"", b"\n", b"#\n", b"\r\n\r\n", b"\n".join([b"u%d:" % i + HT_ALICE for i in range(40)]) + b"\n",
        b"\xff\xfe" + a + b"\n", a + b"\r\r\n", a.replace(b":", b"\t:") + b"\n",
    ]


# ---- dictionaries ----------------------------------------------------------------------------

JSON_TOKENS = ["{", "}", "[", "]", ":", ",", '"', "null", "true", "false", "0", "-1", "1e400",
               "18446744073709551616", "\\u0000", "\\ud800"]
MANIFEST_KEYS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "digest", "size", "urls",
                 "annotations", "platform", "architecture", "os", "variant", "subject", "artifactType",
                 "data", "fsLayers", "blobSum", "history", "signatures"]
MEDIA_TYPES = [MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST, MT_OCI_CONFIG,
               MT_OCI_LAYER, MT_OCI_NONDIST, MT_DOCKER_FOREIGN, MT_SCHEMA1, "application/json",
               "text/plain", "application/vnd.oci.empty.v1+json"]
DIGEST_TOKENS = ["sha256:", "sha512:", "sha384:", "+", ".", "_", "-", "=", HEX64]
HTTP_TOKENS = ["GET ", "HEAD ", "PUT ", "POST ", "PATCH ", "DELETE ", "OPTIONS ", " HTTP/1.1\r\n",
               " HTTP/1.0\r\n", "\r\n", "\r\n\r\n", "/v2/", "/v2/_catalog", "/tags/list", "/manifests/",
               "/blobs/", "/blobs/uploads/", "/referrers/", "library/fuzz", "other/repo", "latest", "index",
               "@UUID@", "Host: ", "Content-Length: ", "Content-Range: ", "Range: ", "bytes=",
               "Transfer-Encoding: chunked", "Content-Type: ", "Accept: ", "Authorization: ",
               "If-None-Match: ", "Expect: 100-continue", "Connection: close", "Connection: keep-alive",
               "?digest=", "?mount=", "&from=", "?n=", "&last=", "?artifactType=", "%00", "%2F", "%2e",
               "0\r\n\r\n", D_LAYER, D_CONFIG, D_MANIFEST]


def dict_file(tokens):
    lines = []
    for t in tokens:
        b = t.encode() if isinstance(t, str) else t
        esc = "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else "\\x%02x" % c for c in b)
        lines.append('"%s"' % esc)
    return "\n".join(lines) + "\n"


JWT_KEYS = ["alg", "typ", "kid", "x5c", "jwk", "crit", "kty", "crv", "x", "y", "n", "e", "use", "iss", "sub",
            "aud", "exp", "nbf", "iat", "jti", "access", "type", "name", "actions"]
JWT_VALUES = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "none",
              "HS256", "RSA", "EC", "OKP", "P-256", "P-384", "P-521", "Ed25519", "sig", "repository", "registry",
              "catalog", "library/fuzz", "pull", "push", "delete", "*", "fuzz-issuer", "fuzz-service",
              "fuzz-ed25519", "fuzz-rsa", "@JWK@"]
CONFIG_WORDS = sorted(set(
    "version log accesslog disabled level formatter fields hooks loglevel storage filesystem rootdirectory "
    "maxthreads inmemory s3 accesskey secretkey region regionendpoint bucket secure v4auth chunksize "
    "forcepathstyle delete enabled redirect disable cache blobdescriptor blobdescriptorsize maintenance "
    "uploadpurging age interval dryrun readonly tag concurrencylimit auth silly token htpasswd none realm "
    "service issuer rootcertbundle jwks autoredirect path http addr net prefix host secret relativeurls "
    "draintimeout tls certificate key clientcas minimumtls ciphersuites letsencrypt headers debug "
    "prometheus http2 health storagedriver threshold notifications events includereferences endpoints "
    "name url timeout backoff ignoredmediatypes ignore mediatypes actions redis addrs password db "
    "dialtimeout readtimeout writetimeout pool maxidle maxactive idletimeout validation manifests urls "
    "allow deny proxy remoteurl username ttl catalog maxentries tags maxtags middleware reporting".split()))
DICTS = {
    "name": ["/", ".", "_", "__", "-", "--", "a", "0", "library/"],
    "reference": DIGEST_TOKENS + ["latest", "v1.0", "A", "_"],
    "range": ["bytes", "bytes=", "bytes ", "=", "-", "/", "*", " ", "\t", ",", "\n",
              "18446744073709551615", "18446744073709551616", "0", "1000"],
    "uuid": ["-", "0", "a", "f", "g", "3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"],
    "query": ["digest=", "mount=", "from=", "n=", "last=", "tag=", "&", "=", "+", "%", "%00", "%2F", "%3A",
              "sha256:", "18446744073709551615"],
    "manifest": JSON_TOKENS + ['"%s"' % k for k in MANIFEST_KEYS] + ['"%s"' % m for m in MEDIA_TYPES] +
                ['"%s"' % D_LAYER, '"sha256:', "http://", "https://"],
    "hashstate": [b"sha\x03", b"sha\x07", b"\x00" * 8, b"\xff" * 8, b"\x00\x00\x00\x00\x00\x00\x00\x40",
                  b"\x6a\x09\xe6\x67"],
    "config": [w + ":" for w in CONFIG_WORDS] + [
        "version: 0.1\n", "\n", "  ", "- ", "{", "}", "[", "]", ", ", "&a ", "*a", "!!str ", "!!binary ",
        "'", '"', "? ", "---", "...", "true", "false", "yes", "1h30m", "10ms", "-5s", "1.5", "tls1.2",
        "json", "text", "logstash", "debug", "inmemory", "redis", "unix", "tcp"],
    "http": HTTP_TOKENS + ['"%s"' % k for k in MANIFEST_KEYS] + MEDIA_TYPES,
    "jwt": JSON_TOKENS + ['"%s"' % k for k in JWT_KEYS] + ['"%s"' % v for v in JWT_VALUES] + [
        ".", "\n", "=", "-", "_", "eyJ", "Bearer ", "Basic ", "@X5C@", "@KID@", "@JWK@", "MII", "AQAB",
        b64u(b'{"alg":"').decode(), b64u(b'{"alg":"EdDSA","kid":"fuzz-ed25519"}').decode()],
    "htpasswd": [":", "\n", "\r\n", "#", " ", "\t", "$2y$", "$2a$", "$2b$", "$2x$", "04$", "05$", "31$",
                 "$apr1$", "{SHA}", "$1$", "$6$", "alice:", "bob:", "nobody:", HT_ALICE, HT_BOB, HT_CAROL],
}

SEEDS = {
    "name": seeds_name, "reference": seeds_reference, "range": seeds_range, "uuid": seeds_uuid,
    "query": seeds_query, "manifest": seeds_manifest, "hashstate": seeds_hashstate,
    "config": seeds_config, "http": seeds_http, "jwt": seeds_jwt, "htpasswd": seeds_htpasswd,
}


def label(data):
    """A readable, stable file name: a slug of the first bytes plus a short content hash."""
    slug = re.sub(rb"[^A-Za-z0-9._-]+", b"_", data[:32]).decode().strip("_")[:32] or "x"
    return "%s-%s" % (slug, hashlib.sha1(data).hexdigest()[:8])


def main():
    targets = set(os.path.basename(f)[5:-2] for f in os.listdir(HERE)
                  if f.startswith("fuzz_") and f.endswith(".c"))
    missing = targets - set(SEEDS)
    if missing:
        sys.exit("make-seeds.py: no seeds for target(s) %s" % ", ".join(sorted(missing)))
    total = 0
    os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
    for t, fn in sorted(SEEDS.items()):
        d = os.path.join(HERE, "corpus", t)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if not f.startswith("crash-"):
                os.remove(os.path.join(d, f))
        seeds = fn()
        for s in seeds:
            with open(os.path.join(d, label(s)), "wb") as fh:
                fh.write(s)
            total += len(s)
        with open(os.path.join(HERE, "dict", t + ".dict"), "w") as fh:
            fh.write(dict_file(DICTS[t]))
        print("%-10s %3d seeds" % (t, len(seeds)))
    print("total %d bytes" % total)
    if total >= 1 << 20:
        sys.exit("make-seeds.py: seeds exceed 1 MiB")


if __name__ == "__main__":
    main()

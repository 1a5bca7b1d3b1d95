#!/usr/bin/env python3
"""berth and CNCF Distribution side by side on one S3 server (see bench/README.md, "On S3").

Reuses bench.py's machinery (servers, fixtures, workloads, runs, RSS sampling): this file only
swaps the storage (one throw-away Ceph RADOS Gateway on loopback, tests/fixtures/s3/, one
bucket, a rootdirectory per registry), writes the catalog and tag-list fixtures into the bucket
with boto3 (parallel PUTs), adds the S3 rows (10 concurrent uploads, the plain-client ceiling)
and writes bench/RESULTS-s3.md with the issue's S3 targets.
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import httpc  # noqa: E402
from bench import KiB, MiB, fmt, fmt_ratio, human_size, image_config, image_manifest, log, sha, summary  # noqa: E402

S3_FIXTURES = os.path.join(bench.REPO, "tests", "fixtures", "s3")
PART = 10 * MiB  # storage.s3.chunksize of both registries, and the ceiling's part size
MANY = 64  # manifests of the "different manifests" row: each connection in flight on its own one

# wrk script of that row: each thread cycles through its share of the paths (one a line in the
# file given after "--", with the number of threads), so the requests in flight name different
# manifests and no two share a storage request.
MANY_LUA = """
local nthreads = 0
function setup(thread)
   thread:set("id", nthreads)
   nthreads = nthreads + 1
end
function init(args)
   local n, all = tonumber(args[2]), {}
   for line in io.lines(args[1]) do table.insert(all, line) end
   reqs = {}
   for i, p in ipairs(all) do
      if (i - 1) % n == id then table.insert(reqs, wrk.format("GET", p)) end
   end
   next_req = 0
end
function request()
   next_req = next_req % #reqs + 1
   return reqs[next_req]
end
"""

PROFILES = {
    "full": dict(bench.PROFILES["full"], runs=3, mono=[(100 * MiB, 2)], chunked_count=2, catalog_listings=1,
                 conc_uploads=10, conc_size=100 * MiB, conc_runs=2, ceiling_count=2, osd_bytes=4 << 30,
                 listing_timeout=600),
    "smoke": dict(bench.PROFILES["smoke"], mono=[(1 * MiB, 2)], conc_uploads=3, conc_size=1 * MiB,
                  conc_runs=1, ceiling_count=1, osd_bytes=1 << 30, listing_timeout=120),
}

# The workloads of bench.py measured here (its keys); the others stay filesystem-only.
KEYS = ("mget_tag", "mget_digest", "bhead", "bget_big", "up_mono", "up_chunked", "skopeo_push_small",
        "skopeo_pull_small", "skopeo_push_big", "skopeo_pull_big", "catalog_page", "catalog_full", "tags_list")


# The production model: several instances on one bucket sharing one Redis as the blob descriptor
# cache. Both registries get the same section (the pool of Distribution's configuration example;
# timeouts loose enough for a loaded 2-core machine), each its own database.
REDIS_DB = {"berth": 1, "dist": 2}
REDIS_YAML = """redis:
  addr: 127.0.0.1:{port}
  db: {db}
  dialtimeout: 1s
  readtimeout: 1s
  writetimeout: 1s
  pool:
    maxidle: 16
    maxactive: 64
    idletimeout: 300s
"""


def s3_storage_yaml(rgw, rootdir, cache="inmemory"):
    return """storage:
  s3:
    accesskey: {ak}
    secretkey: {sk}
    region: {region}
    regionendpoint: {ep}
    bucket: {bucket}
    rootdirectory: {root}
    secure: false
    chunksize: {part}
    multipartcopythresholdsize: 5368709120
  delete:
    enabled: true
  redirect:
    disable: true
  cache:
    blobdescriptor: {cache}
  maintenance:
    uploadpurging:
      enabled: false
""".format(ak=rgw["S3_ACCESS_KEY"], sk=rgw["S3_SECRET_KEY"], region=rgw["S3_REGION"],
           ep=rgw["S3_ENDPOINT"], bucket=rgw["S3_BUCKET"], root=rootdir, part=PART, cache=cache)


def write_config(path, rgw, rootdir, port, extra="", redis=None):
    """redis: (port, db) of the Redis blob descriptor cache; None: the in-memory one."""
    with open(path, "w") as f:
        f.write("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n")
        f.write(s3_storage_yaml(rgw, rootdir, "redis" if redis else "inmemory"))
        if redis:
            f.write(REDIS_YAML.format(port=redis[0], db=redis[1]))
        f.write("http:\n  addr: 127.0.0.1:%d\n%s" % (port, extra))


def redis_suffix(redis):
    return "-redis" if redis else ""


class S3Berth(bench.Berth):
    def __init__(self, work, rgw, rootdir, binary, threads=None, redis=None):
        super().__init__(work, rootdir, binary, threads)
        self.rgw, self.redis = rgw, redis
        self.log_path = os.path.join(work, "berth%s.log" % redis_suffix(redis))

    def cmd(self):
        cfg = os.path.join(self.work, "berth-s3%s.yml" % redis_suffix(self.redis))
        write_config(cfg, self.rgw, self.root, self.port, redis=self.redis)
        c = [self.binary, "serve", cfg, "--no-access-log", "--log-level", "warn"]
        if self.threads:
            c += ["--threads", str(self.threads)]
        return c


class S3Distribution(bench.Distribution):
    def __init__(self, work, rgw, rootdir, redis=None):
        super().__init__(work, rootdir)
        self.rgw, self.redis = rgw, redis
        self.log_path = os.path.join(work, "dist%s.log" % redis_suffix(redis))

    def cmd(self):
        cfg = os.path.join(self.work, "dist-s3%s.yml" % redis_suffix(self.redis))
        write_config(cfg, self.rgw, self.root, self.port, "  secret: berth-bench-not-a-secret\n", redis=self.redis)
        return ["docker-registry", "serve", cfg]

    def env(self):
        e = dict(os.environ)
        e.pop("AWS_CA_BUNDLE", None)  # Distribution 2.8.2's s3 driver panics at start-up with it set
        return e


class Rgw:
    """The throw-away RADOS Gateway of tests/fixtures/s3 (rgw-test-up.sh / rgw-down.sh)."""

    def __init__(self, work, osd_bytes):
        self.dir = os.path.join(work, "rgw")
        env = dict(os.environ, RGW_OSD_BYTES=str(osd_bytes))
        pr = subprocess.run([os.path.join(S3_FIXTURES, "rgw-test-up.sh"), self.dir, "bench"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180)
        if pr.returncode != 0:
            raise bench.BenchError("radosgw did not start: %s" % pr.stderr.strip()[-400:])
        out = pr.stdout
        self.vars = {}
        for line in out.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                self.vars[k.strip()] = v.strip().strip("'\"")
        import boto3
        from botocore.config import Config
        self.client = boto3.client(
            "s3", endpoint_url=self.vars["S3_ENDPOINT"], aws_access_key_id=self.vars["S3_ACCESS_KEY"],
            aws_secret_access_key=self.vars["S3_SECRET_KEY"], region_name=self.vars["S3_REGION"],
            config=Config(max_pool_connections=64, retries={"max_attempts": 5, "mode": "standard"},
                          s3={"addressing_style": "path"}))
        self.bucket = self.vars["S3_BUCKET"]

    @property
    def pid(self):
        try:
            with open(os.path.join(self.dir, "run", "client.rgw.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def requests(self):
        """RGW's own count of the requests it served so far (its admin socket's perf counter
        rgw.req), or None when it cannot be read."""
        try:
            out = subprocess.run(["ceph", "--admin-daemon", os.path.join(self.dir, "run", "client.rgw.asok"),
                                  "perf", "dump"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 timeout=30, env=dict(os.environ, CEPH_CONF=self.vars["CEPH_CONF"])).stdout
            return int(json.loads(out)["rgw"]["req"])
        except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
            return None

    def put_many(self, items, threads=32):
        """items: (key, bytes). Parallel PUTs; raises the first failure."""
        with concurrent.futures.ThreadPoolExecutor(threads) as ex:
            for f in [ex.submit(self.client.put_object, Bucket=self.bucket, Key=k, Body=b) for k, b in items]:
                f.result()

    def delete_prefix(self, prefix):
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket,
                                       Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    def collect_garbage(self):
        """Frees deleted objects' data now: RGW defers it (rgw_gc_obj_min_wait, 2 hours), and the
        memstore OSD would otherwise keep every uploaded byte of the run in memory."""
        subprocess.run(["radosgw-admin", "--conf", self.vars["CEPH_CONF"], "-n", "client.rgw", "gc", "process",
                        "--include-all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300,
                       check=False)

    def stop(self):
        subprocess.run([os.path.join(S3_FIXTURES, "rgw-down.sh"), self.dir], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


class Redis:
    """A throw-away redis-server on loopback (tests/fixtures/s3/redis-up.sh), as the tests start it."""

    def __init__(self, work):
        self.dir = os.path.join(work, "redis")
        self.port = bench.free_port()
        pr = subprocess.run([os.path.join(S3_FIXTURES, "redis-up.sh"), self.dir, str(self.port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        if pr.returncode != 0:
            raise bench.BenchError("redis-server did not start: %s" % pr.stderr.strip()[-400:])

    def stop(self):
        try:
            with open(os.path.join(self.dir, "redis.pid")) as f:
                os.kill(int(f.read().strip()), 15)
        except (OSError, ValueError):
            pass


class S3Bench(bench.Bench):
    def __init__(self, args):
        super().__init__(args)
        self.p = dict(PROFILES["smoke" if args.smoke else "full"])
        for key in ("runs", "duration", "conns"):
            if getattr(args, key) is not None:
                self.p[key] = getattr(args, key)
        self.work = os.path.abspath(args.workdir or os.path.join(HERE, ".work", "s3-smoke" if args.smoke else "s3"))
        self.only = set(args.only.split(",")) if args.only else None
        args.only = None  # bench.py's filter knows only its own keys
        if self.only and not self.only & {"catalog_page", "catalog_full", "tags_list"}:
            # No listing measured: a small catalog and tag list, so that seeding and the
            # start-up checks take seconds (a page of the full catalog can outlast the client).
            self.p.update(catalog_repos=10, tags=10, catalog_page=5)
        self.tools["nginx"] = False  # nothing to compare on S3; the ceiling is the plain S3 client
        # One rootdirectory for both, as in a migration: the 10,000-repository and 10,000-tag
        # fixtures are written once (RGW takes about 100-500 small PUTs/s here).
        self.roots = {"berth": "/bench", "dist": "/bench"}

    def v2prefix(self, kind):
        return self.roots[kind].lstrip("/") + "/docker/registry/v2/"

    def seed_on_disk(self, roots):
        """bench.py's seed (a small image, catalog/r-NNNNN repositories, the bench/tags tag list),
        written into the bucket under each registry's rootdirectory with parallel PUTs."""
        p = self.p
        layer = b"bench seed layer\n" * 64
        cfg = image_config("seed", [sha(layer)])
        man = image_manifest(cfg, [(sha(layer), len(layer))])
        ld, cd, md = sha(layer), sha(cfg), sha(man)
        items = []
        for v2 in sorted({self.v2prefix(kind) for kind in roots}):
            for d, data in ((ld, layer), (cd, cfg), (md, man)):
                items.append((v2 + "blobs/sha256/%s/%s/data" % (d[7:9], d[7:]), data))
            for i in range(p["catalog_repos"]):
                items.append((v2 + "repositories/catalog/r-%05d/_layers/sha256/%s/link" % (i, ld[7:]), ld.encode()))
            r = v2 + "repositories/bench/tags/"
            for d in (ld, cd):
                items.append((r + "_layers/sha256/%s/link" % d[7:], d.encode()))
            items.append((r + "_manifests/revisions/sha256/%s/link" % md[7:], md.encode()))
            for i in range(p["tags"]):
                items.append((r + "_manifests/tags/t-%05d/current/link" % i, md.encode()))
        self.rgw.put_many(items, threads=64)
        self.seed_manifest_d = md
        self.seed_objects = len(items)

    def drop_blobs(self, kind, digests, repo):
        v2 = self.v2prefix(kind)
        for d in digests:
            self.rgw.delete_prefix(v2 + "blobs/sha256/%s/%s/" % (d[7:9], d[7:]))
            self.rgw.delete_prefix(v2 + "repositories/%s/_layers/sha256/%s/" % (repo, d[7:]))
        self.rgw.collect_garbage()

    def many_manifests(self):
        """MANY different manifests of the fixture image (each with an annotation of its own):
        [(digest, bytes)], made once."""
        if not getattr(self, "many", None):
            self.many = []
            for i in range(MANY):
                m = json.loads(self.fx["manifest"])
                m["annotations"] = {"org.berth.bench.n": str(i)}
                body = json.dumps(m, sort_keys=True).encode()
                self.many.append((sha(body), body))
        return self.many

    def load_fixtures(self, s):
        super().load_fixtures(s)
        c = httpc.Conn(s.port)
        try:
            for d, body in self.many_manifests():
                bench.put_manifest(c, "bench/blobs", d, body)
        finally:
            c.close()

    # -- S3-only workloads

    def w_mget_many(self, s, i):
        """wrk GETs of MANY different manifests by digest, cycled through by each thread."""
        paths = os.path.join(self.work, "many-paths.txt")
        with open(paths, "w") as f:
            f.write("".join("/v2/bench/blobs/manifests/%s\n" % d for d, _ in self.many_manifests()))
        script = os.path.join(self.work, "many.lua")
        with open(script, "w") as f:
            f.write(MANY_LUA)
        conns, d = self.p["conns"], self.p["duration"]
        threads = min(self.p["wrk_threads"], conns)
        cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % d, "--timeout", "30s", "--latency",
               "-H", "Accept: %s" % bench.ACCEPT, "-s", script, "http://127.0.0.1:%d/" % s.port,
               "--", paths, str(threads)]
        return bench.parse_wrk(bench.run_cmd(cmd, timeout=d + 120).stdout)

    def w_concurrent_uploads(self, s, i):
        """conc_uploads clients each upload one new conc_size blob monolithically, all at once."""
        n, size = self.p["conc_uploads"], self.p["conc_size"]
        common = self.rand(size - 16)
        digests, errors = [None] * n, []

        def one(k):
            suffix = os.urandom(16)
            h = self.conc_hash.copy()
            h.update(suffix)
            d = "sha256:" + h.hexdigest()
            c = httpc.Conn(s.port)
            try:
                st, hd, _ = c.request("POST", "/v2/bench/conc/blobs/uploads/")
                bench.expect(st, 202, "POST upload")
                st, _, _ = c.request("PUT", httpc.with_query(httpc.relative(hd["location"]), "digest", d),
                                     headers=[("Content-Type", "application/octet-stream")], body=[common, suffix])
                bench.expect(st, 201, "PUT upload")
                digests[k] = d
            except Exception as e:
                errors.append("%s: %s" % (type(e).__name__, e))
            finally:
                c.close()

        threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        spent = time.perf_counter() - t0
        self.drop_blobs(s.kind, [d for d in digests if d], "bench/conc")
        if errors:
            self.note("concurrent uploads on %s: %d failed, e.g. %s" % (bench.LABEL[s.kind], len(errors), errors[0]))
        return {"value": n * size / spent / 1e6, "errors": len(errors)}

    def w_one_listing(self, s, path):
        """Milliseconds of one GET of a listing (a tag list, a catalog page) that must answer 200."""
        c = httpc.Conn(s.port, timeout=self.p["listing_timeout"])
        try:
            t0 = time.perf_counter()
            st, _, _ = c.request("GET", path)
            bench.expect(st, 200, "GET " + path)
            return {"value": (time.perf_counter() - t0) * 1000}
        finally:
            c.close()

    def w_catalog_full(self, s, i):
        """bench.py's full paginated listing, one listing per run, given up after listing_timeout
        seconds (a failed run: on S3 a page can take minutes)."""
        import re
        c = httpc.Conn(s.port, timeout=self.p["listing_timeout"])
        url, total, pages = "/v2/_catalog?n=%d" % self.p["catalog_page"], 0, 0
        t0 = time.perf_counter()
        try:
            while url:
                if time.perf_counter() - t0 > self.p["listing_timeout"]:
                    raise bench.BenchError("given up after %d s, %d pages, %d repositories" % (
                        self.p["listing_timeout"], pages, total))
                st, h, body = c.request("GET", url)
                bench.expect(st, 200, "GET catalog page")
                repos = json.loads(body).get("repositories") or []
                total, pages = total + len(repos), pages + 1
                m = re.match(r"\s*<([^>]*)>", h.get("link", ""))
                url = httpc.relative(m.group(1)) if (m and repos) else None
        finally:
            c.close()
        return {"value": (time.perf_counter() - t0) * 1000, "errors": 0 if total >= self.p["catalog_repos"] else 1,
                "info": "%d repositories" % total}

    def ceiling(self):
        """What RGW takes and gives to a plain client: boto3 multipart upload of the big blob's size
        in PART-sized parts, one part at a time (as a registry's upload stream sends them), and GET of
        the same object by big_conns clients at once for `duration` seconds (as wrk does for the blob
        GET row)."""
        from boto3.s3.transfer import TransferConfig
        import io
        size = self.p["big_blob"]
        data = self.rand(size)
        cl, bucket = self.rgw.client, self.rgw.bucket
        tc = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=1, use_threads=False)
        ups, gets = [], []
        for i in range(self.p["runs"]):
            t0 = time.perf_counter()
            for k in range(self.p["ceiling_count"]):
                cl.upload_fileobj(io.BytesIO(data), bucket, "ceiling/obj-%d-%d" % (i, k), Config=tc)
            ups.append(self.p["ceiling_count"] * size / (time.perf_counter() - t0) / 1e6)
            got = [0] * self.p["big_conns"]
            deadline = time.perf_counter() + self.p["duration"]

            def reader(k):
                while time.perf_counter() < deadline:
                    body = cl.get_object(Bucket=bucket, Key="ceiling/obj-%d-0" % i)["Body"]
                    while True:
                        b = body.read(4 * MiB)
                        if not b:
                            break
                        got[k] += len(b)

            t0 = time.perf_counter()
            ts = [threading.Thread(target=reader, args=(k,)) for k in range(self.p["big_conns"])]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            gets.append(sum(got) / (time.perf_counter() - t0) / 1e6)
            self.rgw.delete_prefix("ceiling/")
            self.rgw.collect_garbage()
            log("ceiling run %d: upload %s MB/s, GET %s MB/s" % (i + 1, fmt(ups[-1]), fmt(gets[-1])))
        self.ceil = {"up": ups, "get": gets}

    def workloads(self):
        W, listings = [], []
        for w in super().workloads():
            if w["key"] in ("catalog_page", "catalog_full", "tags_list"):
                w["servers"] = ("berth", "dist")
                if w["key"] != "catalog_full":
                    # On S3 one listing can take longer than a whole wrk run: each is timed alone.
                    path = "/v2/bench/tags/tags/list" if w["key"] == "tags_list" else \
                        "/v2/_catalog?n=%d" % self.p["catalog_page"]
                    w.update(load="1 client, one request", unit="ms", higher=False, tool=None, p99=False,
                             fn=lambda s, i, path=path: self.w_one_listing(s, path))
                listings.append(w)
                continue
            if w["key"] in KEYS or (w["key"].startswith("up_mono_")):
                w["servers"] = ("berth", "dist")
                W.append(w)
            if w["key"] == "bhead":
                # The same HEADs with the blob descriptor cache in one Redis (the production
                # model of several instances): each registry a server of its own, started for
                # this row only, as does the Redis server.
                W.append(dict(w, key="bhead_redis", title="blob HEAD, blobdescriptor cache in Redis",
                              own_servers=self.redis_servers))
            if w["key"] == "mget_digest":
                # The row above has every connection on one manifest, where berth's concurrent
                # checks of it share S3 requests: here none can, so it shows the cost of each.
                W.append(dict(w, key="mget_many", title="manifest GET by digest, %d different manifests" % MANY,
                              load=w["load"] + ", paths cycled (lua)", fn=self.w_mget_many))
        p = self.p
        W.append(dict(key="conc_up", title="%d concurrent monolithic uploads of %s" % (
            p["conc_uploads"], human_size(p["conc_size"])), load="%d clients, one upload each" % p["conc_uploads"],
            unit="MB/s", higher=True, fn=self.w_concurrent_uploads, servers=("berth", "dist"), tool=None, p99=False))
        W += listings
        if self.only:
            W = [w for w in W if w["key"] in self.only or (w["key"].startswith("up_mono_") and "up_mono" in self.only)]
        return W

    def redis_servers(self):
        """berth and Distribution as the main ones, with the blob descriptor cache in Redis
        (one redis-server, started by the first call, a database each). The servers are not
        started here: run_workloads starts them for their row."""
        if not getattr(self, "redis", None):
            self.redis = Redis(self.work)
        return {
            "berth": S3Berth(self.work, self.rgw.vars, self.roots["berth"], self.berth_bin, self.args.threads,
                             redis=(self.redis.port, REDIS_DB["berth"])),
            "dist": S3Distribution(self.work, self.rgw.vars, self.roots["dist"],
                                   redis=(self.redis.port, REDIS_DB["dist"])),
        }

    def run_workloads(self):
        import hashlib
        self.conc_hash = hashlib.sha256(self.rand(self.p["conc_size"] - 16))
        runs = self.p["runs"]
        W = self.workloads()
        self.W = W
        for w in W:
            if w["tool"] and not self.tools[w["tool"]]:
                continue
            res = self.results.setdefault(w["key"], {})
            n = self.p["conc_runs"] if w["key"] == "conc_up" else runs
            own = w.get("own_servers")
            servers = own() if own else self.servers
            try:
                if own:  # the row's own servers run only while it is measured
                    for s in servers.values():
                        s.start()
                        self.sanity(s)
                self.run_row(w, res, servers, n)
            finally:
                if own:
                    for s in servers.values():
                        s.stop()
            self.write_report(partial=True)

    def run_row(self, w, res, servers, n):
        """n runs of the row, alternating its servers."""
        for i in range(n):
            for kind in w["servers"]:
                r = self.run_one(w, servers[kind], i)
                res.setdefault(kind, []).append(r)
                log("%-16s run %d/%d %-12s %s %s%s%s" % (
                    w["key"], i + 1, n, bench.LABEL[kind], fmt(r.get("value")), w["unit"],
                    (" errors %d" % r["errors"]) if r.get("errors") else "",
                    " peak RSS %s MiB" % fmt(r.get("peak_rss")) if r.get("peak_rss") else ""))

    def run_one(self, w, s, i):
        """bench.Bench.run_one, and for the request-rate rows the S3 requests made meanwhile, as
        RGW counted them (one registry runs at a time): s3_rps per second of the load, s3_per_100
        per 100 of the requests served (the load tool's own count and rate: ab may stop at its -n
        before the duration ends)."""
        n0 = self.rgw.requests() if w["unit"] == "req/s" else None
        r = super().run_one(w, s, i)
        n1 = self.rgw.requests() if n0 is not None else None
        if n1 is not None and r.get("value") and r.get("count"):
            r["s3_rps"] = (n1 - n0) * r["value"] / r["count"]
            r["s3_per_100"] = 100.0 * (n1 - n0) / r["count"]
        return r

    def main(self):
        a = self.args
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.load_start = os.getloadavg()
        for cmd in ("docker-registry", "radosgw", "ceph-mon", "redis-server"):
            if not shutil.which(cmd):
                raise bench.BenchError("%s is not installed (scripts/install-deps.sh test installs it)" % cmd)
        bench.rm_rf(self.work)
        os.makedirs(self.work)
        src = os.path.abspath(a.berth or os.path.join(bench.REPO, "build", "berth"))
        self.berth_bin = os.path.join(self.work, "berth")
        shutil.copy2(src, self.berth_bin)
        self.versions = {
            "berth": bench.tool_version([self.berth_bin, "--version"]),
            "Distribution": bench.tool_version(["docker-registry", "--version"]),
            "radosgw": bench.tool_version(["radosgw", "--version"]),
            "wrk": bench.tool_version(["wrk", "-v"]), "ab": bench.tool_version(["ab", "-V"]),
            "skopeo": bench.tool_version(["skopeo", "--version"]), "python": platform.python_version(),
        }
        log("profile %s, %d runs, work dir %s" % ("smoke" if a.smoke else "full", self.p["runs"], self.work))
        log("starting radosgw")
        self.rgw = Rgw(self.work, self.p["osd_bytes"])
        try:
            self.sampler.start()
            self.make_fixtures()
            t0 = time.monotonic()
            self.seed_on_disk(["berth", "dist"])
            self.seed_seconds = time.monotonic() - t0
            log("seeded %d objects in %.1fs" % (self.seed_objects, self.seed_seconds))
            self.servers["berth"] = S3Berth(self.work, self.rgw.vars, self.roots["berth"], self.berth_bin, a.threads)
            self.servers["dist"] = S3Distribution(self.work, self.rgw.vars, self.roots["dist"])
            try:
                for k in ("berth", "dist"):
                    self.servers[k].start()
                    self.load_fixtures(self.servers[k])
                for k in ("berth", "dist"):
                    self.servers[k].restart()
                    self.sanity(self.servers[k])
                self.ceil = {"up": [], "get": []}
                if not self.only or "ceiling" in self.only:
                    log("ceiling: boto3 against radosgw")
                    self.ceiling()
                self.run_workloads()
            finally:
                for s in self.servers.values():
                    s.stop()
                if getattr(self, "redis", None):
                    self.redis.stop()
                self.sampler.halt.set()
        finally:
            if not a.keep:
                self.rgw.stop()
        self.load_end = os.getloadavg()
        report = self.write_report()
        print(report)
        if not a.keep:
            bench.rm_rf(os.path.join(self.work, "img"))
        return 0

    # -- report

    def write_report(self, partial=False):
        self.finished = datetime.datetime.now(datetime.timezone.utc)
        if partial:
            self.load_end = os.getloadavg()
        out = self.args.out or (os.path.join(HERE, "RESULTS-s3.md") if not self.args.smoke
                                else os.path.join(self.work, "RESULTS-s3-smoke.md"))
        report = self.report()
        if partial:
            report = report.replace("## Machine", "**Partial: the run was still going when this was written.**"
                                    "\n\n## Machine", 1)
        with open(out, "w") as f:
            f.write(report)
        log("wrote %s%s" % (out, " (partial)" if partial else ""))
        return report

    def med(self, key, kind):
        s = summary([r.get("value") for r in self.results.get(key, {}).get(kind, [])])
        return s[0] if s else None

    def report(self):
        p = self.p
        cu, cg = summary(self.ceil["up"]), summary(self.ceil["get"])
        L = ["# berth vs CNCF Distribution on S3 (Ceph RADOS Gateway): benchmark results\n",
             "Generated by `make bench-s3%s` (bench/s3.py); started %s, took %.1f min.\n" % (
                 "-smoke" if self.args.smoke else "", self.started.strftime("%Y-%m-%d %H:%M UTC"),
                 (self.finished - self.started).total_seconds() / 60)]
        if self.args.smoke:
            L.append("**Smoke profile: one run, tiny durations and sizes. These numbers mean nothing.**\n")
        L.append("## Machine\n")
        for line in bench.machine_description(self.work):
            L.append("- " + line)
        L.append("- load average (1/5/15 min) at start: %s; at the end: %s" % (
            " ".join("%.2f" % x for x in self.load_start), " ".join("%.2f" % x for x in self.load_end)))
        L.append("- versions: " + "; ".join("%s: %s" % kv for kv in self.versions.items()))
        L.append("")
        L.append("## Set-up\n")
        L.append("- One S3 server: Ceph's RADOS Gateway from Debian's packages, single node, memstore OSD "
                 "(objects in memory), on loopback (`tests/fixtures/s3/rgw-test-up.sh`). One bucket and one "
                 "`rootdirectory: /bench` for both registries (each serves what the other wrote); both `chunksize: %d` "
                 "(%s parts), `storage.redirect.disable: true`, deletes on, `cache.blobdescriptor: inmemory`, "
                 "access log off, log level warn." % (PART, human_size(PART)))
        L.append("- The row \"blob HEAD, blobdescriptor cache in Redis\" (the production model: several "
                 "instances on one bucket sharing one Redis): the same configurations with "
                 "`cache.blobdescriptor: redis` and one throw-away redis-server on loopback "
                 "(`tests/fixtures/s3/redis-up.sh`, Debian's), each registry in a database of its own (berth %d, "
                 "Distribution %d), `redis` keys `dialtimeout`/`readtimeout`/`writetimeout: 1s`, `pool` "
                 "`maxidle: 16`, `maxactive: 64`, `idletimeout: 300s` (Distribution's configuration example); "
                 "two more servers, running only during that row. Both ask Redis first and S3 only on a "
                 "miss (the first request). With the in-memory cache Distribution sends no S3 request (and "
                 "does not see a blob deleted through another instance) while berth checks the blob's "
                 "repository link in S3 (shared by concurrent requests)." % (REDIS_DB["berth"], REDIS_DB["dist"]))
        L.append("- berth: `berth serve CONFIG --no-access-log --log-level warn` (HTTP threads: one per core). "
                 "Distribution: Debian's `docker-registry serve CONFIG` (2.8.2, its `s3` driver).")
        L.append("- The %d-repository catalog and the %d-tag repository (%d objects) were written into the "
                 "bucket by boto3 with 64 parallel PUTs in %.1f s; the other fixtures are pushed through each "
                 "registry's API." % (p["catalog_repos"], p["tags"], self.seed_objects, self.seed_seconds))
        L.append("- Every workload runs against berth and Distribution alternately, %d runs each (the concurrent "
                 "uploads %d); a cell is the median with min-max in brackets." % (p["runs"], p["conc_runs"]))
        L.append("- Ceiling: what RGW takes from and gives to a plain client, boto3 (Python): a multipart upload "
                 "of %s in %s parts sent one at a time (as one registry upload stream sends them), %d per run; "
                 "GET of that object by %d clients at once for %d s (as the blob GET row's wrk -c%d). "
                 "The Python client's own CPU is part of the ceiling on this 2-core machine." % (
                     human_size(p["big_blob"]), human_size(PART), p["ceiling_count"], p["big_conns"],
                     p["duration"], p["big_conns"]))
        L.append("")
        L.append("## Results\n")
        L.append("| workload | load | unit | berth | Distribution | berth : Distribution | share of ceiling berth "
                 "| share of ceiling Distribution | peak RSS MiB berth | peak RSS MiB Distribution | p99 ms berth "
                 "| p99 ms Distribution |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        ceil_of = {"bget_big": cg, "up_chunked": cu, "up_mono_%d" % p["mono"][-1][0]: cu}
        self.rows = []
        for w in self.W:
            res = self.results.get(w["key"])
            if not res:
                continue

            def cell(kind, field="value"):
                s = summary([r.get(field) for r in res.get(kind, [])])
                if s is None:
                    return "failed" if field == "value" else "–"
                txt = "%s (%s–%s)" % (fmt(s[0]), fmt(s[1]), fmt(s[2])) if s[3] > 1 else fmt(s[0])
                errs = sum(r.get("errors") or 0 for r in res.get(kind, []))
                if field == "value" and errs:
                    txt += " **%d errors**" % errs
                return txt

            b, d = self.med(w["key"], "berth"), self.med(w["key"], "dist")
            ratio = fmt_ratio(b / d) if b and d else "–"
            c = ceil_of.get(w["key"])
            share = lambda v: "%.0f%%" % (100 * v / c[0]) if (c and v) else "–"  # noqa: E731
            p99 = lambda k: cell(k, "p99") if w["p99"] else "–"  # noqa: E731
            L.append("| %s | %s | %s %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w["title"], w["load"], w["unit"], "↑" if w["higher"] else "↓", cell("berth"), cell("dist"), ratio,
                share(b), share(d), cell("berth", "peak_rss"), cell("dist", "peak_rss"), p99("berth"), p99("dist")))
        for name, s in (("ceiling: boto3 multipart upload", cu), ("ceiling: boto3 GET", cg)):
            if not s:
                continue
            L.append("| %s | plain S3 client | MB/s ↑ | %s (%s–%s) | | | | | | | | |" % (
                name, fmt(s[0]), fmt(s[1]), fmt(s[2])))
        L.append("")
        L.extend(self.s3_request_rows())
        L.append("## Targets\n")
        L.extend(self.targets())
        L.append("")
        L.append("## Notes\n")
        L.append("- The machine is shared with other work (builds and test suites of other sessions ran at the same "
                 "time) and has %d cores, on which RGW, its Ceph monitor and OSD, both registries and every load "
                 "generator run together: the numbers are noisy; read the ranges, not one run." %
                 len(os.sched_getaffinity(0)))
        L.append("- Uploads: one client, each blob new (a unique suffix), timed from POST to the final 201; the "
                 "blobs are deleted from the bucket after each run. The chunked upload sends %s PATCHes." %
                 human_size(p["chunk"]))
        L.append("- Peak RSS: VmRSS sampled every 50 ms during the run (median over runs).")
        for n in self.notes:
            L.append("- " + n)
        L.append("")
        return "\n".join(L)

    def s3_request_rows(self):
        """The S3 requests each request-rate row made (RGW's count): what validating against the
        bucket costs the S3 server, and how many client requests one S3 request answered."""
        rows = []
        for w in self.W:
            res = self.results.get(w["key"])
            if w["unit"] != "req/s" or not res or not any(r.get("s3_rps") is not None
                                                           for runs in res.values() for r in runs):
                continue

            def cell(kind, field):
                s = summary([r.get(field) for r in res.get(kind, [])])
                if s is None:
                    return "–"
                return "%s (%s–%s)" % (fmt(s[0]), fmt(s[1]), fmt(s[2])) if s[3] > 1 else fmt(s[0])
            rows.append("| %s | %s | %s | %s | %s |" % (w["title"], cell("berth", "s3_rps"), cell("dist", "s3_rps"),
                                                       cell("berth", "s3_per_100"), cell("dist", "s3_per_100")))
        if not rows:
            return []
        return ["## S3 requests under load\n",
                "RGW's own count of the requests it served during each run of the request-rate rows (its "
                "admin socket's `rgw.req`), per second of the load and per 100 requests the registry answered. "
                "berth checks a tag, revision or repository link in the bucket on every request, concurrent "
                "requests of one object sharing a HEAD (storage/coalesce.h); Distribution's in-memory blob "
                "descriptor cache answers blob HEADs without asking S3.\n",
                "| workload | S3 req/s berth | S3 req/s Distribution | S3 requests per 100 berth "
                "| S3 requests per 100 Distribution |", "|---|---|---|---|---|"] + rows + [""]

    def targets(self):
        p = self.p
        out = []

        def errors(key):
            return sum(r.get("errors") or 0 for v in self.results.get(key, {}).values() for r in v)

        def line(desc, ok, detail):
            out.append(("- %s %s: %s" % ("met" if ok else "**not met**", desc, detail)) if ok is not None
                       else "- n/a %s: %s" % (desc, detail))

        def ratio(key, want, desc, higher=True):
            b, d = self.med(key, "berth"), self.med(key, "dist")
            if b is None or d is None:
                line(desc, None, "no data")
                return
            # a listing so slow that no request completed within the run is 0 req/s
            num, den = (b, d) if higher else (d, b)
            x = num / den if den else (float("inf") if num else 0.0)
            line(desc, x >= want and not errors(key), "berth %s, Distribution %s: %s (want ≥ %g×)%s" % (
                fmt(b), fmt(d), fmt_ratio(x), want, ", with errors" if errors(key) else ""))

        def ceiling(key, which, desc):
            b, c = self.med(key, "berth"), summary(self.ceil[which])
            if not b or not c:
                line(desc, None, "no data")
                return
            line(desc, b >= 0.9 * c[0] and not errors(key), "berth %s MB/s, ceiling %s MB/s: %.0f%%" % (
                fmt(b), fmt(c[0]), 100 * b / c[0]))

        for key, name in (("mget_tag", "manifest GET by tag"), ("mget_digest", "manifest GET by digest"),
                          ("bhead", "blob HEAD (blobdescriptor inmemory)"),
                          ("bhead_redis", "blob HEAD (blobdescriptor cache in Redis)")):
            ratio(key, 10, "%s req/s ≥ 10× Distribution (metadata path)" % name)
        ratio("tags_list", 10, "tag list (%d tags) ≥ 10× faster than Distribution (metadata path)" % p["tags"],
              higher=False)
        ratio("catalog_page", 100, "catalog page (n=%d) ≥ 100× faster than Distribution" % p["catalog_page"],
              higher=False)
        ratio("catalog_full", 100, "full catalog listing ≥ 100× faster than Distribution", higher=False)
        ceiling("bget_big", "get", "blob GET %s ≥ 90%% of the ceiling" % human_size(p["big_blob"]))
        ceiling("up_mono_%d" % p["mono"][-1][0], "up", "monolithic upload ≥ 90% of the ceiling")
        ceiling("up_chunked", "up", "chunked upload ≥ 90% of the ceiling")
        rb = summary([r.get("peak_rss") for r in self.results.get("conc_up", {}).get("berth", [])])
        rd = summary([r.get("peak_rss") for r in self.results.get("conc_up", {}).get("dist", [])])
        if rb and rd:
            line("peak RSS under %d concurrent %s uploads ≤ 1/5 of Distribution's" % (
                p["conc_uploads"], human_size(p["conc_size"])), rb[0] <= rd[0] / 5 and not errors("conc_up"),
                "berth %s MiB, Distribution %s MiB (%s)" % (fmt(rb[0]), fmt(rd[0]), fmt_ratio(rd[0] / rb[0])))
        else:
            line("peak RSS under concurrent uploads ≤ 1/5 of Distribution's", None, "no data")
        return out


def main():
    ap = argparse.ArgumentParser(description="berth vs Distribution on one S3 server (RGW)")
    ap.add_argument("--smoke", action="store_true", help="every workload once, tiny durations and sizes")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--duration", type=int)
    ap.add_argument("--conns", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--berth")
    ap.add_argument("--workdir")
    ap.add_argument("--out")
    ap.add_argument("--only", help="comma-separated workload keys (as bench.py's, up_mono, conc_up, ceiling)")
    ap.add_argument("--keep", action="store_true", help="leave radosgw running and the work dir in place")
    args = ap.parse_args()
    args.against = None  # bench.py's A/B of two berth builds: Distribution is the other column here
    try:
        return S3Bench(args).main()
    except bench.BenchError as e:
        log("error: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())

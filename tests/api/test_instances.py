"""Several berth instances on one store, with and without one shared Redis
(storage.cache.blobdescriptor: redis): what one does, the other sees at once, whatever either
has cached; a chunked upload alternating between them completes; Redis killed mid-test costs
clients nothing; Sentinel's master is found and followed through a failover.

Real parts only: two `berth serve` processes on one filesystem root, Debian's redis-server
(tests/fixtures/s3/redis-up.sh) and redis-server --sentinel. With BERTH_STORAGE=s3 (run so by
tests/e2e/test_s3_suites.sh) the instances share one RGW bucket and rootdirectory instead: push
through one, pull through the other, a tag moved or a manifest, blob or repository deleted seen
at once, a chunked upload alternating (in whole 5 MiB parts and odd sizes); the tests that
write into a filesystem root behind berth's back are skipped there by name."""

import os
import shutil
import signal
import subprocess
import time
import unittest

import berthtest
from berthtest import tearDownModule  # noqa: F401

REDIS_UP = os.path.join(berthtest.SRC, "tests", "fixtures", "s3", "redis-up.sh")
HAVE_REDIS = shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def setUpModule():
    if not HAVE_REDIS:
        raise unittest.SkipTest("redis-server is not installed (scripts/install-deps.sh test installs it)")


class Redis:
    """A throw-away redis-server on a free loopback port (redis-up.sh), or a sentinel."""

    def __init__(self, tmp, name, sentinel_of=None):
        self.dir = os.path.join(tmp, name)
        self.port = berthtest.free_port()
        self.sentinel_of = sentinel_of
        self.start()

    def start(self):
        if self.sentinel_of is None:
            subprocess.run([REDIS_UP, self.dir, str(self.port)], check=True, timeout=30)
            return
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\npidfile %s/redis.pid\nlogfile %s/redis.log\n"
                    "daemonize yes\nsentinel monitor mymaster 127.0.0.1 %d 1\n"
                    "sentinel down-after-milliseconds mymaster 1000\n"
                    "sentinel failover-timeout mymaster 5000\n"
                    % (self.port, self.dir, self.dir, self.dir, self.sentinel_of.port))
        subprocess.run(["redis-server", conf, "--sentinel"], check=True, timeout=30)
        berthtest.wait_until(lambda: self.cli("ping") == "PONG", timeout=10)

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args), capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip()

    def pid(self):
        try:
            with open(os.path.join(self.dir, "redis.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0

    def stop(self):
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            berthtest.wait_until(lambda: not os.path.exists("/proc/%d" % pid), timeout=5)
            try:
                os.unlink(os.path.join(self.dir, "redis.pid"))
            except OSError:
                pass


def storage_lines(root):
    """The storage section's opening: the filesystem root, or (BERTH_STORAGE=s3) the bucket
    under a rootdirectory named after the root, so instances given one root share it."""
    if berthtest.s3_mode():
        # blobs served by berth, as the filesystem's (the redirects have their own tests)
        return (berthtest.s3_storage_yaml("/instances-" + root.strip("/").replace("/", "-"))
                + "  redirect: {disable: true}\n")
    return "storage:\n  filesystem: {rootdirectory: %s}\n" % root


def config(root, port, debug_port, redis_lines):
    return ("version: 0.1\n"
            "log: {level: info}\n"
            "%s"
            "  delete: {enabled: true}\n"
            "%s"
            "http:\n"
            "  addr: 127.0.0.1:%d\n"
            "  debug: {addr: '127.0.0.1:%d', prometheus: {enabled: true, path: /metrics}}\n"
            % (storage_lines(root), redis_lines, port, debug_port))


def filesystem_only(test):
    """A test that writes into the filesystem root behind berth's back."""
    def run(self):
        if berthtest.s3_mode():
            self.skipTest("writes into a filesystem root behind berth's back")
        return test(self)
    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


def redis_lines(redis):
    return ("  cache: {blobdescriptor: redis}\n"
            "redis:\n"
            "  addrs: [127.0.0.1:%d]\n"
            "  dialtimeout: 200ms\n"
            "  readtimeout: 200ms\n" % redis.port) if redis else "  cache: {blobdescriptor: inmemory}\n"


def spawn(tmp, name, root, lines):
    """berth serve with the config; returns the process, its debug port in .debug_port."""
    holder = {}

    def make(port):
        holder["debug"] = berthtest.free_port()
        path = os.path.join(tmp, name + ".yml")
        berthtest.write_file(path, config(root, port, holder["debug"], lines))
        return ["serve", path], None

    s = berthtest.spawn_berth(make, tmp)
    s.debug_port = holder["debug"]
    return s


def metric(s, name):
    """The value of a metric line starting with name on s's debug server (0 when absent)."""
    r = berthtest.Client("http://127.0.0.1:%d" % s.debug_port).get("/metrics")
    for line in r.body.decode().split("\n"):
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def image(c, repo, seed, tag):
    return c.push_image(repo, tag, layers=1, seed=seed)


class TwoInstances(berthtest.OpsTestCase):
    """Two berth processes on one root and one Redis."""
    with_redis = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = Redis(cls.tmp, "redis") if cls.with_redis else None
        root = os.path.join(cls.tmp, "root")
        lines = redis_lines(cls.redis)
        cls.a = spawn(cls.tmp, "a", root, lines)
        cls.b = spawn(cls.tmp, "b", root, lines)
        cls.ca, cls.cb = cls.a.client(), cls.b.client()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if cls.redis:
            cls.redis.stop()

    def manifest_digest(self, c, repo, ref):
        r = c.get("/v2/%s/manifests/%s" % (repo, ref), headers=berthtest.ACCEPT_ALL)
        return r.header("Docker-Content-Digest") if r.status == 200 else r.status

    def test_push_through_one_pull_through_the_other(self):
        repo = self.repo()
        img = image(self.ca, repo, "pp", "v1")
        self.assertEqual(self.manifest_digest(self.cb, repo, "v1"), img["digest"])
        for layer in img["layers"]:
            for _ in range(2):  # the second answer comes from the caches
                r = self.cb.get("/v2/%s/blobs/%s" % (repo, layer["digest"]))
                self.assertStatus(r, 200)
                self.assertEqual(berthtest.digest(r.body), layer["digest"])

    def test_chunked_upload_alternating_between_instances(self):
        repo = self.repo()
        chunks = [os.urandom(100 * 1024 + i) for i in range(5)]
        if berthtest.s3_mode():  # whole parts too (5 MiB: no copy), then odd sizes after them
            chunks = [os.urandom(5 << 20), os.urandom(5 << 20)] + chunks
        data = b"".join(chunks)
        r = self.ca.start_upload(repo)
        loc, offset = r.header("Location"), 0
        clients = [self.cb, self.ca]
        for i, chunk in enumerate(chunks):
            c = clients[i % 2]
            r = c.patch(c.resolve(loc), chunk, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": "%d-%d" % (offset, offset + len(chunk) - 1)})
            self.assertStatus(r, 202, "chunk %d through %s" % (i, "ab"[i % 2 == 0]))
            offset += len(chunk)
            self.assertEqual(r.header("Range"), "0-%d" % (offset - 1))
            loc = r.header("Location")
            # the other instance reports the same progress
            other = clients[(i + 1) % 2]
            st = other.get(other.resolve(loc))
            self.assertStatus(st, 204)
            self.assertEqual(st.header("Range"), "0-%d" % (offset - 1))
        d = berthtest.digest(data)
        r = self.cb.put(self.cb.resolve(loc, {"digest": d}), b"")
        self.assertStatus(r, 201)
        for c in (self.ca, self.cb):
            r = c.get("/v2/%s/blobs/%s" % (repo, d))
            self.assertStatus(r, 200)
            self.assertEqual(r.body, data)

    def test_tag_moved_through_one_is_seen_by_the_other_at_once(self):
        repo = self.repo()
        imgs = [image(self.ca, repo, "m%d" % i, None) for i in range(3)]
        # quickly, within the filesystem's one-second "racy" window and out of it
        for i in range(9):
            img = imgs[i % 3]
            self.ca.push_manifest(repo, "latest", img["manifest"])
            self.assertEqual(self.manifest_digest(self.cb, repo, "latest"), img["digest"], "move %d" % i)
            self.assertEqual(self.manifest_digest(self.cb, repo, "latest"), img["digest"])
            if i == 5:
                time.sleep(1.1)

    def test_manifest_deleted_through_one_is_gone_from_the_other_at_once(self):
        repo = self.repo()
        img = image(self.ca, repo, "del", "v1")
        for _ in range(2):  # cached by b
            self.assertEqual(self.manifest_digest(self.cb, repo, "v1"), img["digest"])
            self.assertEqual(self.manifest_digest(self.cb, repo, img["digest"]), img["digest"])
        self.assertStatus(self.ca.delete("/v2/%s/manifests/%s" % (repo, img["digest"])), 202)
        self.assertEqual(self.manifest_digest(self.cb, repo, img["digest"]), 404)
        self.assertEqual(self.manifest_digest(self.cb, repo, "v1"), 404)

    def test_blob_deleted_through_one_is_gone_from_the_other_at_once(self):
        repo = self.repo()
        d = self.ca.push_blob(repo, os.urandom(4096))
        for _ in range(2):
            self.assertStatus(self.cb.head("/v2/%s/blobs/%s" % (repo, d)), 200)
        self.assertStatus(self.ca.delete("/v2/%s/blobs/%s" % (repo, d)), 202)
        self.assertStatus(self.cb.head("/v2/%s/blobs/%s" % (repo, d)), 404)
        self.assertStatus(self.cb.get("/v2/%s/blobs/%s" % (repo, d)), 404)
        # pushed again through b: a sees it at once
        self.cb.push_blob(repo, b"again " + d.encode())
        self.assertStatus(self.ca.head("/v2/%s/blobs/%s" % (repo, berthtest.digest(b"again " + d.encode()))), 200)

    def test_tag_list_and_catalog_follow_the_other_instance_at_once(self):
        repo = self.repo()
        img = image(self.ca, repo, "tl", "one")

        def tags(c):
            r = c.get("/v2/%s/tags/list" % repo)
            return sorted(r.json()["tags"]) if r.status == 200 else r.status

        def catalog(c):
            return c.get("/v2/_catalog?n=1000").json()["repositories"]

        for round_ in range(2):  # the second round after the racy second has passed
            self.assertIn(repo, catalog(self.cb))
            self.assertEqual(tags(self.cb), ["one"])
            self.assertEqual(tags(self.cb), ["one"])
            self.ca.push_manifest(repo, "two", img["manifest"])
            self.assertEqual(tags(self.cb), ["one", "two"])
            self.assertStatus(self.ca.delete("/v2/%s/manifests/two" % repo), 202)
            self.assertEqual(tags(self.cb), ["one"])
            new_repo = "%s-new%d" % (repo, round_)
            self.assertNotIn(new_repo, catalog(self.cb))
            image(self.ca, new_repo, "c", "x")
            self.assertIn(new_repo, catalog(self.cb))
            time.sleep(1.1)

    def blob_dir(self, d):
        hexd = d.split(":", 1)[1]
        return os.path.join(self.tmp, "root", "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd)

    @filesystem_only
    def test_data_collected_behind_the_caches_is_written_again(self):
        """Blob and manifest data removed by a garbage collection while the instances had them
        cached: the next push writes them again (the check that skips the write asks storage,
        as Distribution's), instead of linking data that is gone."""
        repo = self.repo()
        data = os.urandom(3000)
        d = self.cb.push_blob(repo, data)
        img = image(self.cb, repo, "gc", "v1")
        for _ in range(2):  # sizes and descriptors cached, in the process and in Redis
            self.assertStatus(self.cb.head("/v2/%s/blobs/%s" % (repo, d)), 200)
            self.cb.push_manifest(repo, "v1", img["manifest"])
        # what a collection removes: the data and every link to it
        repo_dir = os.path.join(self.tmp, "root", "docker", "registry", "v2", "repositories", repo)
        shutil.rmtree(self.blob_dir(d))
        shutil.rmtree(os.path.join(repo_dir, "_layers", "sha256", d.split(":")[1]))
        shutil.rmtree(self.blob_dir(img["digest"]))
        shutil.rmtree(os.path.join(repo_dir, "_manifests"))
        if self.with_redis:
            self.redis.cli("del", "repository::%s::blobs" % repo)
        self.assertEqual(self.cb.push_blob(repo, data), d)
        self.cb.push_manifest(repo, "v1", img["manifest"])
        for c in (self.ca, self.cb):
            r = c.get("/v2/%s/blobs/%s" % (repo, d))
            self.assertStatus(r, 200)
            self.assertEqual(r.body, data)
            self.assertEqual(self.manifest_digest(c, repo, "v1"), img["digest"])

    @filesystem_only
    def test_repository_made_by_another_writer_is_listed(self):
        """A writer that is not a berth (Distribution on the same store, here a bare mkdir),
        which bumps no generation: the catalog lists it within 2 s (its directories are looked
        at that often)."""
        catalog = lambda: self.cb.get("/v2/_catalog?n=1000").json()["repositories"]  # noqa: E731
        catalog()
        name = self.repo("foreign")
        os.makedirs(os.path.join(self.tmp, "root", "docker", "registry", "v2", "repositories", name, "_layers"))
        self.assertTrue(berthtest.wait_until(lambda: name in catalog(), timeout=10))

    def test_repository_delete_through_one_is_seen_by_the_other(self):
        repo = self.repo()
        img = image(self.ca, repo, "rd", "v1")
        layer = img["layers"][0]["digest"]
        self.assertStatus(self.cb.head("/v2/%s/blobs/%s" % (repo, layer)), 200)
        self.assertIn(repo, self.cb.get("/v2/_catalog?n=1000").json()["repositories"])
        self.assertStatus(self.ca.delete("/v2/_berth/repositories/%s" % repo), 202)
        self.assertStatus(self.cb.head("/v2/%s/blobs/%s" % (repo, layer)), 404)
        self.assertEqual(self.manifest_digest(self.cb, repo, "v1"), 404)
        self.assertNotIn(repo, self.cb.get("/v2/_catalog?n=1000").json()["repositories"])

    def test_repository_deleted_then_pushed_again_is_listed_by_the_other_at_once(self):
        """a pushed the repository (it knows it exists), b deletes it, a pushes it again: a
        sees the delete and tells b's catalog (tests/unit/registry/test_catalog.c makes the
        same happen with the directories never looked at)."""
        repo = self.repo()
        catalog = lambda c: c.get("/v2/_catalog?n=1000").json()["repositories"]  # noqa: E731
        image(self.ca, repo, "again", "v1")
        self.assertIn(repo, catalog(self.cb))
        self.assertStatus(self.cb.delete("/v2/_berth/repositories/%s" % repo), 202)
        self.assertNotIn(repo, catalog(self.ca))
        self.assertNotIn(repo, catalog(self.cb))
        image(self.ca, repo, "again", "v2")
        self.assertIn(repo, catalog(self.cb))
        self.assertIn(repo, catalog(self.ca))

    def test_redis_holds_distributions_keys(self):
        if not self.with_redis:
            self.skipTest("no redis")
        repo = self.repo()
        d = self.ca.push_blob(repo, b"x" * 1234)
        hits = metric(self.b, 'berth_redis_cache_requests_total{result="hit"}')
        self.assertStatus(self.cb.head("/v2/%s/blobs/%s" % (repo, d)), 200)
        self.assertEqual(self.redis.cli("hget", "blobs::" + d, "size"), "1234")
        self.assertEqual(self.redis.cli("hget", "blobs::" + d, "digest"), d)
        self.assertEqual(self.redis.cli("sismember", "repository::%s::blobs" % repo, d), "1")
        # a looked up through Redis what b put there
        self.assertStatus(self.ca.head("/v2/%s/blobs/%s" % (repo, d)), 200)
        self.assertGreater(metric(self.a, 'berth_redis_cache_requests_total{result="hit"}'), 0)
        self.assertGreaterEqual(metric(self.b, 'berth_redis_cache_requests_total{result="hit"}'), hits)
        # deleted: Redis forgets it (Distribution's Clear), for every instance and Distribution
        self.assertStatus(self.ca.delete("/v2/%s/blobs/%s" % (repo, d)), 202)
        self.assertEqual(self.redis.cli("hget", "blobs::" + d, "digest"), "")
        self.assertEqual(self.redis.cli("sismember", "repository::%s::blobs" % repo, d), "0")


class TwoInstancesWithoutRedis(TwoInstances):
    """The same, with each instance's own in-memory caches only."""
    with_redis = False


class RedisOutage(berthtest.OpsTestCase):
    """Redis killed while two instances serve: clients see nothing; it is logged once and
    counted; Redis back, berth uses it again by itself."""

    def test_redis_killed_mid_test(self):
        redis = Redis(self.tmp, "redis-outage")
        self.addCleanup(redis.stop)
        root = os.path.join(self.tmp, "root-outage")
        a = spawn(self.tmp, "oa", root, redis_lines(redis))
        b = spawn(self.tmp, "ob", root, redis_lines(redis))
        self.addCleanup(berthtest.stop_spawned, a)
        self.addCleanup(berthtest.stop_spawned, b)
        ca, cb = a.client(), b.client()
        repo = "outage/app"
        image(ca, repo, "before", "v1")
        redis.stop()
        t0 = time.time()
        for i in range(6):
            img = image(ca if i % 2 else cb, repo, "during%d" % i, "v%d" % i)
            for c in (ca, cb):
                for layer in img["layers"]:
                    self.assertStatus(c.get("/v2/%s/blobs/%s" % (repo, layer["digest"])), 200)
                self.assertEqual(c.get("/v2/%s/manifests/v%d" % (repo, i),
                                       headers=berthtest.ACCEPT_ALL).header("Docker-Content-Digest"),
                                 img["digest"])
        self.assertLess(time.time() - t0, 10, "requests were held up by the outage")
        for s in (a, b):
            self.assertGreater(metric(s, "berth_redis_cache_errors_total"), 0)
            warned = [l for l in s.log_lines() if "redis cache" in l and "looking blobs up in storage" in l]
            self.assertEqual(len(warned), 1, s.describe())
        redis.start()

        def back():
            cb.head("/v2/%s/blobs/%s" % (repo, berthtest.digest(b"x")))
            image(cb, repo, "after%f" % time.time(), None)
            return b.wait_log("redis cache .*answering again", timeout=0.1)

        self.assertTrue(berthtest.wait_until(back, timeout=20, interval=0.3), b.describe())
        d = cb.push_blob(repo, b"after the outage")
        self.assertStatus(ca.head("/v2/%s/blobs/%s" % (repo, d)), 200)
        self.assertStatus(cb.head("/v2/%s/blobs/%s" % (repo, d)), 200)
        self.assertEqual(redis.cli("sismember", "repository::%s::blobs" % repo, d), "1")


class WithDistribution(berthtest.OpsTestCase):
    """Debian's docker-registry (Distribution 2.8.2) and berth on one root and one Redis: each
    reads what the other cached, and a blob deleted through berth is gone for Distribution too
    (Distribution trusts a repository's Redis membership without looking at storage)."""

    @filesystem_only
    def test_shared_redis_both_ways(self):
        binary = shutil.which("docker-registry")
        if not binary:
            self.skipTest("docker-registry is not installed")
        redis = Redis(self.tmp, "redis-dist")
        self.addCleanup(redis.stop)
        root = os.path.join(self.tmp, "root-dist")
        dport = berthtest.free_port()
        dcfg = berthtest.write_file(os.path.join(self.tmp, "dist.yml"), (
            "version: 0.1\nlog: {level: warn}\n"
            "storage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\n"
            "  cache: {blobdescriptor: redis}\n"
            "redis: {addr: '127.0.0.1:%d', dialtimeout: 200ms, readtimeout: 200ms}\n"
            "http: {addr: '127.0.0.1:%d', secret: berth-tests}\n") % (root, redis.port, dport))
        log = open(os.path.join(self.tmp, "dist.log"), "wb")
        dist = subprocess.Popen([binary, "serve", dcfg], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=berthtest.clean_env())
        log.close()
        self.addCleanup(lambda: (dist.kill(), dist.wait(10)))
        cd = berthtest.Client("http://127.0.0.1:%d" % dport)
        self.assertTrue(berthtest.wait_until(lambda: berthtest.port_open(dport), timeout=15))
        b = spawn(self.tmp, "with-dist", root, redis_lines(redis))
        self.addCleanup(berthtest.stop_spawned, b)
        cb = b.client()
        repo = "interop/app"

        # pushed through Distribution, which describes it in Redis: berth finds it there
        d1 = cd.push_blob(repo, b"pushed through distribution")
        self.assertStatus(cd.head("/v2/%s/blobs/%s" % (repo, d1)), 200)
        self.assertEqual(redis.cli("sismember", "repository::%s::blobs" % repo, d1), "1")
        hits = metric(b, 'berth_redis_cache_requests_total{result="hit"}')
        self.assertStatus(cb.head("/v2/%s/blobs/%s" % (repo, d1)), 200)
        self.assertEqual(metric(b, 'berth_redis_cache_requests_total{result="hit"}'), hits + 1)

        # pushed through berth and described by it: Distribution serves it
        d2 = cb.push_blob(repo, b"pushed through berth")
        self.assertStatus(cb.head("/v2/%s/blobs/%s" % (repo, d2)), 200)
        r = cd.get("/v2/%s/blobs/%s" % (repo, d2))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"pushed through berth")

        # deleted through berth: Distribution, which would trust Redis, finds it gone
        self.assertStatus(cb.delete("/v2/%s/blobs/%s" % (repo, d1)), 202)
        self.assertStatus(cd.head("/v2/%s/blobs/%s" % (repo, d1)), 404)
        # and deleted through Distribution: berth finds it gone
        self.assertStatus(cd.delete("/v2/%s/blobs/%s" % (repo, d2)), 202)
        self.assertStatus(cb.head("/v2/%s/blobs/%s" % (repo, d2)), 404)


class RedisConfiguration(berthtest.OpsTestCase):
    """What berth cannot do with the redis section is refused at start-up, by name."""

    def serve(self, text):
        path = berthtest.write_file(os.path.join(self.tmp, "refused.yml"),
                                    "version: 0.1\nstorage: {inmemory: ~}\nhttp: {addr: '127.0.0.1:%d'}\n%s"
                                    % (berthtest.free_port(), text))
        return berthtest.run_berth(["serve", path], timeout=10)

    def assertRefused(self, text, *needles):
        r = self.serve(text)
        self.assertEqual(r.returncode, 1, r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)

    def test_refusals(self):
        cache = "storage: {inmemory: ~, cache: {blobdescriptor: redis}}\n"
        self.assertRefused("redis: {addrs: [localhost:6379], tls: {certificate: /c.pem, key: /k.pem}}\n",
                           "redis.tls: refused", "hiredis")
        self.assertRefused("redis: {addr: localhost:6379, tls: {enabled: true}}\n", "redis.tls: refused")
        self.assertRefused(cache + "redis: {addrs: ['a:1', 'b:2']}\n", "redis.addrs", "Redis Cluster")
        self.assertRefused(cache + "redis: {addr: 'a:1', addrs: ['b:2']}\n", "redis.addr and redis.addrs")
        self.assertRefused(cache, "redis.addrs")
        self.assertRefused(cache + "redis: {addrs: ['host:notaport']}\n", "redis.addrs", "host:notaport")
        self.assertRefused(cache + "redis: {addr: 'a:1', mastername: m}\n", "redis.mastername")

    def test_unused_redis_is_said(self):
        # (TLS switched off explicitly asks for nothing: accepted)
        path = berthtest.write_file(os.path.join(self.tmp, "unused.yml"),
                                    "version: 0.1\nstorage: {inmemory: ~}\n"
                                    "redis: {addrs: ['127.0.0.1:1'], tls: {enabled: false}}\n")
        s = self.spawn(lambda p: (["serve", path, "--addr", "127.0.0.1:%d" % p], None))
        self.assertTrue(s.wait_log("redis is configured but not used"), s.describe())
        self.assertStatus(s.client().get("/v2/"), 200)


class Sentinel(berthtest.OpsTestCase):
    """redis.mastername: berth asks the sentinels (redis-server --sentinel) for the master,
    and follows it to the replica promoted by a failover."""

    def test_master_found_and_followed_through_a_failover(self):
        master = Redis(self.tmp, "master")
        self.addCleanup(master.stop)
        sentinel = Redis(self.tmp, "sentinel", sentinel_of=master)
        self.addCleanup(sentinel.stop)
        replica = Redis(self.tmp, "replica")
        self.addCleanup(replica.stop)
        replica.cli("replicaof", "127.0.0.1", str(master.port))
        lines = ("  cache: {blobdescriptor: redis}\n"
                 "redis:\n"
                 "  addrs: ['127.0.0.1:%d']\n"
                 "  mastername: mymaster\n"
                 "  dialtimeout: 200ms\n"
                 "  readtimeout: 200ms\n" % sentinel.port)
        s = spawn(self.tmp, "sentinel-berth", os.path.join(self.tmp, "root-sentinel"), lines)
        self.addCleanup(berthtest.stop_spawned, s)
        c = s.client()
        repo = "sentinel/app"
        d = c.push_blob(repo, b"first")
        self.assertStatus(c.head("/v2/%s/blobs/%s" % (repo, d)), 200)
        self.assertEqual(master.cli("sismember", "repository::%s::blobs" % repo, d), "1")
        # asked again until the sentinel knows the replica well enough to promote it
        def promoted():
            if sentinel.cli("sentinel", "get-master-addr-by-name", "mymaster").split("\n")[-1] != str(replica.port):
                sentinel.cli("sentinel", "failover", "mymaster")
                return False
            return replica.cli("role").startswith("master")

        self.assertTrue(berthtest.wait_until(promoted, timeout=30, interval=0.5),
                        sentinel.cli("sentinel", "replicas", "mymaster"))

        def written_to_new_master():
            d2 = c.push_blob(repo, b"after failover %f" % time.time())
            if c.head("/v2/%s/blobs/%s" % (repo, d2)).status != 200:
                return False
            return replica.cli("sismember", "repository::%s::blobs" % repo, d2) == "1"

        self.assertTrue(berthtest.wait_until(written_to_new_master, timeout=20, interval=0.3), s.describe())


if __name__ == "__main__":
    berthtest.main()

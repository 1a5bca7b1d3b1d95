"""Sustained load: a mixed concurrent push / pull / delete workload through real HTTP for
SOAK_SECONDS (default 20 here; `make soak` runs 300), then checks that

  - no request got an unexpected answer (every worker owns its repositories, so it knows what
    each request must return);
  - no file descriptor leaked: /proc/<pid>/fd counted before the load and after it, once every
    client connection is closed and berth is idle;
  - the resident set stops growing: VmRSS sampled every second after a warm-up; the maximum of
    the last third may exceed the maximum of the first third by at most SOAK_RSS_SLACK_MIB
    (default 6);
  - the store is consistent afterwards (`berth fsck`: nothing but orphan blobs, which deletes
    leave for garbage collection).

The workload per worker, chosen at random each step: push an image (config, a layer shared
with every worker, a few own layers, every upload style; tags from a bounded set, so the
store stops growing once content repeats), mount a shared layer from a base repository, pull
an image (manifest by tag and by digest, every blob, a ranged GET, HEADs), list tags and the
catalog, delete a tag or a manifest, start an upload and cancel it, or leave one unfinished,
or die in the middle of a PATCH and resume the session from a new connection. Besides its own
repositories, every worker also contends on one shared repository with the others: it puts
one of a few manifests on one of two tags, deletes a tag or a manifest by digest, uploads a
blob or deletes it, and pulls a tag; there, a PUT must answer 201, a DELETE 202 or 404, a GET
200 (with one of the manifests) or 404, whatever the interleaving.

Environment: SOAK_SECONDS, SOAK_WORKERS (default 6), SOAK_RSS_SLACK_MIB, SOAK_SEED.
"""

import http.client
import json
import os
import random
import threading
import time

import berthtest
from berthtest import setUpModule, tearDownModule  # noqa: F401
from hardening_lib import (HTTPError, Registry, assert_fsck, berth_serve_args, det_bytes, fd_count,
                           image, push_image, rss_kib, sha256, threads)

SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))
WORKERS = int(os.environ.get("SOAK_WORKERS", "6"))
SLACK_MIB = float(os.environ.get("SOAK_RSS_SLACK_MIB", "6"))
SEED = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 30))))
TAGS_PER_REPO = 6
IMAGES_PER_WORKER = 16  # distinct images a worker cycles through


class Worker(threading.Thread):
    def __init__(self, port, wid, shared, base_layers, stop, seed, contested):
        super().__init__(daemon=True)
        self.reg = Registry(port, timeout=30)
        self.wid = wid
        self.shared = shared
        self.base_layers = base_layers
        self.stop = stop
        self.rnd = random.Random(seed)
        self.repos = ["soak/w%d/app" % wid, "soak/w%d/lib/deep" % wid]
        self.tags = {}  # (repo, tag) -> manifest digest, as this worker left them
        self.manifests = {}  # digest -> manifest bytes
        self.blobs = {}  # repo -> set of digests it holds
        self.counts = {}
        self.errors = []
        self.contested = contested  # (repo, {digest: manifest}, [blob]) shared by every worker

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def image_for(self, n):
        # Image n is always the same bytes: the store, and berth's caches of links, sizes and
        # manifests, stop growing once every image has been pushed (their bounds are
        # 10000 descriptors and 4096 manifests; fresh content forever would fill them slowly
        # and look like a leak).
        rnd = random.Random("w%d image %d" % (self.wid, n))
        own = [det_bytes("w%d own %d/%d" % (self.wid, n, k), rnd.choice((512, 4096, 30000)))
               for k in range(rnd.randint(1, 3))]
        if n % 10 == 0:
            own.append(det_bytes("w%d big %d" % (self.wid, n), 1024 * 1024))
        return image("w%d image %d" % (self.wid, n), shared=[self.shared], unique_size=2000 + n,
                     extra_layers=own)

    # -- operations --
    def op_push(self):
        repo = self.rnd.choice(self.repos)
        tag = "t%d" % self.rnd.randrange(TAGS_PER_REPO)
        cfg, layers, man = self.image_for(self.rnd.randrange(IMAGES_PER_WORKER))
        d = push_image(self.reg, repo, tag, cfg, layers, man, rnd=self.rnd)
        if d != sha256(man):
            raise AssertionError("PUT manifest answered %s" % d)
        self.tags[(repo, tag)] = d
        self.manifests[d] = man
        self.blobs.setdefault(repo, set()).update([sha256(cfg)] + [sha256(l) for l in layers])
        self.count("push")

    def op_mount(self):
        repo = self.rnd.choice(self.repos)
        d = sha256(self.rnd.choice(self.base_layers))
        st, h, b = self.reg.request("POST", "/v2/%s/blobs/uploads/?mount=%s&from=soak/base" % (repo, d))
        if st != 201:
            raise HTTPError("mount %s into %s" % (d, repo), st, b)
        self.blobs.setdefault(repo, set()).add(d)
        self.count("mount")

    def op_pull(self):
        if not self.tags:
            return self.op_push()
        (repo, tag), d = self.rnd.choice(sorted(self.tags.items()))
        if self.reg.verify_image(repo, tag) != d:
            raise AssertionError("%s:%s is not the manifest this worker put there" % (repo, tag))
        body = self.reg.get_manifest(repo, d)
        if body != self.manifests[d]:
            raise AssertionError("manifest %s bytes differ" % d)
        st, h, _ = self.reg.request("HEAD", "/v2/%s/manifests/%s" % (repo, tag),
                                    headers=berthtest.ACCEPT_ALL)
        if st != 200 or h.get("Docker-Content-Digest") != d:
            raise HTTPError("HEAD manifest", st)
        m = json.loads(body)
        layer = self.rnd.choice(m["layers"])
        st, h, part = self.reg.request("GET", "/v2/%s/blobs/%s" % (repo, layer["digest"]),
                                       headers={"Range": "bytes=1-%d" % max(1, layer["size"] // 2)})
        if st != 206 or len(part) != max(1, layer["size"] // 2):
            raise HTTPError("ranged GET", st, part[:100])
        st, h, _ = self.reg.request("HEAD", "/v2/%s/blobs/%s" % (repo, layer["digest"]))
        if st != 200 or int(h.get("Content-Length", -1)) != layer["size"]:
            raise HTTPError("HEAD blob", st)
        self.count("pull")

    def op_list(self):
        repo = self.rnd.choice(self.repos)
        tags = set(self.reg.tags(repo))
        want = {t for (r, t) in self.tags if r == repo}
        if tags != want:
            raise AssertionError("tags of %s: %s, expected %s" % (repo, sorted(tags), sorted(want)))
        if self.rnd.random() < 0.2:
            cat = self.reg.catalog()
            missing = [r for (r, _) in self.tags if r not in cat]
            if missing:
                raise AssertionError("catalog lacks %s" % missing)
        self.count("list")

    def op_delete(self):
        if not self.tags:
            return
        (repo, tag), d = self.rnd.choice(sorted(self.tags.items()))
        if self.rnd.random() < 0.5:
            st, _, b = self.reg.request("DELETE", "/v2/%s/manifests/%s" % (repo, tag))
            if st != 202:
                raise HTTPError("DELETE tag %s:%s" % (repo, tag), st, b)
            del self.tags[(repo, tag)]
        else:
            st, _, b = self.reg.request("DELETE", "/v2/%s/manifests/%s" % (repo, d))
            if st != 202:
                raise HTTPError("DELETE manifest %s@%s" % (repo, d), st, b)
            for k in [k for k, v in self.tags.items() if k[0] == repo and v == d]:
                del self.tags[k]
            st, _, _ = self.reg.request("GET", "/v2/%s/manifests/%s" % (repo, d))
            if st != 404:
                raise HTTPError("GET deleted manifest", st)
        self.count("delete")

    def op_upload_cancel(self):
        repo = self.rnd.choice(self.repos)
        loc = self.reg.start_upload(repo)
        st, h, b = self.reg.request("PATCH", loc, os.urandom(self.rnd.randint(1, 50000)))
        if st != 202:
            raise HTTPError("PATCH", st, b)
        loc = self.reg.path_of(h["Location"])
        if self.rnd.random() < 0.8:
            st, _, b = self.reg.request("DELETE", loc)
            if st != 204:
                raise HTTPError("DELETE upload", st, b)
            st, _, _ = self.reg.request("GET", loc)
            if st != 404:
                raise HTTPError("GET cancelled upload", st)
            self.count("cancel")
        else:
            self.count("abandon")  # left for upload purging

    def op_client_dies_then_resumes(self):
        """A client dies mid-PATCH (its close riding on its last bytes) and its retry resumes the
        session: it must be free again within seconds, and the blob must come out whole."""
        repo = self.rnd.choice(self.repos)
        data = os.urandom(self.rnd.randint(70000, 3 << 20))
        loc = self.reg.start_upload(repo)
        sent = self.rnd.randint(2, len(data) - 1)
        self.reg.die_mid_body("PATCH", loc, data, sent)
        st, h, b, _ = self.reg.resume_after_death(loc, data, sent)
        if st != 202:
            raise HTTPError("resuming after the client died", st, b)
        st, _, b = self.reg.request("PUT", self.reg.with_query(self.reg.path_of(h["Location"]),
                                                               digest=sha256(data)), b"")
        if st != 201:
            raise HTTPError("PUT after resuming", st, b)
        self.blobs.setdefault(repo, set()).add(sha256(data))
        self.count("died-resumed")

    def op_contested(self):
        """One step on the repository every worker races on (see the top of this file)."""
        repo, manifests, blobs = self.contested
        tag = self.rnd.choice(("one", "two"))
        d = self.rnd.choice(sorted(manifests))
        blob = self.rnd.choice(blobs)
        step = self.rnd.randrange(6)
        if step == 0:
            what, allowed = "PUT %s:%s" % (repo, tag), (201,)
            st, _, b = self.reg.request("PUT", "/v2/%s/manifests/%s" % (repo, tag), manifests[d],
                                        {"Content-Type": berthtest.OCI_MANIFEST})
        elif step == 1:
            what, allowed = "DELETE %s:%s" % (repo, tag), (202, 404)
            st, _, b = self.reg.request("DELETE", "/v2/%s/manifests/%s" % (repo, tag))
        elif step == 2:
            what, allowed = "DELETE %s@%s" % (repo, d), (202, 404)
            st, _, b = self.reg.request("DELETE", "/v2/%s/manifests/%s" % (repo, d))
        elif step == 3:
            what, allowed = "upload of a contested blob", (201,)
            st, _, b = self.reg.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, sha256(blob)),
                                        blob, {"Content-Type": "application/octet-stream"})
        elif step == 4:
            what, allowed = "DELETE of a contested blob", (202, 404)
            st, _, b = self.reg.request("DELETE", "/v2/%s/blobs/%s" % (repo, sha256(blob)))
        else:
            what, allowed = "GET %s:%s" % (repo, tag), (200, 404)
            st, _, b = self.reg.request("GET", "/v2/%s/manifests/%s" % (repo, tag),
                                        headers={"Accept": berthtest.OCI_MANIFEST})
            if st == 200 and sha256(b) not in manifests:
                raise AssertionError("GET %s:%s gave a manifest never pushed" % (repo, tag))
        if st not in allowed:
            raise HTTPError(what, st, b)
        self.count("contested")

    def op_digest_mismatch(self):
        repo = self.rnd.choice(self.repos)
        data = os.urandom(1000)
        st, _, b = self.reg.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, sha256(b"other")), data)
        if st != 400 or b"DIGEST_INVALID" not in b:
            raise HTTPError("mismatched digest", st, b)
        self.count("mismatch")

    def run(self):
        ops = [(self.op_push, 30), (self.op_pull, 35), (self.op_list, 10), (self.op_mount, 5),
               (self.op_delete, 8), (self.op_upload_cancel, 8), (self.op_digest_mismatch, 4),
               (self.op_client_dies_then_resumes, 3), (self.op_contested, 30)]
        fns = [f for f, w in ops for _ in range(w)]
        while not self.stop.is_set():
            fn = self.rnd.choice(fns)
            try:
                fn()
            except (HTTPError, AssertionError, OSError, http.client.HTTPException) as e:
                self.errors.append("worker %d %s: %r" % (self.wid, fn.__name__, e))
                if len(self.errors) > 20:
                    break
        self.reg.close()


class SoakTest(berthtest.OpsTestCase):
    def test_soak(self):
        print("SOAK_SECONDS=%g workers=%d seed=%d" % (SECONDS, WORKERS, SEED))
        rnd = random.Random(SEED)
        root = self.path("root", "x")
        root = os.path.dirname(root)
        srv = self.spawn(lambda port: (berth_serve_args(root, port, "--delete"), {}))
        pid = srv.proc.pid
        setup = Registry(srv.port)
        shared = det_bytes("soak shared layer", 100 * 1024)
        base_layers = [det_bytes("soak base %d" % i, 20000 + i) for i in range(5)]
        for l in base_layers:
            setup.push_blob("soak/base", l)
        # the contested repository: its manifests' blobs are never deleted, only other blobs
        manifests = {}
        for k in range(3):
            config, layers, man = image("soak contested %d" % k, shared=[shared], unique_size=1000 + k)
            for blob in [config] + layers:
                setup.push_blob("soak/contested", blob)
            manifests[sha256(man)] = man
        contested = ("soak/contested", manifests,
                     [det_bytes("soak contested blob %d" % k, 5000 + k) for k in range(2)])
        setup.close()
        time.sleep(0.5)
        fds0 = fd_count(pid)
        threads0 = threads(pid)

        stop = threading.Event()
        workers = [Worker(srv.port, i, shared, base_layers, stop, rnd.random(), contested)
                   for i in range(WORKERS)]
        samples = []  # (seconds since start, VmRSS KiB)
        t0 = time.time()
        for w in workers:
            w.start()
        warmup = max(3.0, SECONDS * 0.1)
        while time.time() - t0 < SECONDS:
            time.sleep(1.0)
            el = time.time() - t0
            if el >= warmup:
                samples.append((el, rss_kib(pid)))
            if any(w.errors for w in workers) or not srv.alive():
                break
        stop.set()
        for w in workers:
            w.join(timeout=60)
        elapsed = time.time() - t0
        self.assertTrue(srv.alive(), "berth died under load:\n" + srv.describe())
        errors = [e for w in workers for e in w.errors]
        counts = {}
        for w in workers:
            for k, v in w.counts.items():
                counts[k] = counts.get(k, 0) + v
        print("%.0f s, %d operations: %s" % (elapsed, sum(counts.values()), counts))
        self.assertEqual(errors, [], "unexpected errors under load:\n" + "\n".join(errors[:20]))
        self.assertGreater(counts.get("push", 0), 0)

        # Quiesce: every client connection is closed; berth must be back to its descriptors.
        fds = berthtest.wait_until(lambda: fd_count(pid) <= fds0 and fd_count(pid), timeout=10) \
            or fd_count(pid)
        print("fds: %d before, %d after; threads: %d before, %d after" % (fds0, fds, threads0, threads(pid)))
        self.assertLessEqual(fds, fds0, "file descriptors leaked: %d before the load, %d after:\n%s"
                             % (fds0, fds, "\n".join(sorted(
                                 os.readlink("/proc/%d/fd/%s" % (pid, f))
                                 for f in os.listdir("/proc/%d/fd" % pid)))))
        self.assertLessEqual(threads(pid), threads0, "threads leaked")

        # The resident set levels off.
        self.assertGreaterEqual(len(samples), 6, "too few RSS samples")
        third = len(samples) // 3
        first = max(r for _, r in samples[:third])
        last = max(r for _, r in samples[-third:])
        print("VmRSS (KiB): first third max %d, last third max %d (%+d); all samples: %s"
              % (first, last, last - first, [r for _, r in samples]))
        # Under AddressSanitizer freed memory sits in its quarantine on purpose, so the resident
        # set grows by design; LeakSanitizer checks leaks there instead (at exit).
        if not os.environ.get("BERTH_SANITIZE"):
            self.assertLessEqual(last - first, SLACK_MIB * 1024,
                                 "the resident set keeps growing: %d KiB -> %d KiB" % (first, last))

        # The store holds together (berth is idle: fsck only reads).
        assert_fsck(self, root, ("orphan-blob",))
        self.assertEqual(srv.stop(), 0, "berth did not stop cleanly:\n" + srv.describe())


if __name__ == "__main__":
    berthtest.main()

#!/usr/bin/env python3
"""Garbage collection benchmark (make bench-gc; not part of make test or make bench).

Writes a store of 100,000 blobs and 10,000 manifests straight into Distribution's layout
(100 repositories of 100 image manifests, each with a config and 8 layers of its own; one
manifest in ten untagged, so --delete-untagged has 1,000 manifests and their 9,000 blobs to
delete, and 2,000 blobs no manifest ever referenced), then on identical copies of it:

  1. Distribution's offline `docker-registry garbage-collect --delete-untagged` (time);
  2. berth's offline `berth garbage-collect --delete-untagged --quiet` (time);
  3. one online collection inside `berth serve` with no traffic (storage.maintenance.gc, deleteuntagged,
     delay 1s), its duration read from berth_gc_last_duration_seconds;
  4. the p99 latency of manifest GETs by tag (wrk, random tags of every repository, keep-alive)
     on an idle berth, and on a berth whose collection runs back to back (interval 1s) during
     the measurement, with the share of that time the collection was running.

Every run checks its result: the same blobs are left by all three collections (none of the
tagged images' blobs missing, none of the garbage left). Prints a Markdown report (and writes
it to --out when given).
"""

import argparse
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPOS = 100
PER_REPO = 100
LAYERS = 8
UNTAGGED_EVERY = 10
ORPHANS = 2000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def log(msg):
    sys.stderr.write("gc-bench: %s\n" % msg)
    sys.stderr.flush()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def build_store(root):
    """The store, and (all blob digests, digests that must survive --delete-untagged)."""
    v2 = os.path.join(root, "docker", "registry", "v2")
    blobs, keep = set(), set()

    def blob(data):
        h = sha(data)
        write(os.path.join(v2, "blobs", "sha256", h[:2], h, "data"), data)
        blobs.add(h)
        return h

    for r in range(REPOS):
        repo = os.path.join(v2, "repositories", "bench", "r%03d" % r)
        for m in range(PER_REPO):
            tagged = m % UNTAGGED_EVERY != 0
            config = b'{"architecture":"amd64","os":"linux","seed":"%d-%d"}' % (r, m)
            layers = [b"layer %d of image %d of repository %d " % (i, m, r) * 4 for i in range(LAYERS)]
            digests = [blob(config)] + [blob(x) for x in layers]
            body = ('{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":'
                    '"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},'
                    '"layers":[%s]}' % (
                        OCI_MANIFEST, digests[0], len(config), ",".join(
                            '{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":'
                            '"sha256:%s","size":%d}' % (d, len(x)) for d, x in zip(digests[1:], layers)))
                    ).encode()
            md = blob(body)
            for d in digests:
                write(os.path.join(repo, "_layers", "sha256", d, "link"), b"sha256:" + d.encode())
            write(os.path.join(repo, "_manifests", "revisions", "sha256", md, "link"),
                  b"sha256:" + md.encode())
            if tagged:
                tag = os.path.join(repo, "_manifests", "tags", "t%03d" % m)
                write(os.path.join(tag, "current", "link"), b"sha256:" + md.encode())
                write(os.path.join(tag, "index", "sha256", md, "link"), b"sha256:" + md.encode())
                keep.update(digests + [md])
    for i in range(ORPHANS):
        blob(b"orphan %d" % i)
    # old enough for any delay
    old = time.time() - 2 * 86400
    for h in blobs:
        os.utime(os.path.join(v2, "blobs", "sha256", h[:2], h, "data"), (old, old))
    return blobs, keep


def blobs_left(root):
    base = os.path.join(root, "docker", "registry", "v2", "blobs", "sha256")
    left = set()
    for xx in os.listdir(base):
        for h in os.listdir(os.path.join(base, xx)):
            if os.path.exists(os.path.join(base, xx, h, "data")):
                left.add(h)
    return left


def copy(src, dst):
    subprocess.run(["rm", "-rf", dst], check=True)
    subprocess.run(["cp", "-a", src, dst], check=True)
    # warm the page cache the same way for every run
    subprocess.run(["find", dst, "-type", "f", "-exec", "cat", "{}", "+"], check=True,
                   stdout=subprocess.DEVNULL)


def timed(cmd):
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("%s failed: %s" % (" ".join(cmd), r.stderr[-2000:]))
    return dt


def dist_config(path, root):
    with open(path, "w") as f:
        f.write("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                "    rootdirectory: %s\n  delete:\n    enabled: true\n" % root)


def berth_config(path, root, port, dport, interval):
    with open(path, "w") as f:
        f.write("version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n"
                "storage:\n  filesystem:\n    rootdirectory: %s\n  maintenance:\n"
                "    uploadpurging:\n      enabled: false\n    gc:\n      enabled: true\n"
                "      interval: %s\n      delay: 1s\n      deleteuntagged: true\n"
                "http:\n  addr: 127.0.0.1:%d\n  debug:\n    addr: 127.0.0.1:%d\n"
                "    prometheus:\n      enabled: true\n" % (root, interval, port, dport))


def metric(dport, name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % dport, timeout=10).read().decode()
    m = re.search(r"^%s(?:\{[^}]*\})? ([0-9.e+-]+)$" % re.escape(name), body, re.M)
    return float(m.group(1)) if m else None


def sample_running(dport, out, seconds):
    """berth_gc_running every 50 ms for `seconds`: the share of the time a run was going."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(metric(dport, "berth_gc_running") or 0)
        time.sleep(0.05)


def serve(berth, cfg, logpath, port):
    logf = open(logpath, "wb")
    p = subprocess.Popen([berth, "serve", cfg], stdout=logf, stderr=subprocess.STDOUT)
    logf.close()
    for _ in range(500):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/v2/" % port, timeout=1)
            return p
        except OSError:
            time.sleep(0.02)
    p.kill()
    raise SystemExit("berth did not start: " + open(logpath).read()[-2000:])


WRK_SCRIPT = """
math.randomseed(os.time())
local tagged = {}
for m = 0, %d do if m %% %d ~= 0 then tagged[#tagged + 1] = m end end
request = function()
  local path = string.format("/v2/bench/r%%03d/manifests/t%%03d", math.random(0, %d), tagged[math.random(#tagged)])
  return wrk.format("GET", path, {["Accept"] = "%s"})
end
""" % (PER_REPO - 1, UNTAGGED_EVERY, REPOS - 1, OCI_MANIFEST)


def wrk_p99(port, seconds, script):
    r = subprocess.run(["wrk", "-t2", "-c8", "-d%ds" % seconds, "--latency", "-s", script,
                        "http://127.0.0.1:%d" % port], capture_output=True, text=True, check=True)
    m = re.search(r"^\s+99%\s+([0-9.]+)(us|ms|s)\s*$", r.stdout, re.M)
    reqs = re.search(r"Requests/sec:\s+([0-9.]+)", r.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if non2xx:
        raise SystemExit("wrk: %s non-2xx answers:\n%s" % (non2xx.group(1), r.stdout))
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return float(m.group(1)) * scale, float(reqs.group(1))


def main():
    global REPOS, WRK_SCRIPT
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "..", "build", "berth"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--seconds", type=int, default=10, help="each latency measurement")
    ap.add_argument("--out", default=None)
    ap.add_argument("--repos", type=int, default=REPOS, help="fewer for a quick try (100 each)")
    a = ap.parse_args()
    WRK_SCRIPT = WRK_SCRIPT.replace("math.random(0, %d)" % (REPOS - 1), "math.random(0, %d)" % (a.repos - 1))
    REPOS = a.repos
    berth = os.path.abspath(a.berth)
    work = a.workdir or tempfile.mkdtemp(prefix="berth-gc-bench-")
    os.makedirs(work, exist_ok=True)
    script = os.path.join(work, "tags.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    try:
        seed = os.path.join(work, "seed")
        log("writing the store (%d blobs, %d manifests)" % (
            REPOS * PER_REPO * (LAYERS + 2) + ORPHANS, REPOS * PER_REPO))
        t0 = time.monotonic()
        blobs, keep = build_store(seed)
        log("%d blobs written in %.0fs" % (len(blobs), time.monotonic() - t0))
        res = {}
        store = os.path.join(work, "store")

        log("Distribution: docker-registry garbage-collect --delete-untagged")
        copy(seed, store)
        cfg = os.path.join(work, "dist.yml")
        dist_config(cfg, store)
        res["dist"] = timed(["docker-registry", "garbage-collect", "--delete-untagged", cfg])
        log("  %.2fs" % res["dist"])
        dist_left = blobs_left(store)

        log("berth garbage-collect --delete-untagged (offline)")
        copy(seed, store)
        res["offline"] = timed([berth, "garbage-collect", "--delete-untagged", "--quiet", "--root", store])
        log("  %.2fs" % res["offline"])
        offline_left = blobs_left(store)

        log("idle manifest GET p99")
        copy(seed, store)
        port, dport = free_port(), free_port()
        cfg = os.path.join(work, "berth.yml")
        berth_config(cfg, store, port, dport, "1h")
        p = serve(berth, cfg, os.path.join(work, "idle.log"), port)
        try:
            wrk_p99(port, 2, script)  # warm-up
            res["idle_p99"], res["idle_rps"] = wrk_p99(port, a.seconds, script)
            log("  p99 %.2f ms" % res["idle_p99"])
        finally:
            p.terminate()
            p.wait(30)

        # The run time is taken with no traffic, as Distribution's offline run is; the GETs'
        # p99 on a fresh copy while a collection runs (at low priority, so that run is longer).
        log("online collection, no traffic")
        port, dport = free_port(), free_port()
        berth_config(cfg, store, port, dport, "1s")
        p = serve(berth, cfg, os.path.join(work, "online-idle.log"), port)
        try:
            while metric(dport, "berth_gc_runs_total") < 1:
                time.sleep(0.1)
        finally:
            p.terminate()
            p.wait(600)
        online_left = blobs_left(store)
        first = re.search(r"garbage collection: done in ([0-9.]+)s.*",
                          open(os.path.join(work, "online-idle.log")).read())
        res["online"] = float(first.group(1))
        res["online_line"] = first.group(0)
        log("  %.2fs" % res["online"])

        log("online collection, with manifest GETs during it")
        copy(seed, store)
        port, dport = free_port(), free_port()
        berth_config(cfg, store, port, dport, "1s")
        p = serve(berth, cfg, os.path.join(work, "online.log"), port)
        try:
            # the first run starts a second after start-up: measure from its start
            while metric(dport, "berth_gc_running") != 1:
                time.sleep(0.01)
            samples = []
            sampler = threading.Thread(target=sample_running, args=(dport, samples, a.seconds))
            sampler.start()
            res["busy_p99"], res["busy_rps"] = wrk_p99(port, a.seconds, script)
            sampler.join()
            res["busy_share"] = sum(samples) / max(1, len(samples))
            while metric(dport, "berth_gc_runs_total") < 1:
                time.sleep(0.1)
            res["runs"] = metric(dport, "berth_gc_runs_total")
        finally:
            p.terminate()
            p.wait(600)
        busy_left = blobs_left(store)
        busy = re.search(r"garbage collection: done in ([0-9.]+)s", open(os.path.join(work, "online.log")).read())
        res["online_busy"] = float(busy.group(1))

        for name, left in (("Distribution", dist_left), ("berth offline", offline_left),
                           ("berth online", online_left), ("berth online under GETs", busy_left)):
            if left != keep:
                raise SystemExit("%s left %d blobs, expected %d (missing %d, extra %d)" % (
                    name, len(left), len(keep), len(keep - left), len(left - keep)))

        rows = [
            "## Garbage collection: %d blobs, %d manifests (%d repositories)" % (
                len(blobs), REPOS * PER_REPO, REPOS),
            "",
            "%d manifests untagged and %d blobs to delete (%d unreferenced from the start); "
            "each collection left exactly the %d blobs of the tagged images." % (
                REPOS * PER_REPO // UNTAGGED_EVERY, len(blobs) - len(keep), ORPHANS, len(keep)),
            "",
            "| run | time | vs Distribution |",
            "|---|---|---|",
            "| Distribution 2.8 `docker-registry garbage-collect --delete-untagged` (offline) | %.2f s | 1 |" % res["dist"],
            "| `berth garbage-collect --delete-untagged` (offline) | %.2f s | %.1fx faster |" % (
                res["offline"], res["dist"] / res["offline"]),
            "| berth online collection (first run inside `berth serve`, no traffic) | %.2f s | %.1fx faster |" % (
                res["online"], res["dist"] / res["online"]),
            "| the same while wrk -t2 -c8 GETs manifests (collection yields: low priority) | %.2f s | %.1fx faster |" % (
                res["online_busy"], res["dist"] / res["online_busy"]),
            "",
            "| manifest GET by tag (wrk -t2 -c8, random tags) | p99 | req/s |",
            "|---|---|---|",
            "| idle | %.2f ms | %.0f |" % (res["idle_p99"], res["idle_rps"]),
            "| collection running (during %.0f%% of the measurement; %d runs by its end) | %.2f ms (%.2fx idle) | %.0f |" % (
                100 * res["busy_share"], res["runs"] or 0, res["busy_p99"],
                res["busy_p99"] / res["idle_p99"], res["busy_rps"]),
            "",
            "Targets: one run at least 10x faster than Distribution's offline collection: %s; "
            "p99 of manifest GETs while it runs at most 2x idle: %s." % (
                "met" if res["dist"] / res["online"] >= 10 else "NOT met",
                "met" if res["busy_p99"] <= 2 * res["idle_p99"] else "NOT met"),
            "",
            "First online run's log line: `%s`" % res["online_line"].strip(),
        ]
        report = "\n".join(rows) + "\n"
        sys.stdout.write(report)
        if a.out:
            with open(a.out, "w") as f:
                f.write(report)
    finally:
        if not a.workdir:
            subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

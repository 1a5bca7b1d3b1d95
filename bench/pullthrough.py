"""The pull-through cache rows of the benchmark (issue 18), run by bench.py (stdlib only).

berth and Distribution (docker-registry with a `proxy` section) cache the same upstream, a
docker-registry on loopback with its access log on, holding the skopeo rows' small and big
images. Rows: skopeo pulls of each image through each cache, cold (a fresh process over an
empty store) and warm (the first pull after a cold one cached it), with two references in the same
alternation: the pull straight from the upstream and the pull of the same image from a hosted
repository of berth (the main berth of the other rows); and a burst of concurrent cold pulls
of the big image, with the most upstream GETs any of its blobs got (the upstream's access log).
Targets: warm as fast as hosted, cold at most 10% slower than straight from the upstream, one
upstream GET per blob in the burst.
"""
import os
import re
import shutil
import subprocess
import time

import bench

KINDS = ("small", "big")
REFS = {"up": "straight from the upstream", "hosted": "berth, hosted repository"}
# "As fast as": a warm pull may take this much longer than the hosted one and still count.
WARM_SLACK = 1.05
COLD_SLACK = 1.10


def dist_proxy_config(root, port, upstream):
    return bench.DIST_CONFIG.format(root=root, port=port) + "proxy:\n  remoteurl: http://%s\n" % upstream


class Upstream(bench.Distribution):
    """docker-registry holding the images, its access log on: the burst counts its GETs."""
    kind = "up"

    def cmd(self):
        cfg = os.path.join(self.work, "upstream-config.yml")
        with open(cfg, "w") as f:
            f.write(bench.DIST_CONFIG.format(root=self.root, port=self.port)
                    .replace("    disabled: true", "    disabled: false"))
        return ["docker-registry", "serve", cfg]


class BerthCache(bench.Berth):
    """berth with proxy.remoteurl; reset() starts it afresh over an empty store."""

    def __init__(self, work, root, binary, upstream, kind="berth", threads=None):
        super().__init__(work, root, binary, threads)
        self.kind, self.upstream = kind, upstream
        self.log_path = os.path.join(work, "%s-cache.log" % kind)

    def cmd(self):
        cfg = os.path.join(self.work, "%s-cache.yml" % self.kind)
        with open(cfg, "w") as f:
            f.write("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                    "proxy:\n  remoteurl: http://%s\n" % (self.root, self.upstream))
        return super().cmd()[:2] + [cfg] + super().cmd()[2:]


class DistCache(bench.Distribution):
    def __init__(self, work, root, upstream):
        super().__init__(work, root)
        self.upstream = upstream
        self.log_path = os.path.join(work, "dist-cache.log")

    def cmd(self):
        cfg = os.path.join(self.work, "dist-cache.yml")
        with open(cfg, "w") as f:
            f.write(dist_proxy_config(self.root, self.port, self.upstream))
        return ["docker-registry", "serve", cfg]


def reset(s):
    """Stops a cache, empties its store and starts it again: the next pull is cold."""
    s.stop()
    bench.rm_rf(s.root)
    os.makedirs(s.root)
    s.start()


class PullThrough:
    def __init__(self, b):
        self.b = b
        self.srv = {}
        self.burst_gets = {}  # (server kind, run) -> the most upstream GETs of one blob

    def start(self):
        """Starts the upstream, loads it with the skopeo rows' images, starts both caches."""
        b = self.b
        work = os.path.join(b.work, "proxy")
        os.makedirs(work, exist_ok=True)
        up = Upstream(work, os.path.join(work, "upstream"))
        up.start()
        self.srv["up"] = up
        for kind in KINDS:
            bench.run_cmd(["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false",
                           "oci:%s:latest" % b.fx["skopeo_pull_" + kind],
                           "docker://127.0.0.1:%d/skopeo/%s:pull" % (up.port, kind)])
        upstream = "127.0.0.1:%d" % up.port
        self.srv["berth"] = BerthCache(work, os.path.join(work, "cache-berth"), b.berth_bin, upstream,
                                       threads=b.args.threads)
        if b.against_bin:
            self.srv["dist"] = BerthCache(work, os.path.join(work, "cache-dist"), b.against_bin, upstream,
                                          kind="dist", threads=b.args.threads)
        else:
            self.srv["dist"] = DistCache(work, os.path.join(work, "cache-dist"), upstream)
        for k in ("berth", "dist"):
            os.makedirs(self.srv[k].root, exist_ok=True)
            self.srv[k].start()
        self.srv["hosted"] = b.servers["berth"]  # holds skopeo/<kind>:pull, the same images

    def stop(self):
        for k in ("berth", "dist", "up"):
            if k in self.srv:
                self.srv[k].stop()

    def pull(self, s, kind):
        b = self.b
        d = os.path.join(b.work, "img", "proxy-pulled-%s-%s" % (kind, s.kind))
        shutil.rmtree(d, ignore_errors=True)
        try:
            t0 = time.perf_counter()
            b.skopeo("--src-tls-verify=false", "docker://127.0.0.1:%d/skopeo/%s:pull" % (s.port, kind), "dir:" + d)
            return time.perf_counter() - t0
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def w_pull(self, s, i, kind):
        return {"value": self.pull(s, kind)}

    def is_cache(self, s):
        return s is self.srv["berth"] or s is self.srv["dist"]

    def prep_cold(self, s, i):
        if self.is_cache(s):
            reset(s)
        os.sync()  # no run starts beside the writeback of the one before

    def prep_warm(self, s, i, kind):
        """The pull measured is the first one after a cold pull cached the image (what the next
        client of a cache gets), not a second one that reads what the first left in memory."""
        if self.is_cache(s):
            reset(s)
        self.pull(s, kind)
        os.sync()  # the cold pull's writes (the client's and the cache's) are done before

    def upstream_gets(self, since):
        """GETs of each blob in the upstream's access log after byte offset since."""
        with open(self.srv["up"].log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        gets = {}
        for m in re.finditer(r'"GET /v2/[^ ]*/blobs/(sha256:[0-9a-f]{64}) ', text):
            gets[m.group(1)] = gets.get(m.group(1), 0) + 1
        return gets

    def w_burst(self, s, i):
        b, n = self.b, b_burst(self.b)
        since = os.path.getsize(self.srv["up"].log_path)
        outs = [os.path.join(b.work, "img", "burst-%s-%d" % (s.kind, k)) for k in range(n)]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                                   "docker://127.0.0.1:%d/skopeo/big:pull" % s.port, "dir:" + d],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for d in outs]
        errs = [p.communicate(timeout=900)[1] for p in procs]
        spent = time.perf_counter() - t0
        for d in outs:
            shutil.rmtree(d, ignore_errors=True)
        failed = [e for p, e in zip(procs, errs) if p.returncode != 0]
        if failed:
            b.note("burst on %s: %d of %d pulls failed, e.g. %s" % (
                bench.LABEL[s.kind], len(failed), n, failed[0].decode("utf-8", "replace").strip()[-200:]))
        time.sleep(0.2)  # the upstream's last access lines
        gets = self.upstream_gets(since)
        self.burst_gets[(s.kind, i)] = max(gets.values()) if gets else None
        return {"value": spent, "errors": len(failed), "info": "upstream GETs per blob: %s" % (
            ", ".join(str(v) for v in sorted(gets.values(), reverse=True)) or "none")}

    def w_burst_gets(self, s, i):
        """The burst row's count, as a row of its own (measured by the burst run just before)."""
        return {"value": self.burst_gets.get((s.kind, i))}

    def workloads(self, add):
        b = self.b
        for kind in KINDS:
            title = "%s image (%d layers, %s)" % (kind, len(b.p["skopeo_" + kind]),
                                                  bench.human_size(sum(b.p["skopeo_" + kind])))
            add("proxy_cold_%s" % kind, "pull-through cache, cold pull, %s" % title,
                "skopeo, empty cache (fresh process)", "s", False,
                lambda s, i, kind=kind: self.w_pull(s, i, kind), servers=("berth", "dist", "up"),
                tool="skopeo", srv=self.srv, prep=self.prep_cold)
            add("proxy_warm_%s" % kind, "pull-through cache, warm pull, %s" % title,
                "skopeo, all cached", "s", False,
                lambda s, i, kind=kind: self.w_pull(s, i, kind), servers=("berth", "dist", "hosted"),
                tool="skopeo", srv=self.srv, prep=lambda s, i, kind=kind: self.prep_warm(s, i, kind))
        n = b_burst(b)
        add("proxy_burst", "pull-through cache, %d concurrent cold pulls of the big image" % n,
            "%d skopeo at once, empty cache" % n, "s", False, self.w_burst, tool="skopeo", srv=self.srv,
            prep=self.prep_cold)
        add("proxy_burst_gets", "pull-through cache, upstream GETs of one blob in that burst (most)",
            "upstream access log", "GETs", False, self.w_burst_gets, tool="skopeo", srv=self.srv)

    def references(self, results):
        """The reference table: each pull beside straight from the upstream and hosted."""
        L = ["### Pull-through cache beside its references\n",
             "Medians (min-max) in seconds of the same skopeo pulls, run in the same alternation: straight "
             "from the upstream (the cold pull's reference) and from a hosted repository of berth (the warm "
             "pull's).\n",
             "| image | %s | berth cold | Distribution cold | %s | berth warm | Distribution warm |" % (
                 REFS["up"], REFS["hosted"]),
             "|---|---|---|---|---|---|---|"]
        for kind in KINDS:
            cold, warm = results.get("proxy_cold_" + kind, {}), results.get("proxy_warm_" + kind, {})

            def cell(res, k):
                s = bench.summary([r.get("value") for r in res.get(k, [])])
                return "–" if not s else ("%s (%s–%s)" % (bench.fmt(s[0]), bench.fmt(s[1]), bench.fmt(s[2]))
                                          if s[3] > 1 else bench.fmt(s[0]))
            L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                kind, cell(cold, "up"), cell(cold, "berth"), cell(cold, "dist"), cell(warm, "hosted"),
                cell(warm, "berth"), cell(warm, "dist")))
        L.append("")
        return L

    def targets(self, results, line):
        def med(key, kind):
            s = bench.summary([r.get("value") for r in results.get(key, {}).get(kind, [])])
            return s[0] if s else None

        def errors(key):
            return sum(r.get("errors") or 0 for v in results.get(key, {}).values() for r in v)

        def slower_than(key, ref, slack, desc, ref_name):
            b, r = med(key, "berth"), med(key, ref)
            if b is None or r is None:
                line(desc, None, "no data")
            else:
                line(desc, b <= slack * r and not errors(key), "berth %s s, %s %s s: %+.0f%%" % (
                    bench.fmt(b), ref_name, bench.fmt(r), 100 * (b / r - 1)))

        for kind in KINDS:
            slower_than("proxy_cold_" + kind, "up", COLD_SLACK,
                        "pull-through cold pull, %s image, ≤ %d%% slower than straight from the upstream" % (
                            kind, round((COLD_SLACK - 1) * 100)), "upstream")
        for kind in KINDS:
            slower_than("proxy_warm_" + kind, "hosted", WARM_SLACK,
                        "pull-through warm pull, %s image, as fast as a hosted pull (within %d%%)" % (
                            kind, round((WARM_SLACK - 1) * 100)), "hosted")
        runs = [r.get("value") for r in results.get("proxy_burst_gets", {}).get("berth", [])]
        desc = "pull-through burst of %d cold pulls: each blob fetched from the upstream once" % b_burst(self.b)
        if not runs or any(v is None for v in runs):
            line(desc, None, "no data")
        else:
            d = [r.get("value") for r in results.get("proxy_burst_gets", {}).get("dist", [])]
            line(desc, max(runs) == 1 and not errors("proxy_burst"),
                 "most GETs of one blob in any run: berth %d, Distribution %s" % (
                     max(runs), max(v for v in d if v is not None) if any(v is not None for v in d) else "–"))


def b_burst(b):
    return b.p["proxy_burst"]

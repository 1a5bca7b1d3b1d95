#!/usr/bin/env python3
"""berth and CNCF Distribution side by side (stdlib only). See bench/README.md.

Starts berth and Distribution (and nginx, as a reference for raw blob serving)
on their own loopback ports over filesystem storage on the same disk, loads the
same fixtures into both, runs every workload against both alternately
(berth, Distribution, [nginx], berth, Distribution, ...), and writes a markdown
report with the median and min-max of each workload and server and the ratio
berth : Distribution.
"""
import argparse
import datetime
import hashlib
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import httpc  # noqa: E402
import mkimage  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
D2_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
D2_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, D2_MANIFEST, D2_LIST])

PROFILES = {
    "full": dict(
        runs=5, duration=5, conns=32, wrk_threads=2, big_conns=4, slow_conns=4, ab_max=1000000,
        small_blob=1 * KiB, big_blob=100 * MiB, range_len=1 * MiB,
        mono=[(1 * MiB, 50), (10 * MiB, 15), (100 * MiB, 3)],
        chunk=5 * MiB, chunked_total=100 * MiB, chunked_count=3,
        skopeo_small=[2 * MiB, 512 * KiB, 64 * KiB],
        skopeo_big=[5 * MiB, 15 * MiB, 30 * MiB, 50 * MiB], proxy_burst=20,
        mixed=[10, 100], mixed_duration=6, mixed_procs=2, mixed_images=8,
        mixed_layers=[4 * KiB, 32 * KiB, 256 * KiB], mixed_base=256 * KiB, mixed_new=32 * KiB,
        catalog_repos=10000, tags=10000, catalog_page=1000, catalog_listings=3,
        startup_runs=5, startup_settle=1.0, sha_seconds=3),
    "smoke": dict(
        runs=1, duration=1, conns=8, wrk_threads=2, big_conns=2, slow_conns=2, ab_max=3000,
        small_blob=1 * KiB, big_blob=2 * MiB, range_len=64 * KiB,
        mono=[(64 * KiB, 3), (256 * KiB, 3), (1 * MiB, 2)],
        chunk=256 * KiB, chunked_total=1 * MiB, chunked_count=2,
        skopeo_small=[16 * KiB, 4 * KiB], skopeo_big=[256 * KiB, 256 * KiB], proxy_burst=4,
        mixed=[4, 16], mixed_duration=1, mixed_procs=2, mixed_images=2,
        mixed_layers=[4 * KiB, 16 * KiB], mixed_base=16 * KiB, mixed_new=8 * KiB,
        catalog_repos=300, tags=300, catalog_page=100, catalog_listings=1,
        startup_runs=1, startup_settle=0.3, sha_seconds=1),
}

LABEL = {"berth": "berth", "dist": "Distribution", "nginx": "nginx", "up": "the upstream", "hosted": "berth hosted"}
T0 = time.monotonic()


def log(msg):
    sys.stderr.write("[bench +%5.0fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


class BenchError(Exception):
    pass


def human_size(n):
    if n >= MiB and n % MiB == 0:
        return "%d MiB" % (n // MiB)
    if n >= KiB and n % KiB == 0:
        return "%d KiB" % (n // KiB)
    return "%d B" % n


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def system_busy_seconds():
    """CPU seconds all cores spent busy (user, nice, system, irq, softirq, steal) since boot."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_seconds():
    """CPU seconds of this process and of its waited-for children (wrk, ab, skopeo, client processes)."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def proc_cpu_seconds(pid):
    """(user, system) CPU seconds of a process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        return int(rest[11]) / tck, int(rest[12]) / tck
    except (OSError, ValueError, IndexError):
        return None


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run_cmd(cmd, timeout=600, check=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise BenchError("%s exited %d: %s" % (cmd[0], p.returncode, (p.stderr or p.stdout).strip()[-400:]))
    return p


def rm_rf(path):
    """rm -rf: several times faster than shutil.rmtree on trees of many small files."""
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)


def tool_version(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        line = p.stdout.strip().splitlines()[0] if p.stdout.strip() else "?"
        for junk in (" Copyright", " (Library:", " <$Revision"):
            line = line.split(junk)[0]
        return line.replace("This is ApacheBench, Version", "ApacheBench").replace("nginx version: ", "")
    except (OSError, subprocess.SubprocessError):
        return "not installed"


# ---------------------------------------------------------------- servers

class Server:
    kind = "?"
    ready_any_status = False

    def __init__(self, work, root):
        self.work, self.root = work, root
        self.port = free_port()
        self.proc = None
        self.logf = None
        self.log_path = os.path.join(work, "%s.log" % self.kind)

    def cmd(self):
        raise NotImplementedError

    def env(self):
        return dict(os.environ)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd(), stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env(), start_new_session=True)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        path = "/" if self.ready_any_status else "/v2/"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with %s at start; see %s" % (self.kind, self.proc.returncode, self.log_path))
            c = httpc.Conn(self.port, timeout=2)
            try:
                st, _, _ = c.request("GET", path)
                if st == 200 or self.ready_any_status:
                    return
            except OSError:
                pass
            finally:
                c.close()
            time.sleep(0.02)
        raise BenchError("%s not ready on port %d after %.0fs" % (self.kind, self.port, timeout))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.logf:
            self.logf.close()
            self.logf = None

    def restart(self):
        self.stop()
        self.start()


class Berth(Server):
    kind = "berth"

    def __init__(self, work, root, binary, threads=None):
        super().__init__(work, root)
        self.binary, self.threads = binary, threads

    def cmd(self):
        c = [self.binary, "serve", "--addr", "127.0.0.1:%d" % self.port, "--root", self.root,
             "--delete", "--no-access-log", "--log-level", "warn"]
        if self.threads:
            c += ["--threads", str(self.threads)]
        return c


class OtherBerth(Berth):
    """--against: another berth binary in Distribution's place, for A/B runs of two builds."""
    kind = "dist"


DIST_CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: berth-bench-not-a-secret
  headers:
    X-Content-Type-Options: [nosniff]
"""


class Distribution(Server):
    kind = "dist"

    def cmd(self):
        cfg = os.path.join(self.work, "dist-config.yml")
        with open(cfg, "w") as f:
            f.write(DIST_CONFIG.format(root=self.root, port=self.port))
        return ["docker-registry", "serve", cfg]


NGINX_CONFIG = """worker_processes {workers};
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 75s;
    keepalive_requests 1000000000;
    default_type application/octet-stream;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


class Nginx(Server):
    kind = "nginx"
    ready_any_status = True

    def cmd(self):
        d = os.path.join(self.work, "nginx")
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        cfg = os.path.join(d, "nginx.conf")
        with open(cfg, "w") as f:
            f.write(NGINX_CONFIG.format(workers=len(os.sched_getaffinity(0)), dir=d, port=self.port,
                                        root=self.root, user="user root;" if os.geteuid() == 0 else ""))
        return ["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", cfg]


# ---------------------------------------------------------------- resident memory sampling

class RssSampler(threading.Thread):
    """Samples VmRSS of the watched pids every 50 ms and keeps the highest value since reset()."""

    def __init__(self, interval=0.05):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = {}
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def reset(self, pid):
        with self.lock:
            self.peak[pid] = proc_status_kib(pid, "VmRSS") or 0

    def take(self, pid):
        v = proc_status_kib(pid, "VmRSS") or 0
        with self.lock:
            p = max(self.peak.pop(pid, 0), v)
        return p

    def run(self):
        while not self.halt.wait(self.interval):
            with self.lock:
                pids = list(self.peak)
            for pid in pids:
                v = proc_status_kib(pid, "VmRSS")
                if v is not None:
                    with self.lock:
                        if pid in self.peak and v > self.peak[pid]:
                            self.peak[pid] = v


# ---------------------------------------------------------------- registry client helpers

def expect(st, want, what):
    if st not in (want if isinstance(want, tuple) else (want,)):
        raise BenchError("%s: HTTP %d, want %s" % (what, st, want))


def push_blob(c, repo, data, skip_existing=True):
    d = sha(data)
    if skip_existing:
        st, _, _ = c.request("HEAD", "/v2/%s/blobs/%s" % (repo, d))
        if st == 200:
            return d
        expect(st, 404, "HEAD blob")
    st, h, _ = c.request("POST", "/v2/%s/blobs/uploads/" % repo)
    expect(st, 202, "POST upload")
    st, _, body = c.request("PUT", httpc.with_query(httpc.relative(h["location"]), "digest", d),
                            headers=[("Content-Type", "application/octet-stream")], body=data)
    expect(st, 201, "PUT upload")
    return d


def put_manifest(c, repo, ref, body, media_type=OCI_MANIFEST):
    st, _, resp = c.request("PUT", "/v2/%s/manifests/%s" % (repo, ref),
                            headers=[("Content-Type", media_type)], body=body)
    if st != 201:
        raise BenchError("PUT manifest %s:%s: HTTP %d %s" % (repo, ref, st, resp[:200]))
    return sha(body)


def image_manifest(config_bytes, layers):
    """layers: list of (digest, size). Returns manifest bytes."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER_TAR, "digest": d, "size": n} for d, n in layers],
    }, sort_keys=True).encode()


def image_config(tag, diff_ids):
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["TAG=" + tag]},
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()


# ---------------------------------------------------------------- mixed pull/push workload (client processes)

def mixed_pull(c, spec, rnd):
    repo = spec["pull_repo"]
    tag = rnd.choice(spec["tags"])
    st, _, body = c.request("GET", "/v2/%s/manifests/%s" % (repo, tag), headers=[("Accept", ACCEPT)])
    expect(st, 200, "GET manifest")
    m = json.loads(body)
    for desc in [m["config"]] + m["layers"]:
        st, _, n = c.request("GET", "/v2/%s/blobs/%s" % (repo, desc["digest"]), sink=True)
        expect(st, 200, "GET blob")
        if n != desc["size"]:
            raise BenchError("GET blob: %d bytes, want %d" % (n, desc["size"]))


def mixed_push(c, spec, name):
    repo = spec["push_repo"]
    layer = name.encode().ljust(64, b".") + spec["new_body"]
    ld = sha(layer)
    cfg = image_config(name, [spec["base"][0], ld])
    blobs = [(spec["base"][0], None), (ld, layer), (sha(cfg), cfg)]
    for d, data in blobs:
        st, _, _ = c.request("HEAD", "/v2/%s/blobs/%s" % (repo, d))
        if st == 200:
            continue
        expect(st, 404, "HEAD blob")
        if data is None:
            raise BenchError("base layer missing in %s" % repo)
        st, h, _ = c.request("POST", "/v2/%s/blobs/uploads/" % repo)
        expect(st, 202, "POST upload")
        st, _, _ = c.request("PUT", httpc.with_query(httpc.relative(h["location"]), "digest", d),
                             headers=[("Content-Type", "application/octet-stream")], body=data)
        expect(st, 201, "PUT upload")
    manifest = image_manifest(cfg, [spec["base"], (ld, len(layer))])
    st, _, _ = c.request("PUT", "/v2/%s/manifests/%s" % (repo, name),
                         headers=[("Content-Type", OCI_MANIFEST)], body=manifest)
    expect(st, 201, "PUT manifest")


def mixed_proc(spec, k, nthreads, start_evt, deadline_val, q):
    out = [None] * nthreads

    def worker(tid):
        rnd = random.Random("%s/%d/%d" % (spec["runid"], k, tid))
        c = httpc.Conn(spec["port"], timeout=60)
        pulls = pushes = errors = 0
        errs = []
        n = 0
        start_evt.wait()
        deadline = deadline_val.value
        while time.monotonic() < deadline:
            try:
                if rnd.random() < spec["pull_share"]:
                    mixed_pull(c, spec, rnd)
                    done = "pull"
                else:
                    mixed_push(c, spec, "%s-%d-%d-%d" % (spec["runid"], k, tid, n))
                    done = "push"
                n += 1
                if time.monotonic() <= deadline:
                    if done == "pull":
                        pulls += 1
                    else:
                        pushes += 1
            except Exception as e:  # every failure counts; the connection starts afresh
                errors += 1
                if len(errs) < 3:
                    errs.append("%s: %s" % (type(e).__name__, e))
                c.close()
        c.close()
        out[tid] = (pulls, pushes, errors, errs)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pulls = sum(o[0] for o in out)
    pushes = sum(o[1] for o in out)
    errors = sum(o[2] for o in out)
    errs = [e for o in out for e in o[3]][:5]
    q.put((k, pulls, pushes, errors, errs))


# ---------------------------------------------------------------- the benchmark

class Bench:
    def __init__(self, args):
        self.args = args
        self.p = dict(PROFILES["smoke" if args.smoke else "full"])
        for key in ("runs", "duration", "conns"):
            if getattr(args, key) is not None:
                self.p[key] = getattr(args, key)
        self.work = os.path.abspath(args.workdir or os.path.join(HERE, ".work", "smoke" if args.smoke else "full"))
        self.results = {}        # workload key -> server kind -> [run dict]
        self.extra = {}          # row key -> server kind -> [values]
        self.notes = []
        self.servers = {}
        self.proxy = None        # the pull-through cache rows (pullthrough.py), when they run
        self.sampler = RssSampler()
        self.rand_cache = {}
        self.tools = {t: shutil.which(t) is not None for t in ("wrk", "ab", "nginx", "skopeo", "openssl")}
        if args.against:
            self.tools["nginx"] = False   # an A/B of two berth builds needs no file-serving reference

    # -- utilities

    def rand(self, n):
        if n not in self.rand_cache:
            self.rand_cache[n] = os.urandom(n)
        return self.rand_cache[n]

    def note(self, msg):
        log("note: " + msg)
        if msg not in self.notes:
            self.notes.append(msg)

    def v2root(self, kind):
        return os.path.join(self.servers[kind].root, "docker", "registry", "v2")

    def manifest_path(self, s, reference):
        """The manifest's URL; for nginx, its bytes as a file (the manifest's blob data)."""
        if s.kind == "nginx":
            return self.blob_path(s, self.fx["manifest_d"])
        return "/v2/bench/blobs/manifests/" + reference

    def blob_path(self, s, digest, repo="bench/blobs"):
        if s.kind == "nginx":
            hexd = digest.split(":", 1)[1]
            return "/docker/registry/v2/blobs/sha256/%s/%s/data" % (hexd[:2], hexd)
        return "/v2/%s/blobs/%s" % (repo, digest)

    def drop_blobs(self, kind, digests, repo):
        """Deletes uploaded blobs from disk so repeated upload runs do not fill it."""
        v2 = self.v2root(kind)
        for d in digests:
            hexd = d.split(":", 1)[1]
            shutil.rmtree(os.path.join(v2, "blobs", "sha256", hexd[:2], hexd), ignore_errors=True)
            shutil.rmtree(os.path.join(v2, "repositories", repo, "_layers", "sha256", hexd), ignore_errors=True)

    # -- load generators

    def wrk(self, port, path, conns=None, headers=()):
        conns = conns or self.p["conns"]
        d = self.p["duration"]
        cmd = ["wrk", "-t%d" % min(self.p["wrk_threads"], conns), "-c%d" % conns, "-d%ds" % d,
               "--timeout", "30s", "--latency"]
        for k, v in headers:
            cmd += ["-H", "%s: %s" % (k, v)]
        cmd.append("http://127.0.0.1:%d%s" % (port, path))
        out = run_cmd(cmd, timeout=d + 120).stdout
        return parse_wrk(out)

    def ab(self, port, path, headers=()):
        csv = os.path.join(self.work, "ab.csv")
        cmd = ["ab", "-q", "-k", "-i", "-c", str(self.p["conns"]), "-t", str(self.p["duration"]),
               "-n", str(self.p["ab_max"]), "-s", "30", "-e", csv]
        for k, v in headers:
            cmd += ["-H", "%s: %s" % (k, v)]
        cmd.append("http://127.0.0.1:%d%s" % (port, path))
        out = run_cmd(cmd, timeout=self.p["duration"] + 120).stdout
        return parse_ab(out, csv)

    # -- fixtures

    def make_fixtures(self):
        p = self.p
        fx = {}
        fx["small"] = os.urandom(p["small_blob"])
        fx["big"] = os.urandom(p["big_blob"])
        fx["small_d"], fx["big_d"] = sha(fx["small"]), sha(fx["big"])
        fx["cfg"] = image_config("latest", [fx["small_d"], fx["big_d"]])
        fx["manifest"] = image_manifest(fx["cfg"], [(fx["small_d"], len(fx["small"])),
                                                    (fx["big_d"], len(fx["big"]))])
        fx["manifest_d"] = sha(fx["manifest"])
        # mixed workload: images to pull, and the base layer every push shares
        fx["mixed_images"] = []
        for i in range(p["mixed_images"]):
            layers = [os.urandom(n) for n in p["mixed_layers"]]
            tag = "v%d" % i
            cfg = image_config(tag, [sha(x) for x in layers])
            fx["mixed_images"].append((tag, cfg, layers, image_manifest(cfg, [(sha(x), len(x)) for x in layers])))
        fx["mixed_base"] = os.urandom(p["mixed_base"])
        fx["mixed_new"] = os.urandom(p["mixed_new"])
        # skopeo pull images
        if self.tools["skopeo"]:
            for kind in ("small", "big"):
                d = os.path.join(self.work, "img", "pull-" + kind)
                mkimage.make_layout(d, "pull-" + kind, p["skopeo_" + kind])
                fx["skopeo_pull_" + kind] = d
        self.fx = fx

    def seed_on_disk(self, roots):
        """Writes the catalog's repositories and the big tag list straight into the storage layout
        of every root (identical trees, one thread per root): a small image's blobs;
        catalog_repos repositories catalog/r-NNNNN, each holding that image's layer (as a
        repository does once a blob was pushed to it); and bench/tags, holding the image under
        `tags` tags. Metadata operations are slow on some virtual disks, so the link files of a
        root are hard links to one file per content (the servers only read them) and tags carry
        only their current link (the index/ links matter only for deletes)."""
        p = self.p
        layer = b"bench seed layer\n" * 64
        cfg = image_config("seed", [sha(layer)])
        man = image_manifest(cfg, [(sha(layer), len(layer))])
        ld, cd, md = sha(layer), sha(cfg), sha(man)

        def one(root):
            v2 = os.path.join(root, "docker", "registry", "v2")
            src = os.path.join(os.path.dirname(root), "seed-links-" + os.path.basename(root))
            os.makedirs(src, exist_ok=True)
            links = {}
            for d in (ld, cd, md):
                links[d] = os.path.join(src, d[7:])
                with open(links[d], "w") as f:
                    f.write(d)
            for d, data in ((ld, layer), (cd, cfg), (md, man)):
                hexd = d[7:]
                os.makedirs(os.path.join(v2, "blobs", "sha256", hexd[:2], hexd))
                with open(os.path.join(v2, "blobs", "sha256", hexd[:2], hexd, "data"), "wb") as f:
                    f.write(data)
            repos = os.path.join(v2, "repositories")
            os.makedirs(os.path.join(repos, "catalog"))
            for i in range(p["catalog_repos"]):
                r = os.path.join(repos, "catalog", "r-%05d" % i)
                os.mkdir(r)
                os.mkdir(r + "/_layers")
                os.mkdir(r + "/_layers/sha256")
                os.mkdir(r + "/_layers/sha256/" + ld[7:])
                os.link(links[ld], r + "/_layers/sha256/" + ld[7:] + "/link")
            r = os.path.join(repos, "bench", "tags")
            for d in (ld, cd):
                os.makedirs(r + "/_layers/sha256/" + d[7:])
                os.link(links[d], r + "/_layers/sha256/" + d[7:] + "/link")
            os.makedirs(r + "/_manifests/revisions/sha256/" + md[7:])
            os.link(links[md], r + "/_manifests/revisions/sha256/" + md[7:] + "/link")
            os.makedirs(r + "/_manifests/tags")
            for i in range(p["tags"]):
                t = r + "/_manifests/tags/t-%05d" % i
                os.mkdir(t)
                os.mkdir(t + "/current")
                os.link(links[md], t + "/current/link")

        errors = []

        def guarded(root):
            try:
                one(root)
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=guarded, args=(r,)) for r in roots]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        self.seed_manifest_d = md

    def load_fixtures(self, s):
        fx = self.fx
        c = httpc.Conn(s.port)
        try:
            for data in (fx["small"], fx["big"], fx["cfg"]):
                push_blob(c, "bench/blobs", data)
            put_manifest(c, "bench/blobs", "latest", fx["manifest"])
            for tag, cfg, layers, man in fx["mixed_images"]:
                for data in layers + [cfg]:
                    push_blob(c, "mixed/pull", data)
                put_manifest(c, "mixed/pull", tag, man)
            push_blob(c, "mixed/push", fx["mixed_base"])
        finally:
            c.close()
        if self.tools["skopeo"]:
            for kind in ("small", "big"):
                run_cmd(["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false",
                         "oci:%s:latest" % fx["skopeo_pull_" + kind],
                         "docker://127.0.0.1:%d/skopeo/%s:pull" % (s.port, kind)])

    def sanity(self, s):
        """Checks that every URL the workloads hit answers as it should, so nothing measures 404s."""
        fx, p = self.fx, self.p
        c = httpc.Conn(s.port)
        problems = []

        def chk(cond, what):
            if not cond:
                problems.append(what)

        try:
            if s.kind == "nginx":
                st, _, body = c.request("GET", self.blob_path(s, fx["small_d"]))
                chk(st == 200 and body == fx["small"], "GET small blob: %d" % st)
                st, _, body = c.request("GET", self.blob_path(s, fx["big_d"]), headers=[self.range_hdr()])
                chk(st == 206 and len(body) == p["range_len"], "ranged GET: %d, %d bytes" % (st, len(body)))
            else:
                st, _, _ = c.request("GET", "/v2/")
                chk(st == 200, "GET /v2/: %d" % st)
                for ref in ("latest", fx["manifest_d"]):
                    st, _, body = c.request("GET", "/v2/bench/blobs/manifests/" + ref, headers=[("Accept", ACCEPT)])
                    chk(st == 200 and body == fx["manifest"], "GET manifest %s: %d" % (ref, st))
                    st, h, _ = c.request("HEAD", "/v2/bench/blobs/manifests/" + ref, headers=[("Accept", ACCEPT)])
                    chk(st == 200, "HEAD manifest %s: %d" % (ref, st))
                st, h, _ = c.request("HEAD", self.blob_path(s, fx["small_d"]))
                chk(st == 200 and h.get("content-length") == str(len(fx["small"])), "HEAD blob: %d" % st)
                st, _, body = c.request("GET", self.blob_path(s, fx["small_d"]))
                chk(st == 200 and body == fx["small"], "GET small blob: %d" % st)
                st, _, n = c.request("GET", self.blob_path(s, fx["big_d"]), sink=True)
                chk(st == 200 and n == len(fx["big"]), "GET big blob: %d, %d bytes" % (st, n))
                st, _, body = c.request("GET", self.blob_path(s, fx["big_d"]), headers=[self.range_hdr()])
                off = len(fx["big"]) // 2
                chk(st == 206 and body == fx["big"][off:off + p["range_len"]], "ranged GET: %d, %d bytes" % (st, len(body)))
                st, _, body = c.request("GET", "/v2/bench/tags/tags/list")
                n = len(json.loads(body).get("tags") or []) if st == 200 else -1
                chk(n == p["tags"], "tags list: %d, %d tags" % (st, n))
                st, _, body = c.request("GET", "/v2/_catalog?n=%d" % p["catalog_page"])
                n = len(json.loads(body).get("repositories") or []) if st == 200 else -1
                # catalog_repos are seeded; the fixtures' own repositories come on top.
                chk(min(p["catalog_page"], p["catalog_repos"]) <= n <= p["catalog_page"],
                    "catalog page: %d, %d repositories" % (st, n))
                st, _, body = c.request("GET", "/v2/mixed/pull/manifests/v0", headers=[("Accept", ACCEPT)])
                chk(st == 200, "GET mixed manifest: %d" % st)
        finally:
            c.close()
        for pr in problems:
            self.note("sanity check on %s failed: %s" % (LABEL[s.kind], pr))

    def range_hdr(self):
        off = self.p["big_blob"] // 2
        return ("Range", "bytes=%d-%d" % (off, off + self.p["range_len"] - 1))

    # -- workloads (each returns a dict: value, and optionally p99 [ms], errors, info)

    def w_upload_mono(self, s, i, size, count):
        common = self.rand(size - 16)
        h0 = hashlib.sha256(common)
        c = httpc.Conn(s.port)
        spent, digests = 0.0, []
        os.sync()
        try:
            for _ in range(count):
                suffix = os.urandom(16)
                h = h0.copy()
                h.update(suffix)
                d = "sha256:" + h.hexdigest()
                t0 = time.perf_counter()
                st, hd, _ = c.request("POST", "/v2/bench/upload/blobs/uploads/")
                expect(st, 202, "POST upload")
                st, _, _ = c.request("PUT", httpc.with_query(httpc.relative(hd["location"]), "digest", d),
                                     headers=[("Content-Type", "application/octet-stream")], body=[common, suffix])
                expect(st, 201, "PUT upload")
                spent += time.perf_counter() - t0
                digests.append(d)
        finally:
            c.close()
            self.drop_blobs(s.kind, digests, "bench/upload")
        return {"value": count * size / spent / 1e6}

    def w_upload_chunked(self, s, i):
        total, chunk, count = self.p["chunked_total"], self.p["chunk"], self.p["chunked_count"]
        common = self.rand(total - 16)
        h0 = hashlib.sha256(common)
        c = httpc.Conn(s.port)
        spent, digests = 0.0, []
        os.sync()
        try:
            for _ in range(count):
                suffix = os.urandom(16)
                h = h0.copy()
                h.update(suffix)
                d = "sha256:" + h.hexdigest()
                mv = memoryview(common + suffix)
                t0 = time.perf_counter()
                st, hd, _ = c.request("POST", "/v2/bench/upload/blobs/uploads/")
                expect(st, 202, "POST upload")
                url = httpc.relative(hd["location"])
                off = 0
                while off < total:
                    n = min(chunk, total - off)
                    st, hd, _ = c.request("PATCH", url, headers=[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", "%d-%d" % (off, off + n - 1))], body=mv[off:off + n])
                    expect(st, 202, "PATCH chunk")
                    url = httpc.relative(hd["location"])
                    off += n
                st, _, _ = c.request("PUT", httpc.with_query(url, "digest", d))
                expect(st, 201, "PUT upload")
                spent += time.perf_counter() - t0
                digests.append(d)
        finally:
            c.close()
            self.drop_blobs(s.kind, digests, "bench/upload")
        return {"value": count * total / spent / 1e6}

    def skopeo(self, *args):
        return run_cmd(["skopeo", "--insecure-policy", "copy", "-q"] + list(args), timeout=900)

    def w_skopeo_push(self, s, i, kind):
        d = os.path.join(self.work, "img", "push-%s-%s-%d" % (kind, s.kind, i))
        shutil.rmtree(d, ignore_errors=True)
        mkimage.make_layout(d, "push-%s-%s-%d-%d" % (kind, s.kind, i, time.time_ns()), self.p["skopeo_" + kind])
        os.sync()
        try:
            t0 = time.perf_counter()
            self.skopeo("--dest-tls-verify=false", "oci:%s:latest" % d,
                        "docker://127.0.0.1:%d/skopeo/%s:push-%d" % (s.port, kind, i))
            return {"value": time.perf_counter() - t0}
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def w_skopeo_pull(self, s, i, kind):
        d = os.path.join(self.work, "img", "pulled-%s-%s-%d" % (kind, s.kind, i))
        shutil.rmtree(d, ignore_errors=True)
        try:
            t0 = time.perf_counter()
            self.skopeo("--src-tls-verify=false", "docker://127.0.0.1:%d/skopeo/%s:pull" % (s.port, kind), "dir:" + d)
            return {"value": time.perf_counter() - t0}
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def w_mixed(self, s, i, conc):
        fx = self.fx
        spec = {
            "port": s.port, "pull_repo": "mixed/pull", "push_repo": "mixed/push",
            "tags": [t for t, _, _, _ in fx["mixed_images"]],
            "base": (sha(fx["mixed_base"]), len(fx["mixed_base"])), "new_body": fx["mixed_new"],
            "pull_share": 0.75, "runid": "%s%d-%d-%d" % (s.kind, i, conc, time.time_ns() % 1000000),
        }
        ctx = multiprocessing.get_context("fork")
        nprocs = max(1, min(self.p["mixed_procs"], conc))
        start_evt, deadline = ctx.Event(), ctx.Value("d", 0.0)
        q = ctx.Queue()
        procs = []
        for k in range(nprocs):
            n = conc // nprocs + (1 if k < conc % nprocs else 0)
            procs.append(ctx.Process(target=mixed_proc, args=(spec, k, n, start_evt, deadline, q), daemon=True))
        for pr in procs:
            pr.start()
        time.sleep(0.3)  # let the threads reach the start line
        dur = self.p["mixed_duration"]
        deadline.value = time.monotonic() + dur
        start_evt.set()
        got = []
        try:
            for _ in procs:
                got.append(q.get(timeout=dur + 180))
        finally:
            for pr in procs:
                pr.join(5)
                if pr.is_alive():
                    pr.kill()
        pulls = sum(g[1] for g in got)
        pushes = sum(g[2] for g in got)
        errors = sum(g[3] for g in got)
        errs = [e for g in got for e in g[4]]
        if errs:
            self.note("mixed c=%d on %s: %d errors, e.g. %s" % (conc, LABEL[s.kind], errors, errs[0]))
        return {"value": (pulls + pushes) / dur, "errors": errors,
                "info": "%d pulls, %d pushes" % (pulls, pushes)}

    def w_catalog_full(self, s, i):
        c = httpc.Conn(s.port)
        times, counts = [], set()
        try:
            for _ in range(self.p["catalog_listings"]):
                t0 = time.perf_counter()
                url, total = "/v2/_catalog?n=%d" % self.p["catalog_page"], 0
                while url:
                    st, h, body = c.request("GET", url)
                    expect(st, 200, "GET catalog page")
                    repos = json.loads(body).get("repositories") or []
                    total += len(repos)
                    m = re.match(r"\s*<([^>]*)>", h.get("link", ""))
                    url = httpc.relative(m.group(1)) if (m and repos) else None
                times.append(time.perf_counter() - t0)
                counts.add(total)
        finally:
            c.close()
        errors = 0 if all(n >= self.p["catalog_repos"] for n in counts) else 1
        return {"value": statistics.median(times) * 1000, "errors": errors,
                "info": "%s repositories" % "/".join(str(n) for n in sorted(counts))}

    def workloads(self):
        p = self.p
        fx = self.fx
        c, t, d = p["conns"], p["wrk_threads"], p["duration"]
        lw = "wrk -t%d -c%d -d%ds" % (min(t, c), c, d)
        lab = "ab -k -c%d -t%ds" % (c, d)
        acc = [("Accept", ACCEPT)]
        W = []

        def add(key, title, load, unit, higher, fn, servers=("berth", "dist"), tool=None, p99=False, srv=None,
                prep=None):
            # srv: the servers of the row by kind (default the main ones); prep(s, i): set-up before
            # a run, not measured
            W.append(dict(key=key, title=title, load=load, unit=unit, higher=higher, fn=fn,
                          servers=servers, tool=tool, p99=p99, srv=srv, prep=prep))

        ng = ("berth", "dist", "nginx") if self.tools["nginx"] else ("berth", "dist")
        add("base", "GET /v2/", lw, "req/s", True, lambda s, i: self.wrk(s.port, "/v2/"), tool="wrk", p99=True)
        add("mget_tag", "manifest GET by tag", lw, "req/s", True,
            lambda s, i: self.wrk(s.port, self.manifest_path(s, "latest"), headers=acc), servers=ng,
            tool="wrk", p99=True)
        add("mget_digest", "manifest GET by digest", lw, "req/s", True,
            lambda s, i: self.wrk(s.port, self.manifest_path(s, fx["manifest_d"]), headers=acc), servers=ng,
            tool="wrk", p99=True)
        add("mhead_tag", "manifest HEAD by tag", lab, "req/s", True,
            lambda s, i: self.ab(s.port, "/v2/bench/blobs/manifests/latest", headers=acc), tool="ab", p99=True)
        add("mhead_digest", "manifest HEAD by digest", lab, "req/s", True,
            lambda s, i: self.ab(s.port, "/v2/bench/blobs/manifests/" + fx["manifest_d"], headers=acc),
            tool="ab", p99=True)
        add("bhead", "blob HEAD", lab, "req/s", True,
            lambda s, i: self.ab(s.port, self.blob_path(s, fx["small_d"])), tool="ab", p99=True)
        add("bget_small", "blob GET %s" % human_size(p["small_blob"]), lw, "req/s", True,
            lambda s, i: self.wrk(s.port, self.blob_path(s, fx["small_d"])), servers=ng, tool="wrk", p99=True)
        bc = p["big_conns"]
        add("bget_big", "blob GET %s" % human_size(p["big_blob"]),
            "wrk -t%d -c%d -d%ds" % (min(t, bc), bc, d), "MB/s", True,
            lambda s, i: mbps(self.wrk(s.port, self.blob_path(s, fx["big_d"]), conns=bc)),
            servers=ng, tool="wrk")
        add("bget_range", "blob ranged GET (%s of %s)" % (human_size(p["range_len"]), human_size(p["big_blob"])),
            lw, "req/s", True,
            lambda s, i: self.wrk(s.port, self.blob_path(s, fx["big_d"]), headers=[self.range_hdr()]),
            servers=ng, tool="wrk", p99=True)
        for size, count in p["mono"]:
            add("up_mono_%d" % size, "monolithic upload %s" % human_size(size),
                "1 client, %d uploads (POST+PUT)" % count, "MB/s", True,
                lambda s, i, size=size, count=count: self.w_upload_mono(s, i, size, count))
        add("up_chunked", "chunked upload %s in %s chunks" % (human_size(p["chunked_total"]), human_size(p["chunk"])),
            "1 client, %d uploads (POST+PATCH*%d+PUT)" % (p["chunked_count"], -(-p["chunked_total"] // p["chunk"])),
            "MB/s", True, lambda s, i: self.w_upload_chunked(s, i))
        for kind in ("small", "big"):
            size = human_size(sum(p["skopeo_" + kind]))
            add("skopeo_push_%s" % kind, "skopeo push, %s image (%d layers, %s)" % (kind, len(p["skopeo_" + kind]), size),
                "skopeo copy oci: -> docker://", "s", False,
                lambda s, i, kind=kind: self.w_skopeo_push(s, i, kind), tool="skopeo")
            add("skopeo_pull_%s" % kind, "skopeo pull, %s image (%d layers, %s)" % (kind, len(p["skopeo_" + kind]), size),
                "skopeo copy docker:// -> dir:", "s", False,
                lambda s, i, kind=kind: self.w_skopeo_pull(s, i, kind), tool="skopeo")
        for conc in p["mixed"]:
            add("mixed_%d" % conc, "mixed pulls/pushes 75/25, %d clients" % conc,
                "%d keep-alive clients, %ds" % (conc, p["mixed_duration"]), "images/s", True,
                lambda s, i, conc=conc: self.w_mixed(s, i, conc))
        sc = p["slow_conns"]
        lslow = "wrk -t%d -c%d -d%ds" % (min(t, sc), sc, d)
        add("catalog_page", "catalog page (n=%d of %d repos)" % (p["catalog_page"], p["catalog_repos"]), lslow,
            "req/s", True, lambda s, i: self.wrk(s.port, "/v2/_catalog?n=%d" % p["catalog_page"], conns=sc),
            tool="wrk", p99=True)
        add("catalog_full", "catalog, full paginated listing of %d repos" % p["catalog_repos"],
            "1 client, n=%d per page" % p["catalog_page"], "ms", False, lambda s, i: self.w_catalog_full(s, i))
        add("tags_list", "tag list (%d tags)" % p["tags"], lslow, "req/s", True,
            lambda s, i: self.wrk(s.port, "/v2/bench/tags/tags/list", conns=sc), tool="wrk", p99=True)
        if self.proxy:
            self.proxy.workloads(add)
        if self.args.only:
            keep = set(self.args.only.split(","))
            W = [w for w in W if w["key"] in keep]
        return W

    # -- runs

    def run_one(self, w, s, i):
        if s.kind != "nginx":
            if not s.alive():
                self.note("%s had exited (code %s) before %s run %d; restarted it (see %s)"
                          % (LABEL[s.kind], s.proc.returncode, w["key"], i + 1, s.log_path))
                s.start()
            if w.get("prep"):
                try:
                    w["prep"](s, i)
                except Exception as e:
                    self.note("%s run %d on %s: set-up failed: %s: %s" % (
                        w["key"], i + 1, LABEL[s.kind], type(e).__name__, str(e)[:300]))
                    return {"value": None, "errors": 1}
            self.sampler.reset(s.pid)
            cpu0 = proc_cpu_seconds(s.pid)
            busy0, own0, t0 = system_busy_seconds(), own_cpu_seconds(), time.monotonic()
        try:
            r = w["fn"](s, i)
        except Exception as e:
            r = {"value": None, "errors": 1}
            self.note("%s run %d on %s failed: %s: %s" % (w["key"], i + 1, LABEL[s.kind], type(e).__name__, str(e)[:300]))
        if s.kind != "nginx":
            r["peak_rss"] = self.sampler.take(s.pid) / 1024.0
            cpu1 = proc_cpu_seconds(s.pid)
            if cpu0 is not None and cpu1 is not None:
                r["cpu"] = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
                r["cpu_sys"] = cpu1[1] - cpu0[1]
                busy1, own1, t1 = system_busy_seconds(), own_cpu_seconds(), time.monotonic()
                if busy0 is not None and busy1 is not None and t1 > t0:
                    r["client_cpu"] = own1 - own0
                    other = (busy1 - busy0) - r["cpu"] - (own1 - own0)
                    r["other_load"] = max(0.0, other) / ((t1 - t0) * len(os.sched_getaffinity(0))) * 100
            if not s.alive():
                self.note("%s exited (code %s) during %s run %d (see %s)"
                          % (LABEL[s.kind], s.proc.returncode, w["key"], i + 1, s.log_path))
        return r

    def measure_startup(self):
        """Time from process start to the first 200 on GET /v2/ over an empty store, and the
        idle VmRSS a moment later. Alternates berth and Distribution."""
        for i in range(self.p["startup_runs"]):
            for kind in ("berth", "dist"):
                root = os.path.join(self.work, "startup-%s-%d" % (kind, i))
                shutil.rmtree(root, ignore_errors=True)
                os.makedirs(root)
                srv = Berth(self.work, root, self.berth_bin, self.args.threads) if kind == "berth" \
                    else self.other_server(root)
                try:
                    t0 = time.perf_counter()
                    srv.start(wait=False)
                    ms = None
                    while time.perf_counter() - t0 < 30:
                        c = httpc.Conn(srv.port, timeout=5)
                        try:
                            st, _, _ = c.request("GET", "/v2/")
                            if st == 200:
                                ms = (time.perf_counter() - t0) * 1000
                                break
                        except OSError:
                            if srv.proc.poll() is not None:
                                break
                        finally:
                            c.close()
                        time.sleep(0.0005)
                    time.sleep(self.p["startup_settle"])
                    rss = proc_status_kib(srv.pid, "VmRSS") if srv.alive() else None
                    anon = proc_status_kib(srv.pid, "RssAnon") if srv.alive() else None
                finally:
                    srv.stop()
                    shutil.rmtree(root, ignore_errors=True)
                if ms is None:
                    self.note("%s did not answer GET /v2/ with 200 within 30 s of its start" % LABEL[kind])
                self.extra.setdefault("startup", {}).setdefault(kind, []).append(ms)
                self.extra.setdefault("rss_empty", {}).setdefault(kind, []).append(rss / 1024.0 if rss else None)
                self.extra.setdefault("anon_empty", {}).setdefault(kind, []).append(anon / 1024.0 if anon else None)
                log("startup %s run %d: %s ms, idle RSS %s KiB" % (kind, i + 1, fmt(ms), rss))

    def disk_speed(self, *flags):
        """MB/s of writing 256 MiB to the data disk and syncing it (dd conv=fdatasync): the
        ceiling of any upload that is made durable before it is acknowledged, as berth does.
        With oflag=direct: the same through direct writes, one at a time, as berth writes
        large uploads on ext4/XFS."""
        path = os.path.join(self.work, "dd-test")
        try:
            out = run_cmd(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=256", "conv=fdatasync"]
                          + list(flags), timeout=300).stderr
            m = re.search(r"copied, ([\d.]+) s", out)
            return 256 * MiB / float(m.group(1)) / 1e6 if m else None
        except (BenchError, subprocess.SubprocessError) as e:
            self.note("dd failed: %s" % e)
            return None
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def openssl_speed(self):
        if not self.tools["openssl"]:
            return None
        try:
            out = run_cmd(["openssl", "speed", "-evp", "sha256", "-bytes", "16384",
                           "-seconds", str(self.p["sha_seconds"])], timeout=120).stdout
            m = re.search(r"^sha256\s+([\d.]+)k\s*$", out, re.M)
            return float(m.group(1)) / 1000.0 if m else None
        except (BenchError, subprocess.SubprocessError) as e:
            self.note("openssl speed failed: %s" % e)
            return None

    def library_floor(self):
        """Idle VmRSS (MiB) of a C program that does nothing but load the shared libraries berth
        is linked against (the binary's NEEDED entries, which bring their own dependencies):
        the floor under berth's idle RSS that no code of berth's can lower."""
        try:
            out = run_cmd(["readelf", "-d", self.berth_bin], timeout=30).stdout
            libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
            src, exe = os.path.join(self.work, "floor.c"), os.path.join(self.work, "floor")
            with open(src, "w") as f:
                f.write("#include <unistd.h>\nint main(void) { sleep(60); return 0; }\n")
            run_cmd(["cc", "-O2", src, "-o", exe, "-Wl,--no-as-needed"] + ["-l:" + l for l in libs
                                                                          if not l.startswith("libc.so")],
                    timeout=60)
        except (BenchError, subprocess.SubprocessError, OSError) as e:
            self.note("the library floor could not be measured: %s" % e)
            return None
        vals = []
        for _ in range(3):
            proc = subprocess.Popen([exe])
            try:
                time.sleep(self.p["startup_settle"] + 0.2)
                kib = proc_status_kib(proc.pid, "VmRSS")
            finally:
                proc.kill()
                proc.wait()
            if kib:
                vals.append(kib / 1024.0)
        return statistics.median(vals) if vals else None

    def main(self):
        a = self.args
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.load_start = os.getloadavg()
        if not shutil.which("docker-registry"):
            raise BenchError("docker-registry (Debian's CNCF Distribution) is not installed; run bench/run.sh as root")
        for tool, rows in (("wrk", "GET rows"), ("ab", "HEAD rows"), ("nginx", "the nginx reference column"),
                           ("skopeo", "skopeo rows")):
            if not self.tools[tool] and not (tool == "nginx" and a.against):
                self.note("%s is not installed: %s skipped" % (tool, rows))
        rm_rf(self.work)
        os.makedirs(self.work)
        # copy the binary so a rebuild during the run cannot change what is measured
        src = os.path.abspath(a.berth or os.path.join(REPO, "build", "berth"))
        if not os.access(src, os.X_OK):
            raise BenchError("no berth binary at %s (make build)" % src)
        self.berth_bin = os.path.join(self.work, "berth")
        shutil.copy2(src, self.berth_bin)
        self.against_bin = None
        if a.against:
            if not os.access(a.against, os.X_OK):
                raise BenchError("no berth binary at %s (--against)" % a.against)
            self.against_bin = os.path.join(self.work, "berth-against")
            shutil.copy2(a.against, self.against_bin)
            LABEL["dist"] = "berth --against"
            self.note("--against %s: the Distribution column is that berth build, not Distribution" % a.against)
        self.versions = {
            "berth": tool_version([self.berth_bin, "--version"]),
            "Distribution": tool_version(["docker-registry", "--version"]),
            "nginx": tool_version(["nginx", "-v"]),
            "wrk": tool_version(["wrk", "-v"]),
            "ab": tool_version(["ab", "-V"]),
            "skopeo": tool_version(["skopeo", "--version"]),
            "openssl": tool_version(["openssl", "version"]),
            "python": platform.python_version(),
        }
        log("profile %s, %d runs, work dir %s" % ("smoke" if a.smoke else "full", self.p["runs"], self.work))
        if not a.only:
            log("reference: openssl speed -evp sha256")
            self.sha_mbps = self.openssl_speed()
            log("reference: the disk's durable write speed")
            self.disk_mbps = self.disk_speed()
            self.disk_direct_mbps = self.disk_speed("oflag=direct")
            log("reference: idle RSS of a program that only loads berth's libraries")
            self.floor_mib = self.library_floor()
            log("startup times")
            self.measure_startup()
        else:
            self.sha_mbps = self.disk_mbps = self.disk_direct_mbps = self.floor_mib = None
        self.sampler.start()
        log("fixtures and on-disk seed (%d repositories, %d tags)" % (self.p["catalog_repos"], self.p["tags"]))
        self.make_fixtures()
        roots = {k: os.path.join(self.work, "data-" + k) for k in ("berth", "dist")}
        for r in roots.values():
            os.makedirs(r)
        t0 = time.monotonic()
        self.seed_on_disk(list(roots.values()))
        log("seeded in %.1fs" % (time.monotonic() - t0))
        self.servers["berth"] = Berth(self.work, roots["berth"], self.berth_bin, a.threads)
        self.servers["dist"] = self.other_server(roots["dist"])
        try:
            for k in ("berth", "dist"):
                self.servers[k].start()
                self.load_fixtures(self.servers[k])
            if self.tools["nginx"]:
                self.servers["nginx"] = Nginx(self.work, roots["dist"])
                self.servers["nginx"].start()
            # idle RSS on the loaded store: fresh processes, one request, then rest
            for k in ("berth", "dist"):
                self.servers[k].restart()
            for k in self.servers:
                self.sanity(self.servers[k])
            if self.tools["skopeo"] and (not a.only or any(k.startswith("proxy_") for k in a.only.split(","))):
                sys.modules.setdefault("bench", sys.modules[__name__])  # pullthrough imports this file
                import pullthrough
                log("pull-through cache: upstream and caches")
                self.proxy = pullthrough.PullThrough(self)
                self.proxy.start()
            time.sleep(1.0 if not a.smoke else 0.2)
            for k in ("berth", "dist"):
                rss = proc_status_kib(self.servers[k].pid, "VmRSS")
                anon = proc_status_kib(self.servers[k].pid, "RssAnon")
                self.extra.setdefault("rss_loaded", {})[k] = [rss / 1024.0 if rss else None]
                self.extra.setdefault("anon_loaded", {})[k] = [anon / 1024.0 if anon else None]
            self.run_workloads()
            time.sleep(2.0 if not a.smoke else 0.2)
            for k in ("berth", "dist"):
                s = self.servers[k]
                rss = proc_status_kib(s.pid, "VmRSS") if s.alive() else None
                hwm = proc_status_kib(s.pid, "VmHWM") if s.alive() else None
                self.extra.setdefault("rss_after", {})[k] = [rss / 1024.0 if rss else None]
                self.extra.setdefault("hwm", {})[k] = [hwm / 1024.0 if hwm else None]
        finally:
            if self.proxy:
                self.proxy.stop()
            for s in self.servers.values():
                s.stop()
            self.sampler.halt.set()
        self.load_end = os.getloadavg()
        self.finished = datetime.datetime.now(datetime.timezone.utc)
        report = self.report()
        out = a.out or (os.path.join(HERE, "RESULTS.md") if not a.smoke else os.path.join(self.work, "RESULTS-smoke.md"))
        with open(out, "w") as f:
            f.write(report)
        print(report)
        log("wrote %s" % out)
        if not a.keep:
            log("removing the stores")
            for k in ("data-berth", "data-dist", "img", "seed-links-data-berth", "seed-links-data-dist"):
                rm_rf(os.path.join(self.work, k))
        return 0

    def other_server(self, root):
        """Distribution, or with --against the other berth build."""
        if self.against_bin:
            return OtherBerth(self.work, root, self.against_bin, self.args.threads)
        return Distribution(self.work, root)

    def run_workloads(self):
        W = self.workloads()
        self.W = W
        runs = self.p["runs"]
        for w in W:
            if w["tool"] and not self.tools[w["tool"]]:
                continue
            res = self.results.setdefault(w["key"], {})
            for i in range(runs):
                for kind in w["servers"]:
                    s = (w["srv"] or self.servers).get(kind)
                    if s is None:
                        continue
                    r = self.run_one(w, s, i)
                    res.setdefault(kind, []).append(r)
                    log("%-16s run %d/%d %-12s %s %s%s%s%s" % (
                        w["key"], i + 1, runs, LABEL[kind], fmt(r.get("value")), w["unit"],
                        (" p99 %s ms" % fmt(r["p99"])) if r.get("p99") is not None else "",
                        (" errors %d" % r["errors"]) if r.get("errors") else "",
                        (" (%s)" % r["info"]) if r.get("info") else ""))

    # -- report

    def report(self):
        p = self.p
        rows = []   # (title, load, unit, higher, {kind: [values]}, {kind: [p99]}, {kind: errors}, key)
        for w in self.W:
            res = self.results.get(w["key"])
            if not res:
                continue
            vals = {k: [r.get("value") for r in v] for k, v in res.items()}
            p99 = {k: [r.get("p99") for r in v] for k, v in res.items()} if w["p99"] else {}
            errs = {k: sum(r.get("errors") or 0 for r in v) for k, v in res.items()}
            rows.append((w["title"], w["load"], w["unit"], w["higher"], vals, p99, errs, w["key"]))
        # memory and start-up rows
        peak = {}
        for kind in ("berth", "dist"):
            per_run = []
            for i in range(p["runs"]):
                vs = [res[kind][i].get("peak_rss") for res in self.results.values()
                      if kind in res and len(res[kind]) > i and res[kind][i].get("peak_rss")]
                if vs:
                    per_run.append(max(vs))
            peak[kind] = per_run
        ex = self.extra
        mem_rows = [
            ("idle RSS, empty store (fresh process)", "after the first GET /v2/ + %.1fs" % p["startup_settle"],
             "MiB", False, ex.get("rss_empty", {}), "rss_empty"),
            ("idle RSS, loaded store (fresh process)", "after a few requests + 1s", "MiB", False,
             ex.get("rss_loaded", {}), "rss_loaded"),
            ("idle RssAnon (private memory only), empty store", "as above, /proc RssAnon", "MiB", False,
             ex.get("anon_empty", {}), "anon_empty"),
            ("idle RssAnon (private memory only), loaded store", "as above, /proc RssAnon", "MiB", False,
             ex.get("anon_loaded", {}), "anon_loaded"),
            ("peak RSS (highest workload of each run)", "VmRSS sampled every 50 ms", "MiB", False, peak, "rss_peak"),
            ("RSS after all workloads (idle 2s)", "VmRSS", "MiB", False, ex.get("rss_after", {}), "rss_after"),
            ("VmHWM at the end (whole run)", "VmHWM", "MiB", False, ex.get("hwm", {}), "hwm"),
            ("start-up to first 200 on GET /v2/", "empty store, %d starts" % p["startup_runs"], "ms", False,
             ex.get("startup", {}), "startup"),
        ]
        for title, load, unit, higher, vals, key in mem_rows:
            if vals:
                rows.append((title, load, unit, higher, vals, {}, {}, key))
        self.rows = rows

        L = []
        L.append("# berth vs CNCF Distribution: benchmark results\n")
        L.append("Generated by `%s` (bench/run.sh%s); started %s, took %.1f min.\n" % (
            "make bench-smoke" if self.args.smoke else "make bench", " --smoke" if self.args.smoke else "",
            self.started.strftime("%Y-%m-%d %H:%M UTC"), (self.finished - self.started).total_seconds() / 60))
        if self.args.smoke:
            L.append("**Smoke profile: one run, tiny durations and sizes. These numbers mean nothing.**\n")
        L.append("## Machine\n")
        for line in machine_description(self.work):
            L.append("- " + line)
        L.append("- load average (1/5/15 min) at start: %s; at the end: %s" % (
            " ".join("%.2f" % x for x in self.load_start), " ".join("%.2f" % x for x in self.load_end)))
        L.append("- versions: " + "; ".join("%s: %s" % kv for kv in self.versions.items()))
        L.append("")
        L.append("## Set-up\n")
        L.append("- berth: `berth serve --addr 127.0.0.1:PORT --root DIR --delete --no-access-log --log-level warn%s`"
                 % (" --threads %d" % self.args.threads if self.args.threads else "") +
                 " (HTTP threads: one per core).")
        L.append("- Distribution: `docker-registry serve CONFIG`, filesystem storage, deletes enabled, no auth, "
                 "`log.level: warn`, `log.accesslog.disabled: true`, `storage.cache.blobdescriptor: inmemory` "
                 "(as in Debian's default config), upload purging off (GOMAXPROCS = cores).")
        L.append("- nginx (reference for raw file serving): serves Distribution's blob `data` files, "
                 "`sendfile on`, keep-alive, `worker_processes` = cores, access log off.")
        L.append("- Both registries store under the same directory on the same disk; the %d-repository catalog and the "
                 "%d-tag repository are written straight into the storage layout, identically for both; the other "
                 "fixtures are pushed through the API into both." % (p["catalog_repos"], p["tags"]))
        L.append("- Every workload runs against berth and Distribution alternately (berth, Distribution%s, berth, ...), "
                 "%d run%s each; a cell is the median with min-max in brackets. wrk rows: -t%d, keep-alive, "
                 "--timeout 30s; HEAD rows use `ab -k -i` (wrk hangs on HEAD). p99 latency is the median over runs of "
                 "each run's p99 (wrk --latency; ab's percentile table)." % (
                     ", nginx" if self.tools["nginx"] else "", p["runs"], "" if p["runs"] == 1 else "s",
                     p["wrk_threads"]))
        L.append("- berth : Distribution is the ratio of the medians in the row's unit: above 1 is better for berth "
                 "where the unit says higher is better (↑), below 1 where lower is better (↓).")
        L.append("")
        L.append("## Results\n")
        L.append("| workload | load | unit | berth | Distribution | berth : Distribution | nginx | p99 ms berth | p99 ms Distribution |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for title, load, unit, higher, vals, p99, errs, key in rows:
            def cell(kind):
                s = summary(vals.get(kind))
                if s is None:
                    return "–" if kind not in vals else "failed"
                txt = "%s (%s–%s)" % (fmt(s[0]), fmt(s[1]), fmt(s[2])) if s[3] > 1 else fmt(s[0])
                if errs.get(kind):
                    txt += " **%d errors**" % errs[kind]
                return txt
            rb, rd = summary(vals.get("berth")), summary(vals.get("dist"))
            ratio = "%s" % fmt_ratio(rb[0] / rd[0]) if (rb and rd and rd[0]) else "–"
            pb, pd = summary(p99.get("berth")), summary(p99.get("dist"))
            L.append("| %s | %s | %s %s | %s | %s | %s | %s | %s | %s |" % (
                title, load, unit, "↑" if higher else "↓", cell("berth"), cell("dist"), ratio,
                cell("nginx") if "nginx" in vals else "–",
                fmt(pb[0]) if pb else "–", fmt(pd[0]) if pd else "–"))
        L.append("")
        if self.proxy:
            L.extend(self.proxy.references(self.results))
        L.append("Reference: `openssl speed -evp sha256 -bytes 16384` on one core: **%s MB/s** (the ceiling for any "
                 "upload that is digested on one core). The data disk's durable write speed (`dd bs=1M count=256 "
                 "conv=fdatasync`): **%s MB/s** (the ceiling for any upload made durable before it is acknowledged; "
                 "berth syncs, Distribution does not); with `oflag=direct` (1 MiB direct writes, one at a time, "
                 "as berth writes large uploads): **%s MB/s**." % (
                     fmt(self.sha_mbps) if self.sha_mbps else "n/a", fmt(self.disk_mbps) if self.disk_mbps else "n/a",
                     fmt(self.disk_direct_mbps) if self.disk_direct_mbps else "n/a"))
        L.append("")
        L.append("Memory floor: a C program that does nothing but load the shared libraries berth is linked against "
                 "(libmicrohttpd with GnuTLS and its dependencies, libcrypto, jansson, libyaml, libcrypt, libc; "
                 "Debian's builds) idles at **%s MiB** VmRSS." % (fmt(self.floor_mib) if self.floor_mib else "n/a"))
        L.append("")
        L.append("### Peak RSS and server CPU by workload\n")
        L.append("Peak RSS: the highest VmRSS sampled every 50 ms during a run (median over runs). CPU: user+system "
                 "seconds the server process used during a run (median; the share spent in the kernel in brackets), "
                 "from /proc/PID/stat. Request-rate runs last the same time for both servers, so their CPU seconds "
                 "are a budget; CPU µs/op divides them by the requests (or images) served, which makes the cost per "
                 "operation comparable even where the load generator, not the server, set the pace. Client CPU: what the "
                 "load generator (wrk, ab, skopeo, the Python clients and this driver) used during the run. Other load: the share "
                 "of the machine's CPU (all cores, steal included) that neither the server nor the load generator "
                 "used during a run, from /proc/stat: other tenants' work; median over the runs of both servers, "
                 "highest in brackets.\n")
        L.append("| workload | peak RSS MiB berth | peak RSS MiB Distribution | CPU s berth | CPU s Distribution "
                 "| CPU µs/op berth | CPU µs/op Distribution | client CPU s berth | client CPU s Distribution "
                 "| other load % (max) |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for w in self.W:
            res = self.results.get(w["key"])
            if not res:
                continue
            def med(kind, field):
                s = summary([r.get(field) for r in res.get(kind, [])])
                if not s:
                    return "–"
                if field == "cpu":
                    sy = summary([r.get("cpu_sys") for r in res.get(kind, [])])
                    if sy and s[0] > 0:
                        return "%s (%d%% sys)" % (fmt(s[0]), round(100 * sy[0] / s[0]))
                return fmt(s[0])
            def per_op(kind):
                if w["unit"] not in ("req/s", "images/s"):
                    return "–"
                secs = self.p["mixed_duration"] if w["unit"] == "images/s" else self.p["duration"]
                xs = [r["cpu"] / (r["value"] * secs) * 1e6 for r in res.get(kind, [])
                      if r.get("cpu") is not None and r.get("value")]
                s = summary(xs)
                return fmt(s[0]) if s else "–"
            others = [r.get("other_load") for k in ("berth", "dist") for r in res.get(k, [])
                      if r.get("other_load") is not None]
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w["title"], med("berth", "peak_rss"), med("dist", "peak_rss"), med("berth", "cpu"), med("dist", "cpu"),
                per_op("berth"), per_op("dist"), med("berth", "client_cpu"), med("dist", "client_cpu"),
                "%.0f (%.0f)" % (statistics.median(others), max(others)) if others else "–"))
        L.append("")
        L.append("## Targets\n")
        L.extend(self.targets())
        L.append("")
        L.append("## Notes\n")
        L.append("- The machine is shared with other work (builds and test suites of other sessions may run at the "
                 "same time) and has %d cores: the load generator (wrk, ab, the Python clients, skopeo) runs on the "
                 "same cores as the server it measures, so a fast server is partly measured against the client's "
                 "CPU cost. Alternating the servers run by run spreads the noise over both; the min-max ranges show "
                 "how much there was." % len(os.sched_getaffinity(0)))
        L.append("- ab is single-threaded and wrk has %d threads: rows far above ~30-60k req/s are client-bound, "
                 "so their ratios understate the real gap." % p["wrk_threads"])
        L.append("- Mixed workload: each pull is GET manifest by tag (parsed) + GET config + GET each of %d layers "
                 "(%s); each push is HEAD of a shared base layer (present), HEAD/POST/PUT of a new %s layer and a "
                 "new config, then PUT of the manifest under a new tag. Clients are Python threads in %d processes "
                 "over a minimal keep-alive HTTP/1.1 client (bench/httpc.py); every non-2xx answer, short body or "
                 "socket error counts as an error, and none is allowed." % (
                     len(p["mixed_layers"]), ", ".join(human_size(x) for x in p["mixed_layers"]),
                     human_size(p["mixed_new"]), p["mixed_procs"]))
        L.append("- Uploads: one client, each blob new (a unique suffix); timing covers POST through the final "
                 "201, the client's digest is computed beforehand; the uploaded blobs are deleted from disk after "
                 "each run and the page cache is synced before it.")
        L.append("- skopeo times are wall-clock seconds of one `skopeo copy` (its own start-up included); every push "
                 "sends a newly generated image (uncompressed tar layers of random bytes), every pull goes to a "
                 "fresh `dir:` destination. skopeo tries HTTPS first and falls back to HTTP against both.")
        L.append("- Start-up is measured from just before fork/exec to the first 200, polling every 0.5 ms; it "
                 "includes Python's process spawn (about a millisecond).")
        L.append("- Catalog and tag-list rows use %d connections (-c%d): each request lists thousands of "
                 "directories, and %d concurrent listings would leave a %d s run with almost no completed request."
                 % (p["slow_conns"], p["slow_conns"], p["conns"], p["duration"]))
        L.append("- Distribution 2.8 caps catalog pages at 1000 entries (`catalog.maxentries`); both are asked "
                 "for n=%d." % p["catalog_page"])
        if self.proxy:
            L.append("- Pull-through cache rows: berth (`proxy.remoteurl`) and Distribution (a `proxy` section) "
                     "cache one docker-registry upstream on loopback (access log on), which holds the skopeo rows' "
                     "images. A cold run starts the cache afresh over an empty store; a warm run is the first pull "
                     "after an untimed cold one (the cache afresh, then the image pulled). The references run in the same alternation: the pull straight "
                     "from the upstream, and from berth's hosted repository holding the same image. The burst's "
                     "GETs are counted per blob in the upstream's access log.")
        for n in self.notes:
            L.append("- " + n)
        L.append("")
        return "\n".join(L)

    def targets(self):
        by = {r[7]: r for r in self.rows}

        def med(key, kind):
            r = by.get(key)
            s = summary(r[4].get(kind)) if r else None
            return s[0] if s else None

        def errors(key):
            r = by.get(key)
            return sum(r[6].values()) if r else 0

        out = []

        def line(desc, ok, detail):
            out.append("- %s %s: %s" % ("met" if ok else "**MISSED**", desc, detail) if ok is not None
                       else "- n/a %s: %s" % (desc, detail))

        def ratio_target(key, want, desc, higher=True):
            b, d = med(key, "berth"), med(key, "dist")
            if b is None or d is None or not b or not d:
                line(desc, None, "no data")
                return
            x = b / d if higher else d / b
            ok = x >= want and not errors(key)
            unit = by[key][2]
            line(desc, ok, "berth %s %s, Distribution %s %s: %s %s× (want ≥ %g×)%s" % (
                fmt(b), unit, fmt(d), unit, "berth/Distribution" if higher else "Distribution/berth",
                fmt(x), want, ", with errors" if errors(key) else ""))

        def p99_target(key, desc):
            r = by.get(key)
            pb = summary(r[5].get("berth")) if r and r[5] else None
            pd = summary(r[5].get("dist")) if r and r[5] else None
            if not pb or not pd:
                line(desc, None, "no data")
                return
            line(desc, pb[0] <= pd[0] / 10, "berth %s ms, Distribution %s ms" % (fmt(pb[0]), fmt(pd[0])))

        def nginx_target(key, desc):
            b, n = med(key, "berth"), med(key, "nginx")
            if not b or not n:
                line(desc, None, "no data")
                return
            line(desc, b >= 0.4 * n, "berth %s req/s, nginx %s req/s: %s of nginx" % (
                fmt(b), fmt(n), "%.0f%%" % (100 * b / n)))

        for key, name in (("base", "GET /v2/"), ("mget_tag", "manifest GET by tag"),
                          ("mget_digest", "manifest GET by digest"), ("mhead_tag", "manifest HEAD by tag"),
                          ("mhead_digest", "manifest HEAD by digest"), ("bhead", "blob HEAD")):
            ratio_target(key, 10, "%s req/s ≥ 10× Distribution" % name)
            p99_target(key, "%s p99 ≤ 1/10 of Distribution's" % name)
        for key, name in (("mget_tag", "manifest GET by tag"), ("mget_digest", "manifest GET by digest")):
            nginx_target(key, "%s ≥ 40%% of nginx serving the same bytes" % name)
        ratio_target("bget_small", 20, "blob GET %s req/s ≥ 20× Distribution" % human_size(self.p["small_blob"]))
        nginx_target("bget_small", "blob GET %s ≥ 40%% of nginx" % human_size(self.p["small_blob"]))
        b, n = med("bget_big", "berth"), med("bget_big", "nginx")
        if b and n:
            line("blob GET %s within 10%% of nginx" % human_size(self.p["big_blob"]), b >= 0.9 * n,
                 "berth %s MB/s vs nginx %s MB/s (%s)" % (fmt(b), fmt(n), fmt_ratio(b / n)))
        else:
            line("blob GET big within 10% of nginx", None, "no data")
        big_mono = "up_mono_%d" % self.p["mono"][-1][0]
        ratio_target(big_mono, 5, "monolithic upload %s MB/s ≥ 5× Distribution" % human_size(self.p["mono"][-1][0]))
        b = med(big_mono, "berth")
        if b and self.sha_mbps:
            line("monolithic upload %s ≥ 60%% of one core's SHA-256 speed" % human_size(self.p["mono"][-1][0]),
                 b >= 0.6 * self.sha_mbps, "berth %s MB/s, SHA-256 %s MB/s: %.0f%%; the disk's durable write "
                 "speed (dd conv=fdatasync) is %s MB/s, %s MB/s with direct writes" % (
                     fmt(b), fmt(self.sha_mbps), 100 * b / self.sha_mbps,
                     fmt(self.disk_mbps) if self.disk_mbps else "n/a",
                     fmt(self.disk_direct_mbps) if self.disk_direct_mbps else "n/a"))
        ratio_target("up_chunked", 8, "chunked upload MB/s ≥ 8× Distribution")
        d = med("up_chunked", "dist")
        if d and self.sha_mbps:
            # A blob's digest is one SHA-256 over all its bytes, in order: no upload of it can go
            # faster than one core hashes.
            out[-1] += ("; 8× Distribution is %s MB/s, %.0f%% of one core's SHA-256 speed (%s MB/s), "
                        "the ceiling of any one upload" % (fmt(8 * d), 800 * d / self.sha_mbps, fmt(self.sha_mbps)))
        ratio_target("catalog_page", 10, "catalog page req/s ≥ 10× Distribution")
        ratio_target("catalog_full", 10, "full catalog listing time ≤ 1/10 of Distribution's", higher=False)
        ratio_target("tags_list", 10, "tag list req/s ≥ 10× Distribution")
        for conc in self.p["mixed"]:
            ratio_target("mixed_%d" % conc, 2, "mixed images/s with %d clients ≥ 2× Distribution, zero errors" % conc)
        for key, name in (("rss_empty", "idle RSS (empty store)"), ("rss_loaded", "idle RSS (loaded store)"),
                          ("rss_peak", "peak RSS")):
            ratio_target(key, 5, "%s ≤ 1/5 of Distribution's" % name, higher=False)
            d = med(key, "dist")
            if key != "rss_peak" and d and self.floor_mib:
                out[-1] += ("; a program that only loads berth's shared libraries (Debian's builds) idles at %s MiB, "
                            "%.0f%% of the target's %s MiB" % (fmt(self.floor_mib), 500 * self.floor_mib / d, fmt(d / 5)))
        s = med("startup", "berth")
        line("start-up < 50 ms", (s < 50) if s is not None else None, "%s ms" % fmt(s) if s is not None else "no data")
        if self.proxy:
            self.proxy.targets(self.results, line)
        return out


# ---------------------------------------------------------------- parsing and formatting

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
UNIT_B = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def parse_wrk(out):
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise BenchError("cannot read wrk output: %s" % out[-400:])
    r = {"value": float(m.group(1))}
    m = re.search(r"(\d+) requests in ", out)
    r["count"] = int(m.group(1)) if m else None
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", out)
    r["bytes_per_s"] = float(m.group(1)) * UNIT_B[m.group(2)] if m else None
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    r["p99"] = float(m.group(1)) * UNIT_MS[m.group(2)] if m else None
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    r["errors"] = errors
    return r


def parse_ab(out, csv):
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    if not m:
        raise BenchError("cannot read ab output: %s" % out[-400:])
    r = {"value": float(m.group(1)), "p99": None}
    m = re.search(r"Complete requests:\s+(\d+)", out)
    r["count"] = int(m.group(1)) if m else None
    errors = 0
    for pat in (r"Failed requests:\s+(\d+)", r"Non-2xx responses:\s+(\d+)"):
        m = re.search(pat, out)
        if m:
            errors += int(m.group(1))
    r["errors"] = errors
    try:
        with open(csv) as f:
            for line in f:
                if line.startswith("99,"):
                    r["p99"] = float(line.split(",")[1])
    except OSError:
        pass
    return r


def mbps(r):
    r = dict(r)
    r["value"] = r["bytes_per_s"] / 1e6 if r.get("bytes_per_s") else None
    r["p99"] = None
    return r


def summary(vals):
    vals = [v for v in (vals or []) if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals), len(vals)


def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3f" % v


def fmt_ratio(x):
    return ("%.1f" % x if x >= 10 else "%.2f" % x) + "×"


def machine_description(path):
    out = []
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = proc_meminfo("MemTotal")
    out.append("CPU: %d cores available (nproc), %s" % (len(os.sched_getaffinity(0)), model))
    out.append("memory: %.1f GiB" % (mem / 1024 / 1024) if mem else "memory: ?")
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    out.append("kernel: %s %s (%s)" % (platform.system(), platform.release(), osname))
    try:
        fm = subprocess.run(["findmnt", "-no", "SOURCE,FSTYPE,OPTIONS", "-T", path], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True).stdout.split()
        st = os.statvfs(path)
        out.append("data dir: %s on %s (%s, %s), %.0f GiB free" % (
            path, fm[0] if fm else "?", fm[1] if len(fm) > 1 else "?", fm[2] if len(fm) > 2 else "?",
            st.f_bavail * st.f_frsize / (1 << 30)))
    except (OSError, IndexError):
        out.append("data dir: %s" % path)
    return out


def proc_meminfo(key):
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description="berth vs Distribution benchmarks")
    ap.add_argument("--smoke", action="store_true", help="every workload once, tiny durations and sizes")
    ap.add_argument("--runs", type=int, help="runs per workload and server (default 5)")
    ap.add_argument("--duration", type=int, help="seconds per wrk/ab run (default 5)")
    ap.add_argument("--conns", type=int, help="connections for the request-rate rows (default 32)")
    ap.add_argument("--threads", type=int, help="berth --threads (default: berth's own, one per core)")
    ap.add_argument("--berth", help="berth binary (default build/berth)")
    ap.add_argument("--workdir", help="scratch directory for the stores (default bench/.work/PROFILE)")
    ap.add_argument("--out", help="report path (default bench/RESULTS.md; smoke: WORKDIR/RESULTS-smoke.md)")
    ap.add_argument("--only", help="comma-separated workload keys (skips start-up and openssl rows)")
    ap.add_argument("--keep", action="store_true", help="keep the stores after the run")
    ap.add_argument("--against", help="another berth binary in Distribution's place (A/B of two builds; no nginx)")
    args = ap.parse_args()
    b = Bench(args)
    try:
        return b.main()
    except BenchError as e:
        log("error: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())

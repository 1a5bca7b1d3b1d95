#!/usr/bin/env python3
"""skopeo pulls of one image from berth and from Distribution, alternated (stdlib only).

Usage: skopeo_pull.py [--berth BINARY]... [--runs N] [--sizes 5m,15m,30m,50m] [--workdir DIR]

Writes an OCI layout with bench/mkimage.py (default: the big image of `make bench`, 4 layers,
100 MiB), pushes it with skopeo into berth, then starts Distribution (docker-registry) on the
same storage directory, as bench.py starts both, and times `skopeo copy docker://... dir:` from
each server in turn: berth, Distribution, berth, ... (each --berth a server of its own, for an
A/B of two builds beside Distribution). Prints, per server, the median, quartiles and range of
the wall time, and the median CPU seconds the server and skopeo used per pull (from /proc and
the children's rusage). The machine is shared: read the spreads, not one run.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import mkimage  # noqa: E402


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pull(port, dest):
    shutil.rmtree(dest, ignore_errors=True)
    cpu0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                    "docker://127.0.0.1:%d/skopeo/big:pull" % port, "dir:" + dest],
                   check=True, stdin=subprocess.DEVNULL, timeout=300)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    shutil.rmtree(dest, ignore_errors=True)
    return wall, cpu


def server_cpu(server):
    cpu = bench.proc_cpu_seconds(server.pid)
    if cpu is None:
        raise bench.BenchError("cannot read the CPU time of %s (pid %d)" % (server.label, server.pid))
    return cpu[0] + cpu[1]


def quartiles(v):
    if len(v) < 4:
        return min(v), max(v)
    q = statistics.quantiles(v, n=4)
    return q[0], q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--berth", action="append", help="berth binary (repeat for an A/B; default build/berth)")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--sizes", default="5m,15m,30m,50m", help="layer sizes (mkimage.py)")
    ap.add_argument("--workdir", default=os.path.join(HERE, ".work", "skopeo_pull"))
    ap.add_argument("--no-dist", action="store_true", help="berth builds only")
    a = ap.parse_args()
    binaries = a.berth or [os.path.join(bench.REPO, "build", "berth")]
    work = os.path.abspath(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    root = os.path.join(work, "store")
    os.makedirs(root)
    servers = []
    for i, b in enumerate(binaries):
        s = bench.Berth(work, root, os.path.abspath(b))
        s.label = "berth" if len(binaries) == 1 else "berth%d (%s)" % (i, b)
        s.log_path = os.path.join(work, "berth%d.log" % i)  # each build its own log
        servers.append(s)
    if not a.no_dist:
        d = bench.Distribution(work, root)
        d.label = "Distribution"
        servers.append(d)
    ok = False
    try:
        servers[0].start()
        layout = os.path.join(work, "layout")
        mkimage.make_layout(layout, "skopeo-pull-%d" % time.time_ns(), [mkimage.parse_size(x) for x in a.sizes.split(",")])
        subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false",
                        "oci:%s:latest" % layout, "docker://127.0.0.1:%d/skopeo/big:pull" % servers[0].port],
                       check=True, stdin=subprocess.DEVNULL)
        shutil.rmtree(layout)
        for s in servers[1:]:
            s.start()
        dest = os.path.join(work, "pulled")
        for s in servers:   # one untimed pull each: page cache, the servers' caches
            pull(s.port, dest)
        res = {s.label: [] for s in servers}
        for i in range(a.runs):
            for s in servers:
                c0 = server_cpu(s)
                wall, cpu = pull(s.port, dest)
                res[s.label].append((wall, server_cpu(s) - c0, cpu))
        print("%-28s %8s %17s %17s %10s %10s" % ("server", "median s", "quartiles", "min-max", "server cpu", "skopeo cpu"))
        for s in servers:
            v = res[s.label]
            w = [x[0] for x in v]
            q1, q3 = quartiles(w)
            print("%-28s %8.3f %8.3f-%-8.3f %8.3f-%-8.3f %10.3f %10.3f" % (
                s.label, statistics.median(w), q1, q3, min(w), max(w),
                statistics.median(x[1] for x in v), statistics.median(x[2] for x in v)))
        ok = True
    finally:
        for s in servers:
            s.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:  # the servers' logs stay for the error's "see ..."
            shutil.rmtree(os.path.join(work, "store"), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tags list (end-8a/8b) with n/last pagination and Link headers, and the catalog."""

import os
import re
import shutil
import time
import urllib.parse

import berthtest
from berthtest import reference_deviation, setUpModule, tearDownModule  # noqa: F401

LINK_RE = re.compile(r'^<([^>]+)>;\s*rel="?next"?$')


def is_sorted(tags):
    # spec 1.1: lexical order; the spec's "lexical" has been read as both case-insensitive and
    # ASCIIbetical (Go's sort.Strings, what Distribution uses): accept either
    return tags == sorted(tags) or tags == sorted(tags, key=lambda t: (t.lower(), t))


class TagsTest(berthtest.TestCase):
    TAGS = ["v1", "v10", "v2", "latest", "Alpha", "beta", "1.0", "1.0.1", "_x", "zz-top"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.r = "tags/repo"
        img = cls.c.push_image(cls.r, cls.TAGS[0])
        for t in cls.TAGS[1:]:
            cls.c.push_manifest(cls.r, t, img["manifest"])
        # a manifest pushed by digest only adds no tag
        cls.c.push_image(cls.r, None, seed="untagged")
        cls.all = cls.c.get("/v2/%s/tags/list" % cls.r).json()["tags"]

    def tags(self, query=""):
        r = self.c.get("/v2/%s/tags/list%s" % (self.r, query))
        self.assertStatus(r, 200, query)  # spec MUST 200
        doc = r.json()
        self.assertEqual(doc.get("name"), self.r, r.describe())
        self.assertIsInstance(doc.get("tags"), list, "tags must be a JSON array" + r.describe())
        return r, doc["tags"]

    def next_link(self, r):
        link = r.header("Link")
        if link is None:
            return None
        m = LINK_RE.match(link.strip())
        self.assertTrue(m, "malformed Link header %r" % link + r.describe())
        u = urllib.parse.urlsplit(m.group(1))
        self.assertEqual(u.path, "/v2/%s/tags/list" % self.r, "Link path" + r.describe())
        q = urllib.parse.parse_qs(u.query)
        self.assertIn("n", q, "Link must carry n" + r.describe())
        self.assertIn("last", q, "Link must carry last" + r.describe())
        return m.group(1), q

    def test_list_all(self):
        r, tags = self.tags()
        self.assertEqual(sorted(tags), sorted(self.TAGS))
        self.assertIsNone(r.header("Link"), "no Link when everything is listed" + r.describe())

    @reference_deviation("2.8 does not sort tags")
    def test_sorted(self):
        _, tags = self.tags()
        self.assertTrue(is_sorted(tags), "tags are not in lexical order: %s" % tags)  # spec MUST

    @reference_deviation("2.8 ignores n and last on tags/list")
    def test_n_limits(self):
        _, full = self.tags()
        r, tags = self.tags("?n=3")
        self.assertEqual(tags, full[:3])  # spec: MUST return n results when more exist
        link = self.next_link(r)
        self.assertIsNotNone(link, "Link expected while more tags remain" + r.describe())
        _, q = link
        self.assertEqual(q["n"], ["3"])
        self.assertEqual(q["last"], [full[2]])

    @reference_deviation("2.8 ignores n and last on tags/list")
    def test_paginate_by_link(self):
        _, full = self.tags()
        got, url, pages = [], "/v2/%s/tags/list?n=4" % self.r, 0
        while url:
            pages += 1
            self.assertLess(pages, 20, "pagination does not end")
            r = self.c.get(self.c.resolve(url))
            self.assertStatus(r, 200)
            page = r.json()["tags"]
            self.assertLessEqual(len(page), 4)
            got += page
            link = self.next_link(r)
            url = link[0] if link else None
        self.assertEqual(got, full, "pages joined differ from the full list")
        self.assertEqual(pages, 3)

    @reference_deviation("2.8 ignores n and last on tags/list")
    def test_last(self):
        _, full = self.tags()
        _, tags = self.tags("?n=2&last=%s" % urllib.parse.quote(full[3]))
        self.assertEqual(tags, full[4:6])  # spec: after last, exclusive
        # last without n (spec: n is OPTIONAL with last)
        _, tags = self.tags("?last=%s" % urllib.parse.quote(full[6]))
        self.assertEqual(tags, full[7:])
        # last that is not a tag: the tags after it in order
        _, tags = self.tags("?last=v10a")
        self.assertEqual(tags, ["v2", "zz-top"])  # the same in either lexical order
        # last past the end
        r, tags = self.tags("?n=5&last=%s" % urllib.parse.quote(full[-1]))
        self.assertEqual(tags, [])
        self.assertIsNone(r.header("Link"))

    @reference_deviation("2.8 ignores n on tags/list")
    def test_n_zero(self):
        r, tags = self.tags("?n=0")
        self.assertEqual(tags, [])  # spec 1.1: n=0 MUST return an empty list...
        self.assertIsNone(r.header("Link"), "n=0 MUST NOT have a Link" + r.describe())  # ...no Link

    def test_n_larger_than_count(self):
        r, tags = self.tags("?n=1000")
        self.assertEqual(sorted(tags), sorted(self.TAGS))
        self.assertIsNone(r.header("Link"))

    def test_bad_n_is_ignored_or_400(self):
        for q in ("?n=abc", "?n=-1", "?n=99999999999999999999999", "?n="):
            r = self.c.get("/v2/%s/tags/list%s" % (self.r, q))
            # spec silent; Distribution 2.8 ignores n, 3.x answers 400 PAGINATION_NUMBER_INVALID
            self.assertStatus(r, (200, 400), q)

    def test_unknown_repo_404(self):
        r = self.c.get("/v2/%s/tags/list" % self.repo("nosuch"))
        self.assertError(r, 404, "NAME_UNKNOWN")  # Distribution; spec MUST 404 for unknown repo

    def test_repo_of_blobs_only(self):
        repo = self.repo()
        self.c.push_blob(repo, b"just a blob")
        r = self.c.get("/v2/%s/tags/list" % repo)
        # a repository with no tags: spec lets the list be empty; Distribution says NAME_UNKNOWN
        if r.status == 200:
            self.assertEqual(r.json().get("tags") or [], [])
        else:
            self.assertError(r, 404, "NAME_UNKNOWN")


class TagListFreshnessTest(berthtest.TestCase):
    """berth caches each repository's tag list: it must still show what storage holds, whoever
    wrote it (another berth or Distribution on the same root), and this process's own writes
    at once."""

    def setUp(self):
        super().setUp()
        root = berthtest.server().root
        if not root or os.environ.get("BERTH_STORAGE") == "inmemory":
            self.skipTest("needs the server's filesystem root")
        self.repo_name = self.repo("fresh")
        self.c.push_image(self.repo_name, "a")
        self.tags_dir = os.path.join(root, "docker/registry/v2/repositories", self.repo_name,
                                     "_manifests/tags")

    def listed(self):
        r = self.c.get("/v2/%s/tags/list" % self.repo_name)
        self.assertStatus(r, 200)
        return sorted(r.json()["tags"])  # order: TagsTest.test_sorted

    def test_own_writes_seen_at_once(self):
        img = self.c.push_image(self.repo_name, "b", seed="b")
        for _ in range(3):
            self.assertEqual(self.listed(), ["a", "b"])
        self.c.push_manifest(self.repo_name, "b", img["manifest"])  # the same tag again
        self.assertEqual(self.listed(), ["a", "b"])
        if not berthtest.reference_mode():  # 2.8 has no tag delete
            self.assertStatus(self.c.delete("/v2/%s/manifests/b" % self.repo_name), 202)
            self.assertEqual(self.listed(), ["a"])
            self.c.push_manifest(self.repo_name, "b", img["manifest"])
            self.assertEqual(self.listed(), ["a", "b"])
        # deleting the manifest untags it
        self.assertStatus(self.c.delete("/v2/%s/manifests/%s" % (self.repo_name, img["digest"])), 202)
        self.assertEqual(self.listed(), ["a"])

    def test_tags_written_by_another_process(self):
        self.assertEqual(self.listed(), ["a"])
        time.sleep(1.2)  # past the filesystem's racy second: the list is now kept by version
        self.assertEqual(self.listed(), ["a"])
        shutil.copytree(os.path.join(self.tags_dir, "a"), os.path.join(self.tags_dir, "c"))
        self.assertTrue(berthtest.wait_until(lambda: self.listed() == ["a", "c"], timeout=3),
                        "a tag written by another process never appeared: %s" % self.listed())
        time.sleep(1.2)
        self.assertEqual(self.listed(), ["a", "c"])
        shutil.rmtree(os.path.join(self.tags_dir, "c"))
        self.assertTrue(berthtest.wait_until(lambda: self.listed() == ["a"], timeout=3),
                        "a tag removed by another process is still listed: %s" % self.listed())

    def test_tag_moved_in_place_by_another_process(self):
        """Distribution rewrites a tag's current link in place (same file): berth, which keeps
        what it read with the link's version, must see each move at once."""
        a = self.c.get("/v2/%s/manifests/a" % self.repo_name, headers=berthtest.ACCEPT_ALL)
        b = self.c.push_image(self.repo_name, "b", seed="moved")
        link = os.path.join(self.tags_dir, "a", "current", "link")
        shutil.copytree(os.path.join(self.tags_dir, "b", "index"),
                        os.path.join(self.tags_dir, "a", "index"), dirs_exist_ok=True)
        time.sleep(1.2)  # the link is settled: berth may now keep what it reads
        for want in (b["digest"], a.header("Docker-Content-Digest"), b["digest"]):
            self.c.get("/v2/%s/manifests/a" % self.repo_name, headers=berthtest.ACCEPT_ALL)
            with open(link, "r+") as f:  # in place, as Distribution's PutContent does
                f.truncate(0)
                f.write(want)
            r = self.c.get("/v2/%s/manifests/a" % self.repo_name, headers=berthtest.ACCEPT_ALL)
            self.assertStatus(r, 200)
            self.assertEqual(r.header("Docker-Content-Digest"), want)

    @reference_deviation("2.8 lists a tag directory that has no current link")
    def test_incomplete_tag_listed_once_complete(self):
        """A tag directory with only its index link (a write cut short, or one in progress in
        another process) resolves to nothing and is not listed; once its current link is
        written it is."""
        src = os.path.join(self.tags_dir, "a")
        half = os.path.join(self.tags_dir, "half")
        shutil.copytree(os.path.join(src, "index"), os.path.join(half, "index"))
        self.assertEqual(self.listed(), ["a"])
        time.sleep(1.2)
        self.assertEqual(self.listed(), ["a"])
        self.assertStatus(self.c.get("/v2/%s/manifests/half" % self.repo_name,
                                     headers=berthtest.ACCEPT_ALL), 404)
        shutil.copytree(os.path.join(src, "current"), os.path.join(half, "current"))
        self.assertEqual(self.listed(), ["a", "half"])


class CatalogTest(berthtest.TestCase):
    REPOS = ["cat/a", "cat/b/c", "cat/b/c/d", "cat/b-x", "cat/b.y", "cat/b_z", "cat0", "cat/zz"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for i, name in enumerate(cls.REPOS):
            cls.c.push_image(name, "t%d" % i)

    def catalog(self, query=""):
        r = self.c.get("/v2/_catalog" + query)
        self.assertStatus(r, 200, query)
        repos = r.json().get("repositories")
        self.assertIsInstance(repos, list, r.describe())
        return r, repos

    def test_lists_nested_names_sorted(self):
        _, repos = self.catalog()
        for name in self.REPOS:
            self.assertIn(name, repos)
        # the catalog is not in the spec; Distribution sorts by path component (a walk of the
        # tree: "a/b/c" before "a/b-x"); plain string order is as good
        self.assertTrue(repos == sorted(repos) or repos == sorted(repos, key=lambda n: n.split("/")),
                        "catalog not sorted: %s" % repos)
        self.assertEqual(len(repos), len(set(repos)))

    def test_paginate_by_link(self):
        _, full = self.catalog()
        got, url, pages = [], "/v2/_catalog?n=3", 0
        while url:
            pages += 1
            self.assertLess(pages, 100, "pagination does not end")
            r = self.c.get(self.c.resolve(url))
            self.assertStatus(r, 200)
            page = r.json()["repositories"]
            self.assertLessEqual(len(page), 3)
            got += page
            link = r.header("Link")
            if link:
                m = LINK_RE.match(link.strip())
                self.assertTrue(m, "malformed Link %r" % link)
                u = urllib.parse.urlsplit(m.group(1))
                self.assertEqual(u.path, "/v2/_catalog")
                q = urllib.parse.parse_qs(u.query)
                self.assertEqual(q.get("n"), ["3"])
                self.assertEqual(q.get("last"), [page[-1]])
                url = m.group(1)
            else:
                url = None
        self.assertEqual(got, full)

    def test_n_and_last(self):
        _, full = self.catalog()
        i = full.index("cat/b/c")
        r, repos = self.catalog("?n=2&last=cat/b/c")
        self.assertEqual(repos, full[i + 1:i + 3])
        r, repos = self.catalog("?n=1")
        self.assertEqual(repos, full[:1])
        self.assertIsNotNone(r.header("Link"), "Link expected while more remain" + r.describe())

    def test_n_zero(self):
        r, repos = self.catalog("?n=0")
        self.assertEqual(repos, [])
        self.assertIsNone(r.header("Link"))

    def test_deleted_uploads_do_not_make_repositories(self):
        # Distribution lists only repositories with content; an abandoned upload is not one
        name = "cat/only-upload"
        r = self.c.start_upload(name)
        self.c.delete(self.c.resolve(r.header("Location")))
        _, repos = self.catalog()
        self.assertNotIn(name, repos)


if __name__ == "__main__":
    berthtest.main()

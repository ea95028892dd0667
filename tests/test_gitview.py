"""Change detection from git's word (gitview): on a real git work tree, each launch that
stands on git finds what a walk of every file finds, for every kind of edit."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from cslaunch import changes, gitview, index, model, scan

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    r = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return r.stdout


class Project:
    """A git work tree bind-mounted by one Python service, with cslaunch's state beside."""

    def __init__(self, tmp: Path) -> None:
        self.repo = tmp / "repo"
        self.state = tmp / "state"
        self.state.mkdir()
        (self.repo / "app" / "__pycache__").mkdir(parents=True)
        self.write("app/main.py", "print('main')\n")
        self.write("app/util.py", "X = 1\n")
        self.write("app/__pycache__/main.cpython-311.pyc", "pyc")
        self.write(".gitignore", "__pycache__/\nbuild/\n*.log\n")
        self.write("build/gen.py", "GENERATED = 1\n")
        self.write("README.md", "docs\n")
        # Written a while before the commit, as a project's files are: none racily clean
        past = time.time() - 10
        for path in self.repo.rglob("*"):
            os.utime(path, (past, past))
        git(self.repo, "init", "-q")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "first")
        self.raw: dict[str, Any] = {
            "name": "t",
            "services": {
                "app": {
                    "command": ["python", "-m", "app.main"],
                    "volumes": [{"type": "bind", "source": str(self.repo), "target": "/src"}],
                }
            },
        }
        self.stack = model.parse_stack(self.raw)
        self.roots = [self.repo]
        self.version = 2

    def write(self, rel: str, text: str) -> Path:
        path = self.repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def detect(self, rehash: bool = False) -> changes.ChangeSet:
        index.forget()
        return changes.detect(
            self.state, self.stack, self.raw["services"], {"app"}, self.roots, rehash=rehash
        )

    def remount(self, source: Path) -> None:
        """The service mounts (and its Python root is) `source` instead."""
        self.roots = [source]
        self.raw["services"]["app"]["volumes"] = [
            {"type": "bind", "source": str(source), "target": "/src"}
        ]
        self.stack = model.parse_stack(self.raw)

    def vouch_all(self) -> None:
        """git's index written a second after every file (a walk), then a launch on git's
        word that asks nothing it need not."""
        time.sleep(1.05)
        git(self.repo, "update-index", "--index-version", "4" if self.version != 4 else "3")
        self.version = 4 if self.version != 4 else 3
        assert not self.launch().by_git
        self.settled()

    def launch(self) -> changes.ChangeSet:
        """Detect and leave the index and git's view, as a launch that worked does; checked
        against what a walk of every file finds against the same index."""
        cs = self.detect()
        walked = self.detect(rehash=True)
        assert cs.changes == walked.changes
        assert cs.scan.files.keys() == walked.scan.files.keys()
        assert {p: e.stat for p, e in cs.entries.items()} == {
            p: e.stat for p, e in walked.entries.items()
        }
        assert sorted(cs.scan.unreadable) == sorted(walked.scan.unreadable)
        assert sorted(cs.scan.bytecode) == sorted(walked.scan.bytecode)
        new = cs.new_index()
        index.save(self.state, new)
        changes.leave_git_view(self.state, cs, new)
        return cs

    def settled(self) -> changes.ChangeSet:
        """A launch once the clock has left the last one's racy window, standing on git."""
        time.sleep(0.01)
        cs = self.launch()
        assert cs.by_git, "the launch walked"
        return cs


def rel(p: Project, paths: Iterable[str]) -> set[str]:
    return {os.path.relpath(x, p.repo) for x in paths}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setattr(index, "RACY_NS", 0)  # no waiting out the racy window
    p = Project(tmp_path)
    first = p.launch()
    assert first.old is None and not first.by_git
    return p


def test_a_launch_after_a_walk_stands_on_git_and_finds_nothing(project: Project) -> None:
    cs = project.settled()
    assert not cs.changes and cs.changes == index.Changes()
    # Files changed within the second git wrote its index in are asked (gitview._parse);
    # once git's index is written a second later, git vouches for every tracked file.
    assert cs.git is not None and rel(project, cs.git.asked) <= {"app/main.py", "app/util.py"}
    time.sleep(1.05)
    git(project.repo, "update-index", "--index-version", "3")  # written anew
    project.launch()
    cs = project.settled()
    assert cs.git is not None and not cs.git.asked and not cs.changes
    # An edit that keeps mtime and size, of a file git vouches for: git itself names it
    path = project.repo / "app/util.py"
    st = path.stat()
    path.write_text("X = 9\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    cs = project.settled()
    assert cs.git is not None and rel(project, cs.git.named.files) == {"app/util.py"}
    assert rel(project, cs.changes.modified) == {"app/util.py"}


def test_an_edit_keeping_mtime_and_size_is_found(project: Project) -> None:
    project.settled()
    path = project.repo / "app/util.py"
    st = path.stat()
    path.write_text("X = 2\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    cs = project.settled()
    assert rel(project, cs.changes.modified) == {"app/util.py"}


def test_an_edit_put_back_to_what_git_holds_is_found(project: Project) -> None:
    project.settled()
    project.write("app/util.py", "X = 3\n")
    assert rel(project, project.settled().changes.modified) == {"app/util.py"}
    project.write("app/util.py", "X = 1\n")  # as committed: git calls it clean now
    assert rel(project, project.settled().changes.modified) == {"app/util.py"}
    assert not project.settled().changes


def test_untracked_and_ignored_files_come_and_go(project: Project) -> None:
    project.settled()
    project.write("app/new.py", "N = 1\n")
    project.write("build/more.py", "M = 1\n")
    assert rel(project, project.settled().changes.added) == {"app/new.py", "build/more.py"}
    (project.repo / "app/new.py").unlink()
    shutil.rmtree(project.repo / "build")
    cs = project.settled()
    assert rel(project, cs.changes.deleted) == {"app/new.py", "build/more.py", "build/gen.py"}


def test_an_edit_in_an_ignored_directory_is_found(project: Project) -> None:
    project.settled()
    project.write("build/gen.py", "GENERATED = 2\n")
    assert rel(project, project.settled().changes.modified) == {"build/gen.py"}


def test_bytecode_is_listed_as_a_walk_lists_it(project: Project) -> None:
    project.write("app/__pycache__/util.cpython-311.pyc", "pyc")
    project.write("build/__pycache__/gen.cpython-311.pyc", "pyc")
    project.write("app/legacy.pyc", "pyc")
    cs = project.settled()
    assert {os.path.basename(b) for b in cs.scan.bytecode} == {
        "main.cpython-311.pyc", "util.cpython-311.pyc", "gen.cpython-311.pyc", "legacy.pyc",
    }  # fmt: skip


def test_a_file_git_assumes_unchanged_is_still_asked(project: Project) -> None:
    git(project.repo, "update-index", "--assume-unchanged", "app/util.py")
    project.launch()  # git's index changed: a walk, and a view made anew
    project.write("app/util.py", "X = 4\n")
    assert git(project.repo, "--no-optional-locks", "status", "--porcelain") == ""  # unseen
    assert rel(project, project.settled().changes.modified) == {"app/util.py"}


def test_a_commit_means_a_walk_then_git_again(project: Project) -> None:
    project.settled()
    project.write("app/util.py", "X = 5\n")
    git(project.repo, "commit", "-qam", "second")
    cs = project.launch()
    assert not cs.by_git and rel(project, cs.changes.modified) == {"app/util.py"}
    assert not project.settled().changes


def test_a_linked_file_is_asked_by_what_it_points_to(project: Project) -> None:
    project.write("app/settings_dev.py", "DEBUG = True\n")
    (project.repo / "app/settings.py").symlink_to("settings_dev.py")
    git(project.repo, "add", "-A")
    git(project.repo, "commit", "-qm", "settings")
    project.launch()
    project.settled()
    git(project.repo, "update-index", "--assume-unchanged", "app/settings_dev.py")
    project.launch()
    project.write("app/settings_dev.py", "DEBUG = False\n")
    assert rel(project, project.settled().changes.modified) == {
        "app/settings.py", "app/settings_dev.py",
    }  # fmt: skip


def test_other_trees_mean_a_walk(project: Project) -> None:
    project.settled()
    project.raw["services"]["app"]["volumes"].append(
        {"type": "bind", "source": str(project.repo / "build"), "target": "/build"}
    )
    project.stack = model.parse_stack(project.raw)
    assert not project.launch().by_git


def test_no_git_work_tree_no_git(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert gitview.find([str(tmp_path / "a")]) is None


def test_no_git_program_means_a_walk(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.settled()
    monkeypatch.setenv("PATH", str(project.state))
    project.write("app/util.py", "X = 6\n")
    cs = project.launch()
    assert cs.git is None and rel(project, cs.changes.modified) == {"app/util.py"}


def test_git_index_changed_while_git_looked_means_a_walk(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.settled()
    real = gitview.finish_listing

    def and_a_commit(
        procs: list[subprocess.Popen[bytes]], repo: gitview.Repo
    ) -> gitview.Named | None:
        named = real(procs, repo)
        project.write("app/util.py", "X = 7\n")
        git(project.repo, "commit", "-qam", "meanwhile")
        return named

    monkeypatch.setattr(gitview, "finish_listing", and_a_commit)
    cs = project.detect()
    assert not cs.by_git and rel(project, cs.changes.modified) == {"app/util.py"}


def test_listings_are_read(tmp_path: Path) -> None:
    top = str(tmp_path)
    changed = b"app/a.py\0app/new\nline.py\0"
    others = b"app/untracked.py\0vendor/repo/\0app/__pycache__/\0debug.log\0"
    named = gitview.parse_listing(changed, others, top)
    j = os.path.join
    assert named.files == (
        j(top, "app", "a.py"),
        j(top, "app", "new\nline.py"),
        j(top, "app", "untracked.py"),
        j(top, "debug.log"),
    )
    assert named.dirs == (j(top, "vendor", "repo"), j(top, "app", "__pycache__"))


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_git_index_is_read_in_every_version(tmp_path: Path, version: str) -> None:
    repo = tmp_path / "r"
    (repo / "deep" / "er").mkdir(parents=True)
    names = ["a.py", "deep/b.py", "deep/er/c.py", "deep/er/" + "long" * 20 + ".py"]
    for name in names:
        (repo / name).write_text(name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "update-index", "--index-version", version)
    if version == "3":
        git(repo, "update-index", "--skip-worktree", "a.py")  # an extended entry
    time.sleep(1.1)  # out of git's racy second
    git(repo, "update-index", "--really-refresh")
    found = gitview.find([str(repo)])
    assert found is not None
    read = gitview.read_index(found)
    assert read is not None
    assert read.tracked == {str(repo / n) for n in names}
    vouched = {str(repo / n) for n in names if not (version == "3" and n == "a.py")}
    assert read.stats.keys() == vouched
    for path in vouched:
        st = os.lstat(path)
        assert read.stats[path] == (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def test_a_scan_from_git_walks_what_git_names_as_directories(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "node_modules").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("a")
    (tmp_path / "pkg" / "node_modules" / "x.py").write_text("x")
    trees = [scan.Tree(str(tmp_path), lambda r: r.endswith(".py"), by_name=True)]
    known = {str(tmp_path / "pkg" / "gone.py"): scan.FileStat(1, 1, 1, 1)}
    found = scan.from_git(trees, [], known, [], [str(tmp_path / "pkg")])
    assert found is not None
    assert set(found.files) == {str(tmp_path / "pkg" / "a.py")}  # pruned as a walk prunes


def test_a_root_in_a_nested_repository_is_not_asked_of_the_outer(tmp_path: Path) -> None:
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "vendor" / "lib"
    inner.mkdir(parents=True)
    git(outer, "init", "-q")
    git(inner, "init", "-q")
    assert gitview.find([str(outer / "vendor")]) == gitview.Repo(
        str(outer), outer / ".git" / "index"
    )
    assert gitview.find([str(inner)]) == gitview.Repo(str(inner), inner / ".git" / "index")
    assert gitview.find([str(outer / "vendor"), str(inner)]) is None


def test_a_linked_work_tree_is_found_through_its_git_file(tmp_path: Path) -> None:
    main, linked = tmp_path / "main", tmp_path / "linked"
    main.mkdir()
    (main / "a.py").write_text("a")
    git(main, "init", "-q")
    git(main, "add", "-A")
    git(main, "commit", "-qm", "a")
    git(main, "worktree", "add", "-q", str(linked))
    found = gitview.find([str(linked)])
    assert found is not None and found.top == str(linked)
    read = gitview.read_index(found)
    assert read is not None and read.tracked == {str(linked / "a.py")}


def test_a_repository_that_ignores_case_still_lists_every_name(project: Project) -> None:
    git(project.repo, "config", "core.ignorecase", "true")  # as on a Mac, set by git init
    project.settled()
    project.write("app/Util.py", "Y = 1\n")  # beside app/util.py, on a file system with case
    assert rel(project, project.settled().changes.added) == {"app/Util.py"}


def test_the_trees_key_holds_whole_patterns_and_sorted_sets(project: Project) -> None:
    from dataclasses import replace

    from cslaunch.context import parse_dockerignore

    files = changes.detect(project.state, project.stack, {}, {"app"}, []).files
    sf = files["app"]
    long = "a" * 300
    one = replace(sf, ignore=parse_dockerignore(long + "b"))
    other = replace(sf, ignore=parse_dockerignore(long + "c"))
    assert gitview.trees_key({"app": one}, [], []) != gitview.trees_key({"app": other}, [], [])
    assert gitview._plain(frozenset({"b", "a"})) == ["'a'", "'b'"]


# Found by a review: each a way git's word differed from a walk's before its fix.


def test_an_edit_a_clean_filter_hides_is_found(project: Project) -> None:
    git(project.repo, "config", "filter.secret.clean", "sed 's/^KEY = .*/KEY = \"xxxx\"/'")
    git(project.repo, "config", "filter.secret.smudge", "cat")
    project.write(".gitattributes", "app/settings.py filter=secret\n")
    project.write("app/settings.py", 'KEY = "abcd"\n')
    git(project.repo, "add", "-A")
    git(project.repo, "commit", "-qm", "settings")
    project.launch()
    project.vouch_all()
    project.write("app/settings.py", 'KEY = "efgh"\n')  # cleans to the blob git holds
    assert rel(project, project.settled().changes.modified) == {"app/settings.py"}


def test_a_touched_file_gets_its_new_stat_data(project: Project) -> None:
    project.vouch_all()
    os.utime(project.repo / "app/util.py", (1_000_000_000, 1_000_000_000))
    cs = project.settled()  # entries' stat data cross-checked with the walk's
    assert not cs.changes


def test_a_root_inside_an_ignored_directory(project: Project) -> None:
    project.write(".gitignore", "__pycache__/\nbuild/\nig/\n")
    project.write("ig/deep/mod.py", "M = 1\n")
    git(project.repo, "add", "-A")
    git(project.repo, "commit", "-qm", "ig")
    project.remount(project.repo / "ig" / "deep")
    project.launch()
    assert not project.settled().changes
    project.write("ig/deep/mod.py", "M = 2\n")
    assert rel(project, project.settled().changes.modified) == {"ig/deep/mod.py"}


def test_a_file_gone_at_a_walk_and_put_back(project: Project, tmp_path: Path) -> None:
    project.vouch_all()
    os.rename(project.repo / "app/util.py", tmp_path / "util.py")
    project.write("app/other.py", "O = 1\n")
    git(project.repo, "add", "app/other.py")  # git's index rewritten: a walk
    assert rel(project, project.launch().changes.deleted) == {"app/util.py"}
    os.rename(tmp_path / "util.py", project.repo / "app/util.py")  # as git holds it
    assert rel(project, project.settled().changes.added) == {"app/util.py"}


@pytest.mark.parametrize("flag", ["--skip-worktree", "--assume-unchanged"])
def test_a_file_git_does_not_look_at_comes_back(project: Project, flag: str) -> None:
    project.vouch_all()
    git(project.repo, "update-index", flag, "app/util.py")
    (project.repo / "app/util.py").unlink()
    assert rel(project, project.launch().changes.deleted) == {"app/util.py"}
    project.settled()
    project.write("app/util.py", "X = 'local'\n")
    assert rel(project, project.settled().changes.added) == {"app/util.py"}


def test_a_linked_pycache_is_not_followed(project: Project, tmp_path: Path) -> None:
    project.vouch_all()
    elsewhere = tmp_path / "pyc"
    elsewhere.mkdir()
    (elsewhere / "gone.cpython-311.pyc").write_text("not ours")
    shutil.rmtree(project.repo / "app/__pycache__")
    (project.repo / "app/__pycache__").symlink_to(elsewhere)
    cs = project.settled()
    assert str(project.repo / "app/__pycache__") in cs.scan.unreadable
    assert not any(b.startswith(str(elsewhere)) for b in cs.scan.bytecode)


def test_a_file_that_became_a_directory_and_back(project: Project) -> None:
    project.vouch_all()
    (project.repo / "app/util.py").unlink()
    project.write("app/util.py/x.py", "X\n")
    project.launch()
    project.launch()
    shutil.rmtree(project.repo / "app/util.py")
    project.write("app/util.py", "X = 1\n")
    project.settled()


def test_odd_file_names(project: Project) -> None:
    names = ["app/new\nline.py", "app/tab\there.py", "app/sp ace.py", "app/\udcff.py", "app/üni.py"]
    for name in names:
        project.write(name, "A = 1\n")
    git(project.repo, "add", "-A")
    git(project.repo, "commit", "-qm", "odd")
    project.launch()
    project.vouch_all()
    for name in names:
        project.write(name, "A = 2\n")
    assert rel(project, project.settled().changes.modified) == set(names)

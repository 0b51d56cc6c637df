"""The on-disk kernel cache: concurrent builds, corrupt entries, ownership, the command line."""

import multiprocessing
import os
import subprocess
import sys

import pytest

from tracesym.backend.c import cache

CDEF = "int answer(int x);"


def _source(tag):
    return f"int answer(int x) {{ return x + {tag}; }}\n"


def _load_and_call(args):
    root, tag = args
    mod = cache.load(_source(tag), CDEF, root)
    return mod.lib.answer(1)


def test_concurrent_processes_compiling_the_same_new_kernel_all_succeed(tmp_path):
    root = str(tmp_path / "cache")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        got = pool.map(_load_and_call, [(root, 41)] * 4)
    assert got == [42] * 4
    entries = cache.entries(root)
    assert len(entries) == 1 and entries[0]["ok"]
    assert not [n for n in os.listdir(root) if n.startswith(".build-")]  # no leftovers


def test_the_cache_directory_is_private(tmp_path):
    root = str(tmp_path / "new" / "cache")
    cache.load(_source(1), CDEF, root)
    assert os.stat(root).st_mode & 0o777 == 0o700


def _entry(root, tag):
    name = "tsk_" + cache.key_of(_source(tag), CDEF)[:24]
    return cache.Entry(root, name)


def _build_elsewhere(root, tag):
    """Build an entry in another process (this one must not map a file the test damages)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.map(_load_and_call, [(root, tag)]) == [tag + 1]


def test_a_truncated_entry_is_rebuilt(tmp_path):
    root = str(tmp_path)
    _build_elsewhere(root, 2)
    e = _entry(root, 2)
    size = os.path.getsize(e.so)
    with open(e.so, "r+b") as f:
        f.truncate(size // 3)
    assert not e.valid()
    assert [x["ok"] for x in cache.entries(root)] == [False]
    assert cache.load(_source(2), CDEF, root).lib.answer(1) == 3
    assert e.valid() and os.path.getsize(e.so) == size


def test_an_entry_without_its_checksum_is_rebuilt(tmp_path):
    root = str(tmp_path)
    _build_elsewhere(root, 3)
    e = _entry(root, 3)
    os.remove(e.checksum)
    assert not e.valid()
    cache.load(_source(3), CDEF, root)
    assert e.valid()


def test_a_foreign_entry_is_refused(tmp_path, monkeypatch):
    root = str(tmp_path)
    cache.load(_source(4), CDEF, root)
    cache._loaded.pop(_entry(root, 4).name)
    monkeypatch.setattr(cache, "_uid", lambda: os.getuid() + 1)
    with pytest.raises(cache.CacheError, match="belongs to uid .* refusing"):
        cache.load(_source(4), CDEF, root)
    with pytest.raises(cache.CacheError):
        cache.clear(root)


def _cli(root, *args):
    env = dict(os.environ, TRACESYM_FLAGS=f"compiledir={root}")
    return subprocess.run([sys.executable, "-m", "tracesym", "cache", *args], env=env,
                          capture_output=True, text=True, check=True).stdout


def test_command_line_list_info_clear(tmp_path):
    root = str(tmp_path)
    cache.load(_source(5), CDEF, root)
    name = _entry(root, 5).name
    assert name in _cli(root, "list") and " ok" in _cli(root, "list")
    info = _cli(root, "info")
    assert f"directory: {root}" in info and "entries:   1 " in info and "compiler:" in info
    assert "removed 1 entries" in _cli(root, "clear")
    assert cache.entries(root) == [] and _cli(root, "list") == ""

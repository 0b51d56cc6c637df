"""How the kernel cache builds a module: the compiler probe recorded in the cache directory,
big sources compiled as several units in parallel and linked into one module."""

import glob
import os
import threading

import pytest

from tracesym.backend.c import cache

pytestmark = pytest.mark.skipif(cache.toolchain_problem() is not None,
                                reason="no C toolchain")


@pytest.fixture
def fresh_probe(monkeypatch):
    """This process forgets what it found of its compiler and the modules it loaded; returns
    the list of the compiler commands run from now on (but by threads an earlier test left
    building)."""
    calls = []
    run, popen = cache.subprocess.run, cache.subprocess.Popen
    earlier = set(threading.enumerate()) - {threading.current_thread()}

    def record(cmd):
        if threading.current_thread() not in earlier:
            calls.append(cmd)

    monkeypatch.setattr(cache, "_probed", {})
    monkeypatch.setattr(cache, "_loaded", {})
    monkeypatch.setattr(cache.subprocess, "run", lambda cmd, **kw: record(cmd) or run(cmd, **kw))
    monkeypatch.setattr(cache.subprocess, "Popen",
                        lambda cmd, **kw: record(cmd) or popen(cmd, **kw))
    return calls


def _records(root):
    return glob.glob(os.path.join(root, "toolchain-*.json"))


def test_the_probe_is_recorded_and_a_new_process_runs_no_compiler(tmp_path, fresh_probe,
                                                                   monkeypatch):
    root = str(tmp_path)
    assert cache.toolchain_problem(root) is None
    first = (cache.compiler(), cache.flags(), cache.libs())
    cache.load("int answer(int x) { return x + 1; }\n", "int answer(int x);", root)
    assert fresh_probe and len(_records(root)) == 1
    monkeypatch.setattr(cache, "_probed", {})  # as a new process starts
    monkeypatch.setattr(cache, "_loaded", {})
    fresh_probe.clear()
    assert cache.toolchain_problem(root) is None
    mod = cache.load("int answer(int x) { return x + 1; }\n", "int answer(int x);", root)
    assert mod.lib.answer(1) == 2
    assert (cache.compiler(), cache.flags(), cache.libs()) == first
    assert fresh_probe == []


def test_a_changed_compiler_binary_is_probed_again(tmp_path, fresh_probe, monkeypatch):
    fake = tmp_path / "cc"
    fake.write_text(f'#!/bin/sh\nexec {cache.compiler()[0]} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(cache, "_cc_path", lambda: str(fake))
    root = str(tmp_path / "cache")
    cache._recorded(cache.cache_dir(root), write=True)
    n = len(fresh_probe)
    monkeypatch.setattr(cache, "_probed", {})
    cache._recorded(root, write=True)
    assert len(fresh_probe) == n  # the same binary: read from the record
    os.utime(fake, ns=(0, 0))  # as an upgrade changes it
    monkeypatch.setattr(cache, "_probed", {})
    cache._recorded(root, write=True)
    assert len(fresh_probe) > n and len(_records(root)) == 2


def test_a_damaged_record_is_probed_again_and_rewritten(tmp_path, fresh_probe, monkeypatch):
    root = str(tmp_path)
    cache._recorded(root, write=True)
    first = cache.flags()
    (record,) = _records(root)
    with open(record, "w") as f:
        f.write('{"mvec": ')
    monkeypatch.setattr(cache, "_probed", {})
    assert cache._read_record(record) is None
    cache._recorded(root, write=True)
    assert cache.flags() == first and cache._read_record(record) is not None


def test_a_foreign_record_is_refused(tmp_path, fresh_probe, monkeypatch):
    root = str(tmp_path)
    cache._recorded(root, write=True)
    (record,) = _records(root)
    monkeypatch.setattr(cache, "_uid", lambda: os.getuid() + 1)
    with pytest.raises(cache.CacheError, match="belongs to uid"):
        cache._read_record(record)


def test_clear_removes_the_record(tmp_path, fresh_probe):
    root = str(tmp_path)
    cache._recorded(root, write=True)
    assert _records(root)
    cache.clear(root)
    assert _records(root) == []


# -- several compile units ------------------------------------------------------------------

TWICE = "int twice(int x) { return 2 * x; }\n"
ANSWER = "int answer(int x) { return twice(x) + 1; }\n"  # calls into the other part
CDEF = "int twice(int x);\nint answer(int x);\n"


def test_parts_in_separate_units_call_each_other_through_the_declarations(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "UNIT_BYTES", 1)
    monkeypatch.setattr(cache, "_cores", lambda: 2)
    root = str(tmp_path)
    mod = cache.load([TWICE, ANSWER], CDEF, root, header="/* shared header */")
    assert mod.lib.answer(20) == 41 and mod.lib.twice(4) == 8
    (entry,) = [e["name"] for e in cache.entries(root)]
    units = sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, entry, "*.c")))
    assert units == [f"{entry}.c", f"{entry}_0.c", f"{entry}_1.c"]  # wrapper + two units
    for u in units[1:]:
        text = open(os.path.join(root, entry, u)).read()
        assert "/* shared header */" in text and CDEF in text
        assert (TWICE in text) != (ANSWER in text)


def test_the_key_does_not_depend_on_how_the_source_is_split(tmp_path, monkeypatch):
    whole = cache.load("/* h */\n" + TWICE + "\n" + ANSWER, CDEF, str(tmp_path))
    assert cache.load([TWICE, ANSWER], CDEF, str(tmp_path), header="/* h */") is whole


def test_small_sources_are_one_unit(monkeypatch):
    monkeypatch.setattr(cache, "_cores", lambda: 4)
    assert len(cache._units("", [TWICE, ANSWER], CDEF)) == 1


def test_units_are_at_most_one_per_core_and_balanced(monkeypatch):
    monkeypatch.setattr(cache, "_cores", lambda: 2)
    monkeypatch.setattr(cache, "UNIT_BYTES", 100)
    parts = [f"/* {i} */" + "x" * n for i, n in enumerate([500, 400, 300, 200, 100])]
    units = cache._units("", parts, "")
    assert len(units) == 2
    sizes = sorted(len(u) for u in units)
    assert sizes[1] - sizes[0] < 2 * len(parts[-1])  # no better split is far better
    for p in parts:
        assert sum(p in u for u in units) == 1


def test_parts_sharing_guarded_helpers_go_to_one_unit(monkeypatch):
    monkeypatch.setattr(cache, "_cores", lambda: 2)
    monkeypatch.setattr(cache, "UNIT_BYTES", 100)
    helpers = "#ifndef TS_H\n#define TS_H\nstatic int h(int x) { return x; }\n#endif\n"
    a, b = helpers + "int a(int x) { return h(x); }" + " " * 400, helpers + "int b(void) { return h(2); }" + " " * 400
    c = "int c(void) { return 3; }" + " " * 300
    units = cache._units("", [a, c, b], "")
    assert len(units) == 2  # a and b balanced apart by size alone; they share h
    assert [sum(p in u for p in (a, b)) for u in units if a in u] == [2]
    assert sum(c in u for u in units) == 1


def test_an_error_in_one_unit_keeps_that_unit_and_leaves_no_build(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "UNIT_BYTES", 1)
    monkeypatch.setattr(cache, "_cores", lambda: 2)
    root = str(tmp_path)
    broken = "int answer(int x) { return undeclared_name; }\n"
    with pytest.raises(cache.CompileError, match=r"(?s)failed/tsk_\w+_\d\.c.*undeclared") as e:
        cache.load([TWICE, broken], CDEF, root)
    kept = str(e.value).split("source kept in ")[1].split()[0]
    assert broken in open(kept).read()
    assert not [n for n in os.listdir(root) if n.startswith(".build-")]
    assert cache.entries(root) == []


@pytest.mark.parametrize("preset", [None, "active"])
def test_openmp_threads_sleep_when_idle_unless_the_user_chose(tmp_path, preset):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = ("import os; from tracesym.backend.c import cache; "
            f"cache.load('int one(void) {{ return 1; }}\\n', 'int one(void);', {str(tmp_path)!r}); "
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [preset or "passive"]


def test_probing_on_a_thread_gives_what_the_caller_would_find(tmp_path, fresh_probe):
    """`probe_soon` runs the probe while the caller goes on; the caller's next question
    waits for it and gets the same answers, and the record is written once."""
    root = str(tmp_path)
    cache.probe_soon(root)
    assert cache.toolchain_problem(root) is None  # waits for the thread's probe
    found = (cache.compiler(), cache.flags())
    n = len(fresh_probe)
    assert n and len(_records(root)) == 1
    cache.probe_soon(root)  # recorded in this process: no second thread, no compiler run
    assert (cache.compiler(), cache.flags()) == found and len(fresh_probe) == n


SHARED = "int ts_shared_twice(int x) { return 2 * x; }\n"


def _module(root, k):
    """A module of its own (answer + k) calling the shared object's function."""
    src = f"int ts_shared_twice(int x);\nint answer(int x) {{ return ts_shared_twice(x) + {k}; }}\n"
    return cache.load(src, "int answer(int x);", root, shared=[SHARED])


def test_a_shared_part_is_compiled_once_and_linked_into_each_module(tmp_path, monkeypatch):
    root = str(tmp_path)
    builds = []
    real = cache._build_object
    monkeypatch.setattr(cache, "_build_object", lambda *a: builds.append(a) or real(*a))
    assert _module(root, 1).lib.answer(5) == 11
    assert _module(root, 2).lib.answer(5) == 12
    assert len(builds) == 1
    kinds = sorted(e["name"][:4] for e in cache.entries(root))
    assert kinds == ["tsk_", "tsk_", "tso_"] and all(e["ok"] for e in cache.entries(root))
    assert cache.clear(root) == 3 and cache.entries(root) == []


def test_a_truncated_shared_object_is_rebuilt(tmp_path, monkeypatch):
    root = str(tmp_path)
    obj = cache.shared_object(SHARED, root)
    size = os.path.getsize(obj)
    with open(obj, "r+b") as f:
        f.truncate(size // 2)
    assert [e["ok"] for e in cache.entries(root)] == [False]
    assert _module(root, 3).lib.answer(1) == 5  # links a rebuilt object
    assert os.path.getsize(obj) == size and all(e["ok"] for e in cache.entries(root))


def test_a_compile_error_in_a_shared_part_names_its_source(tmp_path):
    with pytest.raises(cache.CompileError, match=r"(?s)failed/tso_\w+\.c.*undeclared"):
        cache.load("int answer(int x) { return x; }\n", "int answer(int x);", str(tmp_path),
                   shared=["int broken(void) { return missing; }\n"])


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_another_thread_builds_can_build():
    import multiprocessing
    import threading

    held, done = threading.Event(), threading.Event()

    def build_in_flight():
        with cache._probe_lock, cache._object_locks.setdefault("tso_in_flight", threading.Lock()):
            held.set()
            done.wait(30)

    worker = threading.Thread(target=build_in_flight)
    worker.start()
    held.wait(30)
    try:
        child = multiprocessing.get_context("fork").Process(target=_acquire_both)
        child.start()
        child.join(30)
        assert child.exitcode == 0  # both locks free in the child
    finally:
        done.set()
        worker.join()


def _acquire_both():
    import sys
    import threading

    probe = cache._probe_lock.acquire(timeout=5)
    obj = cache._object_locks.setdefault("tso_in_flight", threading.Lock()).acquire(timeout=5)
    sys.exit(0 if probe and obj else 1)

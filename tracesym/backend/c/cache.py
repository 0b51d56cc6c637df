"""The on-disk cache of compiled kernel modules, under `config.compiledir`.

A module is a cffi extension (API mode: direct C calls, no libffi) built from C source holding
every kernel of a function, by direct compiler calls (no setuptools).  Its key is the
sha256 of the source, its declarations, the compiler (path, version), the flags, the CPU
(the flags include -march=native) and the Python and cffi versions; the module is named
after the key, so one process can load many.  The flags keep numpy's numbers: no
-ffast-math, no FMA contraction, wrapping signed integers; where glibc's libmvec exists,
contiguous loops call its SIMD math functions (`cgen.VECTOR_MATH`); where the compiler
builds OpenMP code, big contiguous loops run on several threads (`cgen.parallel_min`).
Whether it does is found by building a probe once per compiler and cache directory: the
answer is recorded there (`toolchain-*.json`), so a new process starts without running
the compiler.

The compiler's time is most of a cold compile.  The source comes as parts (one per kernel);
they are compiled in units, one per core at most, at the same time as cffi's wrapper, which
only converts arguments and is compiled without optimisation (it would take the longest at
-O3); then one link.  A part whose source is the same in every module that holds it (the
elementwise driver) is shared: compiled once per cache directory into an object
(`tso_<key>/`, an entry like a module's) that modules link.  Parts that share static
helpers go to one unit.

An entry is a directory `<compiledir>/<module>/` holding the sources, the shared object and
a checksum of the shared object, written last.  It is built in a private temporary directory
and published with one `os.replace` while the entry's lock (`fcntl.flock` on
`<module>.lock`) is held, so processes compiling the same kernel at once wait for one build
and load it.  An entry whose checksum is missing or wrong (a truncated copy, a crash while
publishing) is rebuilt.  The cache directory is created private (0o700), and a directory or
file in it that another user owns is refused: loading it would run that user's code.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import cffi
from cffi.recompiler import make_c_source

from ...errors import TracesymError

FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fwrapv",
         "-std=gnu11", "-fPIC", "-shared", "-g0", "-w")
#: with glibc's vector math library: SIMD exp, tanh, ... in contiguous loops
MVEC_FLAGS = ("-DTS_LIBMVEC", "-fopenmp-simd")
#: where the compiler builds and links OpenMP code: threaded contiguous loops
OPENMP_FLAGS = ("-fopenmp",)
#: the cffi wrapper only converts arguments (its calls into cffi's backend are the cost of a
#: call at any level); -O3 would triple its compile time
WRAPPER_OPT = "-O0"
#: kernel source is compiled in units of at least this many bytes (about 60 ms of -O3), in
#: parallel, one per core at most; a unit costs 25 ms more to compile (header, declarations)
UNIT_BYTES = 2048
_loaded: dict[str, object] = {}  # module name -> loaded module, for this process


class CacheError(TracesymError, PermissionError):
    """The kernel cache directory (`config.compiledir`) or an entry in it belongs to another
    user, or cannot be created.  Point `compiledir` at a directory of your own
    (`TRACESYM_FLAGS=compiledir=...`) or remove the foreign entry."""


class CompileError(TracesymError, RuntimeError):
    """The C compiler rejected generated kernel source.  The message gives the path of the
    source file and the compiler's output; please report it with that file."""


def _uid() -> int:
    return os.getuid()


def _check_owner(path: str):
    st = os.stat(path)
    if st.st_uid != _uid():
        raise CacheError(f"{path} belongs to uid {st.st_uid}, not to you (uid {_uid()}); "
                         "refusing to use it as a kernel cache entry: remove it, or set "
                         "config.compiledir to a directory of your own")


@functools.lru_cache(maxsize=None)
def _cc_path() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(os.environ.get("CC", cc).split()[0])


#: what this process found of its compiler: "version", "found" (`_probe`'s answer),
#: "flags", "recorded" (the cache directories known to hold its record); `_probe_lock` is
#: held while they are found (`probe_soon` finds them on a thread of its own)
_probed: dict = {}
_probe_lock = threading.RLock()


def compiler() -> tuple[str, str] | None:
    """(path of the C compiler, its version), or None when there is none."""
    path = _cc_path()
    if path is None:
        return None
    with _probe_lock:
        if "version" not in _probed:
            try:
                out = subprocess.run([path, "-dumpfullversion", "-dumpversion"],
                                     capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                return None
            _probed["version"] = out.stdout.strip()
    return path, _probed["version"]


def flags() -> tuple:
    """The compiler flags, with `MVEC_FLAGS` where the compiler finds libmvec and
    `OPENMP_FLAGS` where it builds a shared object using OpenMP."""
    with _probe_lock:
        return _flags()


def _flags() -> tuple:
    if "flags" not in _probed:
        path = _cc_path()
        if path is not None and "found" not in _probed:
            _probed["found"] = _probe(path)
        if compiler() is None:
            _probed["flags"] = FLAGS
        else:
            found = _probed["found"]
            _probed["flags"] = (FLAGS + (MVEC_FLAGS if found["mvec"] else ())
                                + (OPENMP_FLAGS if found["openmp"] else ()))
    return _probed["flags"]


def libs() -> tuple:
    return ("-lmvec", "-lm") if "-DTS_LIBMVEC" in flags() else ("-lm",)


def _probe(cc: str) -> dict:
    """Ask `cc` where libmvec is and whether it builds a shared object with an OpenMP loop,
    and its version where `compiler` has not: the three run at once (tens of milliseconds,
    before a first build in an empty cache can start)."""
    src = ("#include <omp.h>\nint f(double *x, int n) {\n  #pragma omp parallel for "
           "schedule(static)\n  for (int i = 0; i < n; i++) x[i] += 1;\n"
           "  return omp_get_max_threads();\n}\n")
    with tempfile.TemporaryDirectory() as tmp:
        c_file = os.path.join(tmp, "probe.c")
        with open(c_file, "w") as f:
            f.write(src)
        openmp = _started([cc, "-O0", "-fPIC", "-shared", "-w", *OPENMP_FLAGS, c_file,
                           "-o", os.path.join(tmp, "probe.so")])
        mvec = _started([cc, "-print-file-name=libmvec.so"])
        version = None if "version" in _probed else _started([cc, "-dumpfullversion",
                                                              "-dumpversion"])
        out = _finished(version, 30)
        if out is not None:
            _probed["version"] = out.strip()
        out = (_finished(mvec, 30) or "").strip()
        return {"mvec": out if os.path.isabs(out) and os.path.exists(out) else "",
                "openmp": _finished(openmp, 60) is not None}


def _started(cmd):
    try:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None


def _finished(proc, timeout) -> str | None:
    """The output of a command `_started`, or None where it did not start or failed."""
    if proc is None:
        return None
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return out if proc.returncode == 0 else None


def probe_soon(root: str):
    """Start finding the compiler's version and probe (`_recorded`, writing `root`'s record)
    on a thread of its own, so that they run while the caller imports the linker and renders
    its kernels (a first build in an empty cache otherwise waits 40 ms for them); whoever
    needs them next waits for that thread (`_probe_lock`)."""
    if root in _probed.get("recorded", ()):
        return

    def run():
        try:
            _recorded(cache_dir(root), write=True)
        except Exception:  # noqa: BLE001 (the caller's own call meets it and reports it)
            pass

    started = threading.Event()

    def locked_run():
        with _probe_lock:
            started.set()
            run()

    threading.Thread(target=locked_run, name="tracesym-probe", daemon=True).start()
    started.wait()  # the lock is taken: a later caller waits for the probe, not the reverse


def _recorded(root: str, write: bool = False):
    """Take the compiler's version and probe from `root`'s record of the same compiler
    binary, so that a new process runs no compiler before it builds; with `write`, where
    `root` holds no record, probe (if this process has not) and write one."""
    with _probe_lock:
        _read_or_probe(root, write)


def _read_or_probe(root: str, write: bool):
    path = _cc_path()
    done = _probed.setdefault("recorded", set())
    if path is None or root in done:
        return
    record = _record_path(root, path)
    found = _read_record(record)
    if found is not None:
        _probed.setdefault("version", found.pop("version"))
        _probed.setdefault("found", found)
        done.add(root)
    elif write:
        flags()  # the probe, which asks the version too
        if compiler() is not None:
            _write_record(record, {"version": compiler()[1], **_probed["found"]})
            done.add(root)


def _record_path(root: str, cc: str) -> str:
    """The record of compiler `cc`'s probe in `root`, named after the binary (resolved path,
    size, mtime): a changed compiler is probed again."""
    real = os.path.realpath(cc)
    st = os.stat(real)
    ident = f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0{_RECORD_FORMAT}"
    return os.path.join(root, f"toolchain-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.json")


_RECORD_FORMAT = 1


def _read_record(path: str) -> dict | None:
    """The recorded probe, or None when there is none, it is damaged, or the libmvec it
    found is gone.  A record another user owns is refused (CacheError)."""
    try:
        _check_owner(path)
        with open(path) as f:
            rec = json.load(f)
    except CacheError:
        raise
    except (OSError, ValueError):  # none yet, or unreadable: `cache_dir` says why if it must
        return None
    if not (isinstance(rec, dict) and isinstance(rec.get("version"), str)
            and isinstance(rec.get("mvec"), str) and isinstance(rec.get("openmp"), bool)):
        return None
    if rec["mvec"] and not os.path.exists(rec["mvec"]):
        return None
    return rec


def _write_record(path: str, rec: dict):
    """Write the record whole or not at all (readers never see a partial one)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".toolchain-", dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as f:
            json.dump(rec, f)
        os.replace(tmp, path)
    except OSError:  # a read-only cache still works; the next process probes again
        pass


def toolchain_problem(root: str | None = None) -> str | None:
    """Why C kernels cannot be built here, or None when they can.  `root`: the cache
    directory, whose record of the compiler saves running it (`_recorded`)."""
    if root is not None:
        _recorded(root)
    if compiler() is None:
        return "no C compiler found (set CC, or install gcc)"
    inc = sysconfig.get_paths()["include"]
    if not os.path.isfile(os.path.join(inc, "Python.h")):
        return f"Python headers are missing ({inc}/Python.h; install python3-dev)"
    return None


@functools.lru_cache(maxsize=None)
def _cpu() -> str:
    info = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    info += line
                if line.strip() == "":
                    break
    except OSError:
        info += platform.processor()
    return info


def key_of(source: str, cdef: str) -> str:
    h = hashlib.sha256()
    for part in (source, cdef, repr(compiler()), " ".join(flags() + libs()), _cpu(), sys.version,
                 cffi.__version__, sysconfig.get_config_var("EXT_SUFFIX") or ""):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Entry:
    """The files of one cached module, or of one shared object (`suffix` ".o")."""

    def __init__(self, root: str, name: str, suffix: str | None = None):
        self.name = name
        self.dir = os.path.join(root, name)
        self.so = os.path.join(self.dir, name + (suffix or sysconfig.get_config_var("EXT_SUFFIX")))
        self.source = os.path.join(self.dir, name + ".c")
        self.checksum = os.path.join(self.dir, "checksum")

    def valid(self) -> bool:
        """True when the entry is complete and intact (raises CacheError if it is foreign)."""
        if not os.path.isdir(self.dir):
            return False
        _check_owner(self.dir)
        try:
            with open(self.checksum) as f:
                want = f.read().strip()
            _check_owner(self.so)
            return _sha(self.so) == want
        except FileNotFoundError:
            return False


def cache_dir(root: str) -> str:
    """`root`, created private to this user if it does not exist; refused if foreign."""
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except OSError as e:
        raise CacheError(f"cannot create the kernel cache {root}: {e}") from None
    _check_owner(root)
    return root


def load(source, cdef: str, root: str, header: str = "", shared=()):
    """The compiled module (with `.lib` and `.ffi`) for `source`, building it if needed.

    `source` is C source text, or a list of parts (whole functions): a big module is
    compiled as several units in parallel, each part after `header` and `cdef`, the
    declarations, in plain C, of what the module exports.  A part may call what another
    exports; what several parts share otherwise (static helpers, macros) goes in `header`.
    `shared` parts are linked from their objects (`shared_object`: after `header` alone, so
    each declares what it calls)."""
    parts = [source] if isinstance(source, str) else list(source)
    _recorded(cache_dir(root), write=True)
    key = key_of(header + ("\n" if header else "") + "\n".join(parts)
                 + "".join("\0shared\0" + src for src in shared), cdef)
    name = "tsk_" + key[:24]
    mod = _loaded.get(name)
    if mod is not None:
        return mod
    entry = Entry(root, name)
    if not entry.valid():
        with _locked(os.path.join(root, name + ".lock")):
            if not entry.valid():
                _build(entry, header, parts, cdef, root, shared)
    mod = _import(entry)
    _loaded[name] = mod
    return mod


#: shared object name -> the lock its build in this process holds (another thread that needs
#: it waits for that build, then finds it in the cache)
_object_locks: dict[str, threading.Lock] = {}


def shared_object(source: str, root: str, header: str = "") -> str:
    """The path of `source`'s object (compiled after `header` with the modules' flags),
    building it if `root` does not hold it intact; many modules link it, each compiling
    none of it."""
    name = "tso_" + key_of(header + "\0" + source, "")[:24]
    entry = Entry(root, name, ".o")
    with _object_locks.setdefault(name, threading.Lock()):
        if not entry.valid():
            with _locked(os.path.join(root, name + ".lock")):
                if not entry.valid():
                    _build_object(entry, header, source, root)
    return entry.so


def prepare(root: str, shared=(), header: str = ""):
    """Start, on a thread of its own, what a first build in `root` needs whatever the
    kernels: the compiler's probe (`probe_soon`), then the objects of the `shared` parts
    most modules hold, so that they compile while the caller still rewrites its graph."""
    if root in _prepared:
        return
    _prepared.add(root)
    probe_soon(root)

    def run():
        try:
            cache_dir(root)
            for src in shared:
                shared_object(src, root, header)
        except Exception:  # noqa: BLE001 (the build that needs them meets it and reports it)
            pass

    # not a daemon: a process that exits meanwhile waits for the build, which leaves no
    # half-built entry behind
    threading.Thread(target=run, name="tracesym-prepare").start()


_prepared: set = set()


def _fresh_locks_after_fork():
    """A forked child holds only the thread that forked: a lock another thread held (a probe
    or a shared object's build in flight) would never be released there."""
    global _probe_lock
    _probe_lock = threading.RLock()
    _object_locks.clear()


os.register_at_fork(after_in_child=_fresh_locks_after_fork)


class _locked:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _units(header: str, parts: list, cdef: str) -> list:
    """The parts grouped into compile units of `UNIT_BYTES` or more, at most one per core,
    balanced by source size; each starts with `_PRELUDE`, `header` and `cdef`.  Parts that
    hold the same guarded helpers (`#ifndef TS_...`) go to one unit, which compiles them once."""
    n = max(1, min(_cores(), sum(map(len, parts)) // UNIT_BYTES))
    together: dict[str, list] = {}  # helpers' guard -> the part indices holding them
    clusters = []
    for i, part in enumerate(parts):
        guards = _GUARD.findall(part)
        cluster = next((together[g] for g in guards if g in together), None)
        if cluster is None:
            cluster = []
            clusters.append(cluster)
        cluster.append(i)
        for g in guards:
            together[g] = cluster
    groups, sizes = [[] for _ in range(n)], [0] * n
    for cluster in sorted(clusters, key=lambda c: -sum(len(parts[i]) for i in c)):
        g = sizes.index(min(sizes))
        groups[g] += cluster
        sizes[g] += sum(len(parts[i]) for i in cluster)
    return [_PRELUDE + header + "\n" + cdef + "\n" + "\n".join(parts[i] for i in sorted(g))
            for g in groups if g]


_GUARD = re.compile(r"^#ifndef (TS_\w+)", re.M)


#: the C library headers cffi's wrapper includes before a module's own source
_PRELUDE = "".join(f"#include <{h}.h>\n"
                   for h in ("stddef", "stdint", "stdlib", "string", "math"))


@functools.lru_cache(maxsize=None)
def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Jobs:
    """Compiler commands running at once (a unit per core at most, and the wrapper)."""

    def __init__(self):
        self.runs = []

    def start(self, cmd, source):
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
        except OSError as e:
            proc = e
        self.runs.append((cmd, source, proc))

    def wait(self) -> dict | None:
        """Wait for every command started: the first that failed ("cmd", "source" it
        compiled, compiler "output"), or None."""
        failed = None
        for cmd, source, proc in self.runs:
            if isinstance(proc, OSError):
                out, bad = str(proc), True
            else:
                out, bad = proc.communicate()[1].strip(), proc.returncode != 0
            if bad and failed is None:
                failed = {"cmd": cmd, "source": source, "output": out}
        self.runs = []
        return failed

    def stop(self):
        """Kill what still runs (after an error elsewhere)."""
        for _, _, proc in self.runs:
            if not isinstance(proc, OSError) and proc.poll() is None:
                proc.kill()
                proc.communicate()


def _build(entry: Entry, header: str, parts: list, cdef: str, root: str, shared=()):
    """Compile the kernel units, the cffi wrapper (argument conversion only: `WRAPPER_OPT`)
    and the shared objects not yet built in parallel, link them, then publish the entry whole."""
    cc, fl = compiler()[0], list(flags())
    obj_flags = [cc, *fl, "-fvisibility=hidden", "-c"]  # kernels bind inside the module
    tmp = tempfile.mkdtemp(prefix=".build-", dir=root)
    jobs, objs = _Jobs(), []
    pool = ThreadPoolExecutor(len(shared)) if shared else None
    try:
        linked = [pool.submit(shared_object, src, root, header) for src in shared]
        for k, unit in enumerate(_units(header, parts, cdef)):  # first: they need no cffi
            c_file = os.path.join(tmp, f"{entry.name}_{k}.c")
            with open(c_file, "w") as f:
                f.write(unit)
            objs.append(c_file[:-2] + ".o")
            jobs.start([*obj_flags, c_file, "-o", objs[-1]], c_file)
        ffi = cffi.FFI()
        ffi.cdef(cdef)
        c_file = os.path.join(tmp, entry.name + ".c")
        make_c_source(ffi, entry.name, cdef, c_file)
        objs.append(c_file[:-2] + ".o")
        inc = sysconfig.get_paths()["include"]
        jobs.start([*obj_flags, WRAPPER_OPT, f"-I{inc}", c_file, "-o", objs[-1]], c_file)
        res = jobs.wait()
        linked = [f.result() for f in linked]  # a compile error in one raises here
        so = os.path.join(tmp, os.path.basename(entry.so))
        if res is None:
            jobs.start([cc, *fl, *objs, *linked, "-o", so, *libs()], c_file)
            res = jobs.wait()
        if res is not None:
            _compile_error(res, root)
        for o in objs:
            os.remove(o)
        _publish(entry, tmp, so)
    finally:
        jobs.stop()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _build_object(entry: Entry, header: str, source: str, root: str):
    """Compile one shared object (`shared_object`) and publish its entry whole."""
    cc, fl = compiler()[0], list(flags())
    tmp = tempfile.mkdtemp(prefix=".build-", dir=root)
    jobs = _Jobs()
    try:
        c_file = os.path.join(tmp, entry.name + ".c")
        with open(c_file, "w") as f:
            f.write(_PRELUDE + header + "\n" + source)
        obj = c_file[:-2] + ".o"
        jobs.start([cc, *fl, "-fvisibility=hidden", "-c", c_file, "-o", obj], c_file)
        res = jobs.wait()
        if res is not None:
            _compile_error(res, root)
        _publish(entry, tmp, obj)
    finally:
        jobs.stop()
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _publish(entry: Entry, tmp: str, product: str):
    """Write `product`'s checksum last and move the build directory `tmp` into place (a
    corrupt or truncated entry there is replaced whole)."""
    with open(os.path.join(tmp, "checksum"), "w") as f:
        f.write(_sha(product) + "\n")
    if os.path.isdir(entry.dir):
        shutil.rmtree(entry.dir)
    os.replace(tmp, entry.dir)


def _compile_error(res: dict, root: str):
    """Keep the source the compiler failed on in `<root>/failed/` and raise CompileError."""
    d = os.path.join(root, "failed")
    os.makedirs(d, mode=0o700, exist_ok=True)
    kept = os.path.join(d, os.path.basename(res["source"]))
    shutil.copyfile(res["source"], kept)
    raise CompileError(f"the C compiler failed on generated kernels, source kept in "
                       f"{kept}\n  command: {' '.join(res['cmd'])}\n{res['output']}")


def _import(entry: Entry):
    # Idle OpenMP threads sleep rather than spin (unless the user chose): a kernel is one
    # step among numpy and BLAS calls, and threads spinning after it steal the cores the next
    # step needs (up to 50x slower kernels on a busy 2-core machine).  libgomp reads this
    # when it is loaded, i.e. with the first kernel module.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    loader = importlib.machinery.ExtensionFileLoader(entry.name, entry.so)
    spec = importlib.util.spec_from_file_location(entry.name, entry.so, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


# -- inspection (python -m tracesym cache ...) ---------------------------------------------------

def entries(root: str) -> list[dict]:
    """One dict per cached module or shared object: name, size in bytes, mtime, whether it is
    intact."""
    out = []
    if not os.path.isdir(root):
        return out
    for name in sorted(os.listdir(root)):
        if not name.startswith(_ENTRY_PREFIXES) or not os.path.isdir(os.path.join(root, name)):
            continue
        e = Entry(root, name, ".o" if name.startswith("tso_") else None)
        try:
            ok = e.valid()
        except CacheError:
            ok = False
        size = sum(os.path.getsize(os.path.join(e.dir, f)) for f in os.listdir(e.dir))
        out.append({"name": name, "bytes": size, "mtime": os.path.getmtime(e.dir), "ok": ok})
    return out


#: the names of modules' entries and of shared objects' entries
_ENTRY_PREFIXES = ("tsk_", "tso_")


def clear(root: str) -> int:
    """Remove every entry (and lock, leftover build and compiler probe record) of this user's;
    the count of entries removed."""
    n = 0
    if not os.path.isdir(root):
        return n
    _check_owner(root)
    for name in os.listdir(root):
        p = os.path.join(root, name)
        if name.startswith(_ENTRY_PREFIXES) and os.path.isdir(p):
            shutil.rmtree(p)
            n += 1
        elif (name.startswith((".build-", "toolchain-", ".toolchain-")) or name.endswith(".lock")
              or name == "failed"):
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    _loaded.clear()
    return n

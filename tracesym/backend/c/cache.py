"""The on-disk cache of compiled kernel modules, under `config.compiledir`.

A module is a cffi extension (API mode: direct C calls, no libffi) built from one C source
holding every kernel of a function, by one compiler call (no setuptools).  Its key is the
sha256 of the source, its declarations, the compiler (path, version), the flags, the CPU
(the flags include -march=native) and the Python and cffi versions; the module is named
after the key, so one process can load many.  The flags keep numpy's numbers: no
-ffast-math, no FMA contraction, wrapping signed integers; where glibc's libmvec exists,
contiguous loops call its SIMD math functions (`cgen.VECTOR_MATH`); where the compiler
builds OpenMP code, big contiguous loops run on several threads (`cgen.PARALLEL_MIN`).

An entry is a directory `<compiledir>/<module>/` holding the source, the shared object and a
checksum of the shared object, written last.  It is built in a private temporary directory
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
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import cffi
from cffi.recompiler import make_c_source

from ...errors import TracesymError

FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fwrapv",
         "-std=gnu11", "-fPIC", "-shared", "-g0", "-w")
#: with glibc's vector math library: SIMD exp, tanh, ... in contiguous loops
MVEC_FLAGS = ("-DTS_LIBMVEC", "-fopenmp-simd")
#: where the compiler builds and links OpenMP code: threaded contiguous loops
OPENMP_FLAGS = ("-fopenmp",)
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
def compiler() -> tuple[str, str] | None:
    """(path of the C compiler, its version), or None when there is none."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    path = shutil.which(os.environ.get("CC", cc).split()[0])
    if path is None:
        return None
    try:
        out = subprocess.run([path, "-dumpfullversion", "-dumpversion"], capture_output=True,
                             text=True, timeout=30)
    except OSError:
        return None
    return path, out.stdout.strip()


@functools.lru_cache(maxsize=None)
def flags() -> tuple:
    """The compiler flags, with `MVEC_FLAGS` where the compiler finds libmvec and
    `OPENMP_FLAGS` where it builds a shared object using OpenMP."""
    cc = compiler()
    if cc is None:
        return FLAGS
    out = subprocess.run([cc[0], "-print-file-name=libmvec.so"], capture_output=True,
                         text=True).stdout.strip()
    mvec = MVEC_FLAGS if os.path.isabs(out) and os.path.exists(out) else ()
    return FLAGS + mvec + (OPENMP_FLAGS if _builds_openmp(cc[0]) else ())


def _builds_openmp(cc: str) -> bool:
    """Whether `cc` compiles and links a shared object with an OpenMP parallel loop."""
    src = ("#include <omp.h>\nint f(double *x, int n) {\n  #pragma omp parallel for "
           "schedule(static)\n  for (int i = 0; i < n; i++) x[i] += 1;\n"
           "  return omp_get_max_threads();\n}\n")
    with tempfile.TemporaryDirectory() as tmp:
        c_file = os.path.join(tmp, "probe.c")
        with open(c_file, "w") as f:
            f.write(src)
        try:
            res = subprocess.run([cc, *FLAGS, *OPENMP_FLAGS, c_file, "-o",
                                  os.path.join(tmp, "probe.so")], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return res.returncode == 0


def libs() -> tuple:
    return ("-lmvec", "-lm") if "-DTS_LIBMVEC" in flags() else ("-lm",)


def toolchain_problem() -> str | None:
    """Why C kernels cannot be built here, or None when they can."""
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
    """The files of one cached module."""

    def __init__(self, root: str, name: str):
        self.name = name
        self.dir = os.path.join(root, name)
        self.so = os.path.join(self.dir, name + sysconfig.get_config_var("EXT_SUFFIX"))
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


def load(source: str, cdef: str, root: str):
    """The compiled module (with `.lib` and `.ffi`) for `source`, building it if needed."""
    key = key_of(source, cdef)
    name = "tsk_" + key[:24]
    mod = _loaded.get(name)
    if mod is not None:
        return mod
    entry = Entry(cache_dir(root), name)
    if not entry.valid():
        with _locked(os.path.join(root, name + ".lock")):
            if not entry.valid():
                _build(entry, source, cdef, root)
    mod = _import(entry)
    _loaded[name] = mod
    return mod


class _locked:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _build(entry: Entry, source: str, cdef: str, root: str):
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    tmp = tempfile.mkdtemp(prefix=".build-", dir=root)
    try:
        c_file = os.path.join(tmp, entry.name + ".c")
        make_c_source(ffi, entry.name, source, c_file)
        so = os.path.join(tmp, os.path.basename(entry.so))
        inc = sysconfig.get_paths()["include"]
        cmd = [compiler()[0], *flags(), f"-I{inc}", c_file, "-o", so, *libs()]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            failed = os.path.join(root, "failed")
            os.makedirs(failed, mode=0o700, exist_ok=True)
            kept = os.path.join(failed, entry.name + ".c")
            shutil.copyfile(c_file, kept)
            raise CompileError(f"the C compiler failed on generated kernels, source kept in "
                               f"{kept}\n  command: {' '.join(cmd)}\n{res.stderr.strip()}")
        with open(os.path.join(tmp, "checksum"), "w") as f:
            f.write(_sha(so) + "\n")
        if os.path.isdir(entry.dir):  # corrupt or truncated: replaced whole
            shutil.rmtree(entry.dir)
        os.replace(tmp, entry.dir)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _import(entry: Entry):
    loader = importlib.machinery.ExtensionFileLoader(entry.name, entry.so)
    spec = importlib.util.spec_from_file_location(entry.name, entry.so, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


# -- inspection (python -m tracesym cache ...) ---------------------------------------------------

def entries(root: str) -> list[dict]:
    """One dict per cached module: name, size in bytes, mtime, whether it is intact."""
    out = []
    if not os.path.isdir(root):
        return out
    for name in sorted(os.listdir(root)):
        if not name.startswith("tsk_") or not os.path.isdir(os.path.join(root, name)):
            continue
        e = Entry(root, name)
        try:
            ok = e.valid()
        except CacheError:
            ok = False
        size = sum(os.path.getsize(os.path.join(e.dir, f)) for f in os.listdir(e.dir))
        out.append({"name": name, "bytes": size, "mtime": os.path.getmtime(e.dir), "ok": ok})
    return out


def clear(root: str) -> int:
    """Remove every entry (and lock and leftover build) of this user's; the count removed."""
    n = 0
    if not os.path.isdir(root):
        return n
    _check_owner(root)
    for name in os.listdir(root):
        p = os.path.join(root, name)
        if name.startswith("tsk_") and os.path.isdir(p):
            shutil.rmtree(p)
            n += 1
        elif name.startswith(".build-") or name.endswith(".lock") or name == "failed":
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    _loaded.clear()
    return n

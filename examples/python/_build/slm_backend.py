"""A PEP 517 build backend for the slm Python package, standard library
only (no setuptools, no wheel, no network): `pip install ./examples/python`
works offline.

The wheel holds the slm package and, when one is found, the shared library
next to it (slm/libslm.so, slm.dll, libslm.dylib), where the package looks
first:
  1. $SLM_LIBRARY, if set;
  2. the repository's build/ (examples/python/../../build), after running
     `make build/libslm.so` there if the library is missing and make and the
     Makefile are there.
Without a library the wheel is pure Python, and importing slm says how to
build the library or point SLM_LIBRARY at it.
"""

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # examples/python
ROOT = os.path.normpath(os.path.join(HERE, os.pardir, os.pardir))
NAME = "slm"


def _version():
    for path in (os.path.join(ROOT, "slm.h"),):
        try:
            with open(path, encoding="utf-8") as f:
                m = re.search(r'#define SLM_VERSION_STRING "([0-9.]+)"', f.read())
            if m:
                return m.group(1)
        except OSError:
            pass
    with open(os.path.join(HERE, "slm", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


def _lib_names():
    if sys.platform == "win32":
        return ["slm.dll"]
    if sys.platform == "darwin":
        return ["libslm.dylib"]
    return ["libslm.so"]


def _find_library():
    """(path, name in the package) of the shared library, or None."""
    env = os.environ.get("SLM_LIBRARY")
    if env:
        if not os.path.isfile(env):
            raise RuntimeError("SLM_LIBRARY=%s: no such file" % env)
        return env, os.path.basename(_lib_names()[0])
    build = os.path.join(ROOT, "build")
    for n in _lib_names():
        p = os.path.join(build, n)
        if os.path.exists(p):
            return os.path.realpath(p), n
    if os.path.exists(os.path.join(ROOT, "Makefile")) and shutil.which("make") and sys.platform != "win32":
        sys.stderr.write("slm: building the shared library: make -C %s build/libslm.so\n" % ROOT)
        r = subprocess.run(["make", "-C", ROOT, "build/libslm.so"], stdout=sys.stderr, stderr=sys.stderr)
        p = os.path.join(build, "libslm.so")
        if r.returncode == 0 and os.path.exists(p):
            return os.path.realpath(p), "libslm.so"
    sys.stderr.write("slm: no shared library found or built: the package is installed without it; build it with "
                     "`make` in the slm repository and set SLM_LIBRARY, or reinstall\n")
    return None


def _metadata():
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: Small language models from GGUF files through "
            "the slm C library (ctypes, no dependencies)\nLicense: MIT\nRequires-Python: >=3.8\n" % (NAME, _version()))


def _tag(with_lib):
    if not with_lib:
        return "py3-none-any"
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "py3-none-" + plat


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


# ---- PEP 517 hooks ----------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    di = "%s-%s.dist-info" % (NAME, _version())
    os.makedirs(os.path.join(metadata_directory, di), exist_ok=True)
    with open(os.path.join(metadata_directory, di, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    return di


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = _version()
    lib = _find_library()
    tag = _tag(lib is not None)
    files = []
    pkg = os.path.join(HERE, NAME)
    for n in sorted(os.listdir(pkg)):
        if n.endswith(".py"):
            with open(os.path.join(pkg, n), "rb") as f:
                files.append(("%s/%s" % (NAME, n), f.read()))
    if lib is not None:
        with open(lib[0], "rb") as f:
            files.append(("%s/%s" % (NAME, lib[1]), f.read()))
    di = "%s-%s.dist-info" % (NAME, version)
    files.append(("%s/METADATA" % di, _metadata().encode()))
    files.append(("%s/WHEEL" % di, ("Wheel-Version: 1.0\nGenerator: slm_backend\nRoot-Is-Purelib: %s\nTag: %s\n"
                                    % ("false" if lib else "true", tag)).encode()))
    record = [_record_line(a, d) for a, d in files] + ["%s/RECORD,," % di]
    files.append(("%s/RECORD" % di, ("\n".join(record) + "\n").encode()))
    name = "%s-%s-%s.whl" % (NAME, version, tag)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in files:
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if arcname.endswith((".so", ".dll", ".dylib")) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return name


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, _version())
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ["pyproject.toml", "_build/slm_backend.py"] + ["slm/" + n for n in sorted(os.listdir(
                os.path.join(HERE, NAME))) if n.endswith(".py")]:
            t.add(os.path.join(HERE, rel), arcname="%s/%s" % (base, rel))
        data = _metadata().encode()
        info = tarfile.TarInfo("%s/PKG-INFO" % base)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return name

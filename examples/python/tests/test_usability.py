"""Ctrl-C during generate()/stream() (a child process sent SIGINT): a
KeyboardInterrupt, and the session usable afterwards. Session state save
and restore. Arguments out of range. The package installed with pip,
offline."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.normpath(os.path.join(PKG, os.pardir, os.pardir))
sys.path.insert(0, PKG)

import slm  # noqa: E402

DEMO = os.path.join(ROOT, "tests", "data", "demo", "kjv-1m-q8_0.gguf")

# The child generates slowly (each piece waits), says READY at the first
# piece, and reports what happened after the parent's SIGINT.
CHILD = r"""
import signal, sys, time
# Python's own Ctrl-C handler, even when started with SIGINT ignored (a
# background job of a non-interactive shell inherits SIG_IGN, and then no
# KeyboardInterrupt could come)
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, %(pkg)r)
import slm
m = slm.Model(%(model)r)
mode = sys.argv[1]
# "fast": the callback does almost nothing, so the signal lands while the
# C code runs and Python sees it at the callback's first bytecode
s = m.session(n_ctx=8192 if mode == "fast" else 256, n_threads=1)
def slow(piece):
    if not slow.told:
        print("READY", flush=True)
        slow.told = True
    if mode != "fast":
        time.sleep(0.02)
slow.told = False
# generate again and again (room left for the 4 tokens after) until the
# signal comes: a parent delayed on a loaded machine must not find the
# child finished
n = s.n_ctx - 16
deadline = time.time() + 60
try:
    while time.time() < deadline:
        s.rewind(0)
        if mode in ("generate", "fast"):
            s.generate("And the LORD said", max_tokens=n, on_text=slow, temperature=1.5, top_k=0, top_p=1, min_p=0)
        else:
            for piece in s.stream("And the LORD said", max_tokens=n):
                slow(piece)
    print("NO INTERRUPT", flush=True)
except KeyboardInterrupt:
    print("INTERRUPTED pos=%%d" %% s.pos, flush=True)
g = s.generate(" And", max_tokens=4, temperature=0)
print("AFTER n=%%d stop=%%s" %% (len(g.tokens), g.stop), flush=True)
"""


@unittest.skipIf(sys.platform == "win32", "POSIX signals")
class TestCtrlC(unittest.TestCase):
    def run_child(self, mode):
        code = CHILD % {"pkg": PKG, "model": DEMO}
        p = subprocess.Popen([sys.executable, "-c", code, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = p.stdout.readline()
            self.assertEqual(line.strip(), b"READY")
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
        return p.returncode, out.decode(), err.decode()

    def check(self, mode):
        rc, out, err = self.run_child(mode)
        self.assertEqual(rc, 0, err)
        self.assertIn("INTERRUPTED pos=", out)
        self.assertIn("AFTER n=4 stop=max_tokens", out, err)
        self.assertNotIn("Exception ignored", err)
        self.assertNotIn("busy", err)

    def test_generate(self):
        self.check("generate")

    def test_stream(self):
        self.check("stream")

    def test_generate_fast_callback(self):
        self.check("fast")


class TestState(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = slm.Model(DEMO)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()

    def test_save_load_same_logits(self):
        ids = self.model.tokenize("And the LORD said unto")
        with self.model.session(n_ctx=64, n_threads=1) as a, self.model.session(n_ctx=96, n_threads=1) as b:
            a.decode(ids)
            data = a.save_state(tokens=ids)
            a.decode([5])
            want = a.logits()
            self.assertEqual(b.load_state(data), ids)
            self.assertEqual(b.pos, len(ids))
            b.decode([5])
            self.assertEqual(b.logits(), want)
            # through a file
            d = tempfile.mkdtemp()
            try:
                path = os.path.join(d, "state.bin")
                a.rewind(len(ids))
                a.save_state(path, tokens=ids)
                b.rewind(0)
                self.assertEqual(b.load_state(path), ids)
                b.decode([5])
                self.assertEqual(b.logits(), want)
                # damaged: refused, the session unchanged
                bad = bytearray(data)
                bad[len(bad) // 2] ^= 1
                pos = b.pos
                with self.assertRaises(slm.FormatError):
                    b.load_state(bytes(bad))
                self.assertEqual(b.pos, pos)
                with self.assertRaises(slm.SlmIOError):
                    b.load_state(os.path.join(d, "missing.bin"))
            finally:
                shutil.rmtree(d)
        with self.model.session(n_ctx=64, n_threads=1, kv_type="f32") as c:
            with self.assertRaises(slm.InvalidArgumentError):
                c.load_state(data)

    def test_arguments_out_of_range(self):
        for kw in ({"n_ctx": 10 ** 12}, {"n_ctx": -1}, {"n_threads": -3}, {"n_batch": 2 ** 31}):
            with self.assertRaises(slm.InvalidArgumentError) as cm:
                self.model.session(**kw)
            self.assertNotIn("negative", str(cm.exception).replace("-1", ""))
            self.assertIn(list(kw)[0], str(cm.exception))


class TestInstall(unittest.TestCase):
    def test_pip_install_offline(self):
        # pip install of examples/python with no index and no build isolation:
        # nothing is downloaded; the installed package finds the library
        # copied into it, from any directory
        try:
            import pip  # noqa: F401
        except ImportError:
            self.skipTest("pip is not installed")
        d = tempfile.mkdtemp()
        try:
            env = dict(os.environ)
            env.pop("SLM_LIBRARY", None)
            env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
            p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation",
                                "--target", os.path.join(d, "site"), PKG], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout.decode())
            code = "import slm; print(slm.version()); print(slm.library_path())"
            env["PYTHONPATH"] = os.path.join(d, "site")
            p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=d, env=env, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            lines = p.stdout.decode().split("\n")
            self.assertEqual(lines[0], slm.version())
            self.assertTrue(lines[1].startswith(os.path.join(d, "site", "slm")), lines[1])
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()


@unittest.skipIf(sys.platform == "win32", "POSIX terminals")
class TestChatLineEditing(unittest.TestCase):
    """`slm chat` in a pseudo-terminal: arrow keys edit the line (they do not
    end up in the message as ^[[D), Up recalls the previous line."""

    def run_pty(self, keys):
        import pty
        import select
        import time
        cli = os.environ.get("SLM_CLI", os.path.join(ROOT, "build", "slm"))
        if not os.path.exists(cli):
            self.skipTest("build/slm not built")
        pid, fd = pty.fork()
        if pid == 0:
            os.environ["TERM"] = "xterm"
            os.execv(cli, [cli, "chat", "-m", DEMO, "-n", "4", "--temp", "0", "-t", "1"])
        out = b""
        deadline = time.time() + 60

        def read_for(sec):
            nonlocal out
            end = time.time() + sec
            while time.time() < end:
                r, _, _ = select.select([fd], [], [], 0.05)
                if r:
                    try:
                        data = os.read(fd, 4096)
                    except OSError:
                        return False
                    if not data:
                        return False
                    out += data
            return True

        read_for(0.5)
        for k in keys:
            os.write(fd, k)
            if not read_for(0.4):
                break
        status = None
        while time.time() < deadline:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                break
            read_for(0.1)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
        return status, out.decode("utf-8", "replace")

    def test_arrows_and_history(self):
        # "/quiX", Left, Delete, "t" -> "/quit": the chat ends
        st, out = self.run_pty([b"/quiX", b"\x1b[D", b"\x1b[3~", b"t\r"])
        self.assertIsNotNone(st, out)
        self.assertEqual(os.waitstatus_to_exitcode(st), 0, out)
        # "/qui" is sent as a message; Up brings it back, "t" makes it /quit
        st, out = self.run_pty([b"/qui\r", b"\x1b[A", b"t\r"])
        self.assertIsNotNone(st, out)
        self.assertEqual(os.waitstatus_to_exitcode(st), 0, out)
        self.assertNotIn("^[[", out)

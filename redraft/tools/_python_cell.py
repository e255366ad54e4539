"""One call of the python tool, inside the sandbox (as its main.py).

It runs the conversation's earlier cells again with their output thrown away, to restore the
state they left, then the new cell, notebook-style: the value of a last expression is shown.
What the host cannot read from the run's stdout and stderr (whether the earlier cells ran
again, the value, the cell's traceback) goes to the host over the run's channel as frames:
8 bytes of length, then JSON. The host acknowledges the last frame before the run may end,
as what a run writes just before it ends could otherwise be lost with the run.

It runs on whatever Python the sandbox has, so it stays plain, unannotated standard library.
"""

import ast
import builtins
import contextlib
import json
import linecache
import os
import random
import select
import sys
import traceback
import types

JOB = "cells.json"
FROM_HOST, TO_HOST = 3, 4
ACK_WAIT_S = 5.0


def main():
    with open(JOB, encoding="utf-8") as handle:
        job = json.load(handle)
    os.remove(JOB)  # the cells' working directory is theirs alone
    link = Link()
    for stream in (sys.stdout, sys.stderr):
        # Line by line: what a cell printed before it hung is there when it is stopped.
        stream.reconfigure(line_buffering=True)
    # The cells' module is __main__, so that what they define can be pickled by name.
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    namespace = module.__dict__
    limit = int(job["max_chars"])
    # The same seed for every replay: `random` gives the earlier cells the values it gave them.
    random.seed(job["seed"])
    for cell in job["earlier"]:
        error = quietly(replay, cell, namespace)
        if error is not None:
            link.send({"replay_failed": cell["number"], "error": capped(error, limit)})
            link.finish(1)
    # The host must know the state was restored even if the new cell then hangs and the run
    # is killed: it acknowledges this frame before the cell starts.
    link.send({"replayed": True})
    link.acknowledged()
    report = run_new(job["cell"], namespace, limit)
    link.send(report)
    link.finish(report.pop("code", 0 if report["ok"] else 1))


class Link:
    """The run's channel to the host, kept out of the cells' way (off fds 3 and 4)."""

    def __init__(self):
        try:
            self.out = os.dup(TO_HOST)  # not inheritable: no program a cell starts gets it
            self.back = os.dup(FROM_HOST)
        except OSError:  # a sandbox that gave no channel: the host will say so
            self.out = self.back = None
            return
        os.close(TO_HOST)
        os.close(FROM_HOST)

    def send(self, message):
        if self.out is None:
            return
        data = json.dumps(message).encode("utf-8")
        view = memoryview(len(data).to_bytes(8, "big") + data)
        while view:
            view = view[os.write(self.out, view) :]

    def acknowledged(self):
        """Wait (a bounded while) for the host to have read the frames sent so far."""
        if self.back is not None:
            try:
                if select.select([self.back], [], [], ACK_WAIT_S)[0]:
                    os.read(self.back, 1)
            except OSError:
                pass

    def finish(self, code):
        """Wait for the host to have read the last frame, then end at once (threads a cell
        left running, or its atexit hooks, must not hold the run past its report)."""
        flush()
        self.acknowledged()
        os._exit(code)


def flush():
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a cell that closed or replaced the stream
            stream.flush()


def quietly(function, *args):
    """`function(*args)` with stdout and stderr (the file descriptors, so that programs a
    cell starts are quiet too) going to /dev/null."""
    flush()
    saved = (os.dup(1), os.dup(2))
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        return function(*args)
    finally:
        flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def filename(cell):
    return f"<cell {cell['number']}>"


def remember(cell):
    """The cell's source for tracebacks, as linecache has it for files."""
    name = filename(cell)
    lines = cell["code"].splitlines(True)
    linecache.cache[name] = (len(cell["code"]), None, lines, name)
    return name


def replay(cell, namespace):
    """Run an earlier cell again: None, or the traceback of its failure this time."""
    try:
        exec(compile(cell["code"], remember(cell), "exec"), namespace)
    except BaseException as exc:
        return describe(exc)
    return None


def run_new(cell, namespace, limit):
    name = remember(cell)
    try:
        tree = ast.parse(cell["code"], name)
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte in the source
        text = "".join(traceback.format_exception_only(type(exc), exc))
        return {"ok": False, "error": capped(text, limit)}
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    try:
        exec(compile(tree, name, "exec"), namespace)
        value = eval(compile(last, name, "eval"), namespace) if last is not None else None
    except SystemExit as exc:
        flush()
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        return {"ok": False, "exit": True, "error": f"SystemExit: {exc.code!r}", "code": code & 255}
    except BaseException as exc:
        flush()
        return {"ok": False, "error": capped(describe(exc), limit)}
    flush()
    if value is None:
        return {"ok": True, "value": None}
    try:
        shown = repr(value)
    except BaseException as exc:
        shown = f"<repr() failed: {describe(exc).strip().splitlines()[-1]}>"
    return {"ok": True, "value": capped(shown, limit)}


def describe(exc):
    """The traceback from the cell's first frame on: this harness's frames say nothing."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell "):
        tb = tb.tb_next
    try:
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:  # an exception whose str() fails
        return f"{type(exc).__name__} (its message cannot be shown)\n"


def capped(text, limit):
    """At most about `limit` characters: the start and the end, which say the most."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


if __name__ == "__main__":
    main()

"""The solution's side of a judged test run: it runs in the sandbox and serves the judge.

Standard library only (it runs on the sandbox's Python). It imports the draft's code as a
module, says whether that worked, then answers the judge's requests on fd 3 (in) and fd 4
(out), one frame each (see `_wire.py`): call this function, get or set that attribute, apply
that operator. Plain data goes back as data; the solution's own objects stay here and go back
as references the judge holds proxies for. Everything here can be tampered with by the code it
serves, which is why the verdict is never made here: the worst this process can do is answer
wrongly, and a wrong answer only fails a test.
"""

import builtins
import json
import os
import sys
import traceback
import types
import warnings

import _redraft_wire as wire

CONFIG = "_redraft_judge.json"
OUTPUT_CHARS = 2000
DOC_CHARS = 2000
IN_FD, OUT_FD = 3, 4
# Operations applied the way the interpreter would, rather than by looking up a method.
BUILTIN_OPS = {
    "len": len,
    "bool": bool,
    "repr": repr,
    "str": str,
    "hash": hash,
    "iter": iter,
    "next": next,
    "int": int,
    "float": float,
    "abs": abs,
    "contains": lambda target, item: item in target,
    "getitem": lambda target, key: target[key],
    "setitem": lambda target, key, value: target.__setitem__(key, value),
    "delitem": lambda target, key: target.__delitem__(key),
    "enter": lambda target: target.__enter__(),
    "exit": lambda target, *exc: target.__exit__(*exc),
}
PLAIN_BASES = (bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset)


class Tail:
    """A text stream of one request: its first characters go to the judge as they are
    written (so a call that never returns still shows what it printed), then only the last
    of the rest is kept, for the reply."""

    def __init__(self, limit, key=None, channel=None):
        self.limit = limit
        self.key, self.channel = key, channel
        self.streamed = 0
        self.rest = ""

    def write(self, text):
        text = str(text)
        room = self.limit - self.streamed if self.channel is not None else 0
        if room > 0 and text:
            self.streamed += len(text[:room])
            self.channel.write({self.key: text[:room]})
            text = text[room:]
        if text:
            self.rest = (self.rest + text)[-2 * self.limit :]
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def value(self):
        return self.rest[-self.limit :]


class Captured:
    """sys.stdout and sys.stderr of one request, for the judge's report."""

    def __init__(self, channel=None):
        self.channel = channel

    def __enter__(self):
        self.saved = sys.stdout, sys.stderr
        self.out = Tail(OUTPUT_CHARS, "out", self.channel)
        self.err = Tail(OUTPUT_CHARS, "err", self.channel)
        sys.stdout, sys.stderr = self.out, self.err
        return self

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self.saved


class Channel:
    def __init__(self):
        self.buffer = b""

    def read(self):
        header = self.read_exact(wire.LENGTH.size)
        if header is None:
            return None
        (size,) = wire.LENGTH.unpack(header)
        body = self.read_exact(size)
        if body is None:
            return None
        return json.loads(body)

    def read_exact(self, size):
        while len(self.buffer) < size:
            part = os.read(IN_FD, max(1 << 16, size - len(self.buffer)))
            if not part:
                return None
            self.buffer += part
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def write(self, message):
        data = memoryview(wire.pack(message))
        while data:
            data = data[os.write(OUT_FD, data) :]


class JudgeFunction:
    """A function of the test's, passed to the solution: calling it asks the judge."""

    def __init__(self, server, node):
        self._server = server
        self._id = node["id"]
        self.__name__ = self.__qualname__ = str(node.get("n") or "function")

    def __call__(self, *args, **kwargs):
        return self._server.ask(
            {
                "op": "callback",
                "target": self._id,
                "args": [self._server.encode(a) for a in args],
                "kwargs": {str(k): self._server.encode(v) for k, v in kwargs.items()},
            }
        )

    def __repr__(self):
        return f"<test function {self.__name__}>"


class Server:
    def __init__(self, config):
        self.config = config
        self.solution_files = {config["solution"]}
        self.objects = {}  # reference id -> object, kept alive while the judge may use it
        self.ids = {}  # id(object) -> reference id
        self.judge_functions = {}
        self.encoder = wire.Encoder(self.export)
        self.channel = Channel()
        self.next_request = 0
        self.module = None

    # -- values ---------------------------------------------------------------------------

    def encode(self, value):
        return self.encoder.encode(value)

    def decode(self, node):
        return wire.Decoder(self.imported).decode(node)

    def imported(self, node):
        if node["$"] == "own":
            return self.objects[node["id"]]
        function = self.judge_functions.get(node["id"])
        if function is None:
            function = self.judge_functions[node["id"]] = JudgeFunction(self, node)
        return function

    def export(self, value):
        """The node of a value that is not plain data: its base's data for subclasses of
        plain types, else a reference."""
        for base in PLAIN_BASES:
            if isinstance(value, base):
                try:
                    return self.encode(base(value))
                except Exception:
                    break
        if isinstance(value, JudgeFunction):
            return {"$": "own", "id": value._id}
        key = id(value)
        ref = self.ids.get(key)
        if ref is None:
            ref = len(self.objects) + 1
            self.objects[ref] = value
            self.ids[key] = ref
        node = {"$": "r", "id": ref, "k": self.kind(value)}
        if node["k"] in ("class", "function"):
            node["n"] = wire.short(getattr(value, "__name__", "?"), 200)
            node["q"] = wire.short(getattr(value, "__qualname__", node["n"]), 200)
            doc = getattr(value, "__doc__", None)
            node["doc"] = wire.short(doc, DOC_CHARS) if isinstance(doc, str) else None
        if node["k"] == "class":
            node["exc"] = builtin_exception(value)
            node["bases"] = [
                self.export(base) for base in value.__bases__ if base.__module__ != "builtins"
            ]
        else:
            node["t"] = self.export(type(value)) if node["k"] == "object" else None
        return node

    @staticmethod
    def kind(value):
        if isinstance(value, type):
            return "class"
        if isinstance(
            value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, JudgeFunction)
        ):
            return "function"
        return "object"

    def exception(self, exc):
        """What the judge needs to raise `exc` as itself: its type, message and the lines
        of the solution in its traceback."""
        frames = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if os.path.basename(frame.filename) in self.solution_files
        ]
        line = None
        if frames:
            line = {"line": frames[-1].lineno, "text": (frames[-1].line or "").strip()}
        text = "".join(["Traceback (most recent call last):\n", *traceback.format_list(frames)])
        text += "".join(traceback.format_exception_only(type(exc), exc))
        kind = type(exc)
        try:
            args = [self.encode(arg) for arg in exc.args]
        except Exception:
            args = [wire.safe_repr(arg) for arg in exc.args]
        return {
            "type": self.export(kind) if kind.__module__ != "builtins" else None,
            "name": wire.short(kind.__name__, 200),
            "builtin": builtin_exception(kind),
            "message": wire.short(safe_str(exc), 4000),
            "args": args,
            "traceback": text[-8000:],
            "line": line,
        }

    # -- requests -------------------------------------------------------------------------

    def target(self, ref):
        return self.module if not ref else self.objects[ref]

    def handle(self, request):
        op = request["op"]
        with Captured(self.channel) as captured, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                value = self.describe() if op == "describe" else self.apply(op, request)
                reply = {"ok": self.encode(value)}
            except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
                reply = {
                    "exit": wire.safe_repr(getattr(exc, "code", None)),
                    "name": type(exc).__name__,
                }
            except BaseException as exc:
                reply = {"raise": self.exception(exc)}
        reply["out"], reply["err"] = captured.out.value(), captured.err.value()
        if caught:
            # Warnings the code raised, for the test to see (pytest.warns): the built-in
            # category nearest to each one's, and its message.
            reply["warnings"] = [
                [builtin_warning(item.category), wire.short(item.message, 2000)]
                for item in caught[:20]
            ]
        return reply

    def apply(self, op, request):
        target = self.target(request.get("target"))
        args = [self.decode(arg) for arg in request.get("args", [])]
        kwargs = {key: self.decode(value) for key, value in request.get("kwargs", {}).items()}
        name = request.get("name")
        if op == "call":
            return target(*args, **kwargs)
        if op == "getattr":
            return getattr(target, name)
        if op == "setattr":
            setattr(target, name, args[0])
            return None
        if op == "delattr":
            delattr(target, name)
            return None
        if op == "builtin":
            return BUILTIN_OPS[name](target, *args)
        if op == "special":
            # As the interpreter looks it up: on the type; missing, it is NotImplemented.
            method = getattr(type(target), name, None)
            if method is None:
                return NotImplemented
            return method(target, *args)
        if op == "release":
            for ref in args:
                value = self.objects.pop(ref, None)
                if value is not None:
                    self.ids.pop(id(value), None)
            return None
        raise ValueError(f"unknown request {op!r}")

    def describe(self):
        """The module's own names: plain data, and the functions and classes it defines (what
        it imported from elsewhere the tests import themselves)."""
        names = {}
        own = self.module.__name__
        for name, value in list(vars(self.module).items()):
            if name.startswith("__") and name.endswith("__"):
                continue
            try:
                if isinstance(value, types.ModuleType):
                    continue
                if not isinstance(value, PLAIN_BASES) and getattr(value, "__module__", own) != own:
                    continue
            except Exception:
                continue  # an object that will not say what it is: not one to test
            names[name] = value
        exported = getattr(self.module, "__all__", None)
        if not (isinstance(exported, (list, tuple)) and all(isinstance(n, str) for n in exported)):
            exported = None
        return {"names": names, "all": list(exported) if exported is not None else None}

    def ask(self, request):
        """A request to the judge (a test's function called back): its answer, serving the
        judge's own requests in the meantime."""
        self.next_request += 1
        request["id"] = -self.next_request
        self.channel.write(request)
        reply = self.serve(until=request["id"])
        if "raise" in reply:
            error = reply["raise"]
            kind = getattr(builtins, str(error.get("builtin") or ""), None)
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                kind = RuntimeError
            raise kind(error.get("message", ""))
        return self.decode(reply.get("ok"))

    def serve(self, until=None):
        while True:
            message = self.channel.read()
            if message is None or message.get("op") == "exit":
                os._exit(0)  # the judge is done
            if "op" in message:
                reply = self.handle(message)
                reply["reply"] = message["id"]
                try:
                    self.channel.write(reply)
                except (ValueError, TypeError, RecursionError) as exc:
                    error = TypeError(f"the answer cannot be sent: {wire.short(exc, 200)}")
                    self.channel.write({"reply": message["id"], "raise": self.exception(error)})
            elif message.get("reply") == until and until is not None:
                return message

    # -- start ----------------------------------------------------------------------------

    def load(self):
        """Import the draft's code as a module; None, or why it does not import."""
        module = types.ModuleType(self.config["module"])
        module.__file__ = self.config["solution"]
        for name in self.config["aliases"]:
            sys.modules[name] = module
        with open(self.config["solution"], encoding="utf-8") as handle:
            source = handle.read()
        with Captured():
            try:
                code = compile(source, self.config["solution"], "exec")
                exec(code, module.__dict__)
            except BaseException as exc:
                error = self.exception(exc)
                if isinstance(exc, SyntaxError):
                    error["traceback"] = "".join(traceback.format_exception_only(type(exc), exc))
                return error
        self.module = module
        return None


def builtin_exception(kind):
    """The nearest built-in Exception class `kind` derives from, by name (None if none)."""
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        return None
    for base in kind.__mro__:
        if base.__module__ == "builtins" and issubclass(base, Exception):
            return base.__name__
    return None


def builtin_warning(kind):
    for base in getattr(kind, "__mro__", ()):
        if base.__module__ == "builtins" and issubclass(base, Warning):
            return base.__name__
    return "UserWarning"


def safe_str(exc):
    try:
        return str(exc)
    except Exception:
        return wire.safe_repr(exc)


def main():
    # What the code prints outside a request, or writes to fd 1 and 2 itself, is its own.
    with open(CONFIG, encoding="utf-8") as handle:
        config = json.load(handle)
    sys.path.insert(0, os.getcwd())
    server = Server(config)
    error = server.load()
    if error is None:
        # The module's names come with the news that it loaded: one exchange fewer.
        with Captured():
            try:
                listing = {"ok": server.encode(server.describe())}
            except BaseException as exc:
                listing = {"raise": server.exception(exc)}
        server.channel.write({"loaded": True, "names": listing})
    else:
        server.channel.write({"loaded": False, "error": error})
    if error is None:
        server.serve()

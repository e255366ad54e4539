"""The judge's view of the solution: a client of its process, and proxies for what it holds.

The solution runs in a sandboxed process of its own (`_server.py`); the tests run here. For
the tests, the solution's module is a `RemoteModule` whose functions forward each call over a
`Link` and return plain data (`_wire.py`); the solution's objects, classes and exceptions are
mirrored by proxies. An exception raised in the solution comes back as its type (a built-in
one, or a local mirror of the solution's class deriving from the nearest built-in) with its
message and the solution's traceback lines.

Whatever goes wrong with the process itself (it dies, hangs past the test's time, exits,
sends what is no value, floods the channel) is a `SolutionFault`: a BaseException, so no
`except Exception` or `pytest.raises(Exception)` in a test can take it for an answer, and it
is recorded, so the judge fails the test even if the test swallowed it.
"""

from __future__ import annotations

import builtins
import contextlib
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redraft.agents.critics.judge import _wire as wire

MAX_FRAME = 16 << 20
MAX_REFERENCES = 100_000
OUTPUT_CHARS = 2000
# Built-ins a test could pass to the solution that would let it act in the judge's process.
UNSAFE_CALLBACKS = {
    getattr(builtins, name)
    for name in (
        "eval",
        "exec",
        "compile",
        "open",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "breakpoint",
        "input",
        "help",
        "exit",
        "quit",
    )
    if hasattr(builtins, name)
}


class SolutionFault(BaseException):
    """The solution's process broke the test's channel: it died, hung, exited or sent what is
    not a value. The test fails, whatever it catches."""


class Link(Protocol):
    """Bytes to and from one run of the solution's process."""

    def send(self, data: bytes) -> None: ...

    def receive_exactly(self, size: int, deadline: float) -> bytes: ...

    def restart(self) -> None:
        """Start the solution's process anew (its earlier objects are gone)."""
        ...

    def why_closed(self) -> str:
        """Why the channel closed, in words: how the process ended."""
        ...


@dataclass
class TestRecord:
    """What the solution did during one test: faults and captured output."""

    __test__ = False

    faults: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    remote: dict[str, Any] | None = None  # the last exception raised in the solution

    def output(self, out: object, err: object, *, rest: bool = False) -> None:
        """What the solution printed; `rest`: the last of what came after the first part."""
        gap = "\n...\n" if rest else ""
        if isinstance(out, str) and out:
            self.stdout = (self.stdout + gap + out)[-OUTPUT_CHARS:]
        if isinstance(err, str) and err:
            self.stderr = (self.stderr + gap + err)[-OUTPUT_CHARS:]


class Remote:
    """The solution's process, as the judge uses it: one request at a time, each answered by
    the deadline of the test it belongs to."""

    def __init__(self, link: Link, *, module: str) -> None:
        self.link = link
        self.module_name = module
        self.deadline = float("inf")
        self.test_timeout_s = float("inf")
        self.record = TestRecord()
        self.broken: str | None = None  # why the current process can no longer be used
        self.generation = 0
        self.load_error: dict[str, Any] | None = None
        self._proxies: dict[int, Any] = {}
        self._classes: dict[int, type] = {}
        self._functions: dict[int, Callable[..., Any]] = {}
        self._function_ids: dict[int, int] = {}
        self._named: dict[str, Any] = {}
        self._listing: dict[str, Any] | None = None  # the names sent with "loaded"
        self._counter = 0
        self._encoder = wire.Encoder(self._export)
        self.module = RemoteModule(self)
        self._modules: dict[str, RemoteModule] = {module: self.module}

    def module_named(self, name: str) -> RemoteModule:
        """The solution's module as imported under `name` (its errors say that name)."""
        found = self._modules.get(name)
        if found is None:
            found = self._modules[name] = RemoteModule(self, name)
        return found

    # -- the process ------------------------------------------------------------------------

    def start(self, deadline: float) -> bool:
        """Wait for the solution to import; False (and `load_error`) if it does not, and a
        SolutionFault if its process fails (or takes past `deadline`)."""
        self.deadline = deadline
        self.test_timeout_s = max(0.0, deadline - time.monotonic())
        try:
            message = self._read()
        except SolutionFault as exc:
            if self.record.faults and "did not finish within" in self.record.faults[-1]:
                raise SolutionFault("the code did not finish importing in time") from exc
            raise
        if message.get("loaded") is True:
            listing = message.get("names")
            self._listing = listing if isinstance(listing, dict) else None
            return True
        error = message.get("error")
        self.load_error = _error_fields(error)
        return False

    def restart(self, deadline: float) -> bool:
        """A fresh process of the solution. The module's own functions and classes the tests
        hold are bound to their counterparts in it; objects made in the old one are gone."""
        named = dict(self._named)
        self.link.restart()
        self.broken = None
        self.generation += 1
        self._proxies.clear()
        self._classes.clear()
        self._functions.clear()
        self._function_ids.clear()
        self._named.clear()
        if not self.start(deadline):
            return False
        for name, old in named.items():
            try:
                fresh = self.module.__getattr__(name)
            except (Exception, SolutionFault):
                continue
            ref = _reference_of(fresh)
            if ref is None or (type(fresh) is not type(old) and not isinstance(old, type)):
                continue
            if isinstance(old, type):
                type.__setattr__(old, "_redraft_class_ref", ref)
                self._classes[ref[0]] = old
            else:
                object.__setattr__(old, "_redraft_ref", ref)
            self._proxies[ref[0]] = old
            self._named[name] = old
        return True

    def named(self, name: str, value: Any) -> Any:
        """`value` is the module's attribute `name`: kept across restarts."""
        if isinstance(value, (RemoteFunction, MirroredClass)):
            self._named[name] = value
        return value

    def names(self) -> dict[str, Any]:
        """The solution module's names and values (its functions and classes as proxies)."""
        if self._listing is not None:
            reply, self._listing = {**self._listing, "reply": None}, None
            listing = self._outcome(reply)
        else:
            listing = self.request("describe")
        names = listing.get("names") if isinstance(listing, dict) else None
        if not isinstance(names, dict) or not all(isinstance(name, str) for name in names):
            raise self.fault("the solution's process sent a malformed list of its names")
        return {name: self.named(name, value) for name, value in names.items()}

    def begin_test(self, timeout_s: float) -> TestRecord:
        self.test_timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.record = TestRecord()
        return self.record

    def goodbye(self) -> None:
        """Tell the solution's process the judge is done (it exits by itself: cheaper than
        being killed). Nothing if it is gone."""
        if self.broken is None:
            with contextlib.suppress(EOFError, OSError):
                self.link.send(wire.pack({"op": "exit"}))

    def fault(self, reason: str, *, broken: bool = True) -> SolutionFault:
        self.record.faults.append(reason)
        if broken and self.broken is None:
            self.broken = reason
        return SolutionFault(reason)

    # -- requests ---------------------------------------------------------------------------

    def request(
        self,
        op: str,
        target: int = 0,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        generation: int | None = None,
    ) -> Any:
        """One request to the solution's process, and its answer as a value (or its
        exception raised); callbacks it makes meanwhile are served."""
        __tracebackhide__ = True
        if generation is None:
            generation = self.generation
        if self.broken is not None:
            raise self.fault(f"the solution's process is unusable: {self.broken}", broken=False)
        if generation != self.generation:
            raise self.fault(
                "this object belongs to an earlier run of the solution, restarted since",
                broken=False,
            )
        self._counter += 1
        number = self._counter  # callbacks may make requests of their own meanwhile
        message: dict[str, Any] = {"id": number, "op": op, "target": target}
        if name is not None:
            message["name"] = name
        encode = self._encoder.encode
        try:
            message["args"] = [encode(arg) for arg in args]
            if kwargs:
                message["kwargs"] = {str(k): encode(v) for k, v in kwargs.items()}
        except wire.WireError as exc:
            raise TypeError(f"cannot pass that to the solution: {exc}") from None
        self._send(message)
        while True:
            reply = self._read()
            if "reply" not in reply and ("out" in reply or "err" in reply):
                self.record.output(reply.get("out"), reply.get("err"))  # printed as it ran
                continue
            if "op" in reply:
                self._serve_callback(reply)
                continue
            if reply.get("reply") != number:
                raise self.fault("the solution's process answered out of turn")
            if op == "builtin" and name == "next":
                return self._outcome(reply)  # how an iterator of the solution's ends
            try:
                return self._outcome(reply)
            except (StopIteration, StopAsyncIteration) as exc:
                # Anywhere else it would end the test's own loop early (`all(map(...))` over
                # no more items is True): as in a generator (PEP 479), it is an error here.
                raise RuntimeError(
                    f"the solution raised {type(exc).__name__} ({describe_safely(exc)})"
                ) from exc

    def _outcome(self, reply: dict[str, Any]) -> Any:
        __tracebackhide__ = True  # pytest's tracebacks show the test and the solution only
        self.record.output(reply.get("out"), reply.get("err"), rest=True)
        for item in reply.get("warnings") or []:
            if isinstance(item, list) and len(item) == 2:
                category = getattr(builtins, str(item[0]), None)
                if not (isinstance(category, type) and issubclass(category, Warning)):
                    category = UserWarning
                warnings.warn(wire.short(item[1], 2000), category, stacklevel=3)
        if "exit" in reply:
            code = wire.short(reply.get("exit"), 100)
            kind = reply.get("name")
            what = (
                f"the code called exit({code})" if kind == "SystemExit" else f"{kind} in the code"
            )
            raise self.fault(what, broken=False)
        if "raise" in reply:
            raise self._exception(reply["raise"])
        if "ok" not in reply:
            raise self.fault("the solution's process sent an answer without a value")
        return self._decode(reply["ok"])

    def _send(self, message: dict[str, Any]) -> None:
        __tracebackhide__ = True
        try:
            self.link.send(wire.pack(message))
        except EOFError:
            raise self.fault(self._closed()) from None

    def _read(self) -> dict[str, Any]:
        __tracebackhide__ = True
        try:
            header = self.link.receive_exactly(wire.LENGTH.size, self.deadline)
            (size,) = wire.LENGTH.unpack(header)
            if size > MAX_FRAME:
                raise self.fault(
                    f"the solution sent an answer of {size} bytes (at most {MAX_FRAME})"
                )
            body = self.link.receive_exactly(size, self.deadline)
        except TimeoutError:
            raise self.fault(f"did not finish within {self.test_timeout_s:g} s") from None
        except EOFError:
            raise self.fault(self._closed()) from None
        try:
            return dict(wire.unpack(body))
        except wire.WireError as exc:
            raise self.fault(f"the solution sent what is not an answer: {exc}") from None

    def _closed(self) -> str:
        return f"the solution's process ended during the test ({self.link.why_closed()})"

    def _serve_callback(self, request: dict[str, Any]) -> None:
        """The solution calls a function the test gave it: run it here, on plain data."""
        function = self._functions.get(request.get("target", -1))
        reply: dict[str, Any] = {"reply": request.get("id")}
        if function is None:
            raise self.fault("the solution called a function it was never given")
        args = [self._decode(arg) for arg in request.get("args", [])]
        kwargs = {str(k): self._decode(v) for k, v in dict(request.get("kwargs", {})).items()}
        try:
            reply["ok"] = self._encoder.encode(function(*args, **kwargs))
        except wire.WireError as exc:
            reply["raise"] = {"builtin": "TypeError", "message": str(exc)}
        except Exception as exc:
            name = type(exc).__name__ if type(exc).__module__ == "builtins" else "Exception"
            reply["raise"] = {"builtin": name, "message": wire.short(str(exc), 2000)}
        self._send(reply)

    # -- values -----------------------------------------------------------------------------

    def _decode(self, node: Any) -> Any:
        try:
            return wire.Decoder(self._reference).decode(node)
        except wire.WireError as exc:
            raise self.fault(f"the solution sent what is not a value: {exc}") from None

    def _export(self, value: Any) -> dict[str, Any]:
        """A value of the test's that is not plain data, as the solution is to get it."""
        ref = _reference_of(value)
        if ref is not None:
            if ref[1] != self.generation:
                raise wire.WireError("an object of an earlier run of the solution")
            return {"$": "own", "id": ref[0]}
        if callable(value) and value not in UNSAFE_CALLBACKS:
            key = id(value)
            number = self._function_ids.get(key)
            if number is None:
                number = len(self._functions) + 1
                self._functions[number] = value
                self._function_ids[key] = number
            return {"$": "r", "id": number, "n": wire.short(getattr(value, "__name__", "f"), 100)}
        raise wire.WireError(
            f"a {type(value).__name__} is neither plain data, a function, nor the solution's"
        )

    def _reference(self, node: dict[str, Any]) -> Any:
        if node.get("$") != "r":
            raise wire.WireError("the solution named an object of the test's")
        ref = int(node["id"])
        proxy = self._proxies.get(ref)
        if proxy is not None:
            return proxy
        if len(self._proxies) >= MAX_REFERENCES:
            raise wire.WireError(f"more than {MAX_REFERENCES} objects")
        kind = node.get("k")
        if kind == "class":
            proxy = self._mirror(node)
        elif kind == "function":
            proxy = RemoteFunction(self, ref, node)
        else:
            cls = self._mirror(node["t"]) if isinstance(node.get("t"), dict) else RemoteObject
            if not issubclass(cls, RemoteObject):
                cls = RemoteObject  # an instance of an exception class, used as a value
            proxy = object.__new__(cls)
            object.__setattr__(proxy, "_redraft_ref", (ref, self.generation))
            object.__setattr__(proxy, "_redraft_remote", self)
        self._proxies[ref] = proxy
        return proxy

    def _mirror(self, node: dict[str, Any]) -> type:
        """The local class standing for one of the solution's classes."""
        ref = int(node["id"])
        known = self._classes.get(ref)
        if known is not None:
            return known
        bases: list[type] = []
        for base in node.get("bases") or []:
            mirrored = self._reference(base) if isinstance(base, dict) else None
            if isinstance(mirrored, type):
                bases.append(mirrored)
        exception = _builtin_exception(node.get("exc"))
        name = wire.short(node.get("n") or "Object", 100)
        namespace: dict[str, Any] = {
            "__module__": self.module_name,
            "__qualname__": wire.short(node.get("q") or name, 200),
            "__doc__": node.get("doc") if isinstance(node.get("doc"), str) else None,
            "_redraft_class_ref": (ref, self.generation),
            "_redraft_class_remote": self,
        }
        default: tuple[type, ...] = (exception,) if exception is not None else (RemoteObject,)
        if exception is None:
            namespace["__slots__"] = ()
        meta = MirroredException if exception is not None else MirroredClass
        try:
            cls = meta(name, tuple(bases) or default, namespace)
        except TypeError:
            cls = meta(name, default, namespace)
        self._classes[ref] = cls
        self._proxies[ref] = cls
        return cls

    def _exception(self, info: Any) -> BaseException:
        """The solution's exception, raised here as itself."""
        fields = _error_fields(info)
        self.record.remote = fields
        kind: type[BaseException] | None = None
        node = info.get("type") if isinstance(info, dict) else None
        if isinstance(node, dict):
            try:
                mirrored = self._decode(node)
            except SolutionFault:
                mirrored = None
            if isinstance(mirrored, type) and issubclass(mirrored, Exception):
                kind = mirrored
        if kind is None:
            kind = _builtin_exception(
                fields["name"] if fields["builtin"] == fields["name"] else None
            )
        if kind is None:
            kind = _builtin_exception(fields["builtin"]) or RemoteError
        args = info.get("args") if isinstance(info, dict) else None
        try:
            # Plain data only: an argument that is one of the solution's objects would make
            # str(exc) a call into the solution (which may raise, or hang, in the report).
            plain = wire.Decoder(_no_reference).decode(args) if isinstance(args, list) else None
            exc = kind(*(plain if plain is not None else [fields["message"]]))
        except (Exception, SolutionFault):
            try:
                exc = kind(fields["message"])
            except Exception:
                exc = RemoteError(f"{fields['name']}: {fields['message']}")
        exc.add_note(fields["traceback"].rstrip()) if hasattr(exc, "add_note") else None
        exc._redraft_remote = fields  # type: ignore[attr-defined]
        return exc


def describe_safely(exc: BaseException, limit: int = 300) -> str:
    """`str(exc)`, cut to `limit`; never raises (the exception may hold what does)."""
    try:
        return wire.short(str(exc), limit)
    except (Exception, SolutionFault) as again:
        return f"<its str() raised {type(again).__name__}>"


def _no_reference(node: dict[str, Any]) -> Any:
    raise wire.WireError("an object of the solution's")


def start_failure(exc: BaseException, timeout_s: float) -> str:
    """Why the solution's process did not get to the tests."""
    if "in time" in str(exc) or "ran out of time" in str(exc):
        return f"the tests did not finish within {timeout_s:g} s"
    return str(exc)


class RemoteError(Exception):
    """An exception of the solution's that has no built-in counterpart here."""


def _builtin_exception(name: object) -> type[Exception] | None:
    found = getattr(builtins, name, None) if isinstance(name, str) else None
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


def _error_fields(info: Any) -> dict[str, Any]:
    info = info if isinstance(info, dict) else {}
    line = info.get("line")
    if not (
        isinstance(line, dict)
        and isinstance(line.get("line"), int)
        and isinstance(line.get("text"), str)
    ):
        line = None
    else:
        line = {"line": line["line"], "text": wire.short(line["text"], 300)}
    return {
        "name": wire.short(info.get("name") or "Exception", 100),
        "builtin": info.get("builtin") if isinstance(info.get("builtin"), str) else None,
        "message": wire.short(info.get("message") or "", 2000),
        "traceback": wire.short(info.get("traceback") or "", 4000),
        "line": line,
    }


def _reference_of(value: Any) -> tuple[int, int] | None:
    for attribute in ("_redraft_ref", "_redraft_class_ref"):
        try:
            ref = object.__getattribute__(value, attribute)
        except AttributeError:
            continue
        if isinstance(ref, tuple):
            return ref
    return None


def _remote_of(value: Any) -> Remote:
    remote: Remote = object.__getattribute__(value, "_redraft_remote")
    return remote


# -- proxies -----------------------------------------------------------------------------------


def _is_private(name: str) -> bool:
    """Names the judge's own machinery probes objects for: never asked of the solution."""
    return (name.startswith("__") and name.endswith("__")) or name.startswith(
        ("_pytest", "_redraft")
    )


class RemoteModule(types.ModuleType):
    """The solution's module: every attribute is looked up in its process when asked for."""

    def __init__(self, remote: Remote, name: str | None = None) -> None:
        super().__init__(name or remote.module_name)
        object.__setattr__(self, "_redraft_remote", remote)
        self.__file__ = "solution.py"
        self.__path__: list[str] = []  # a package too: `from stack.core import Stack`

    def __getattr__(self, name: str) -> Any:
        __tracebackhide__ = True
        if _is_private(name):
            raise AttributeError(name)
        remote = _remote_of(self)
        return remote.named(name, remote.request("getattr", 0, name=name))

    def __setattr__(self, name: str, value: Any) -> None:
        if _is_private(name) or isinstance(value, RemoteModule):
            # (the import system names the module a submodule of itself)
            object.__setattr__(self, name, value)
            return
        _remote_of(self).request("setattr", 0, (value,), name=name)

    def __delattr__(self, name: str) -> None:
        _remote_of(self).request("delattr", 0, name=name)

    def __dir__(self) -> list[str]:
        listing = _remote_of(self).request("describe")
        return sorted(listing["names"]) if isinstance(listing, dict) else []


class RemoteFunction:
    """One of the solution's functions: calling it calls it there."""

    def __init__(self, remote: Remote, ref: int, node: dict[str, Any]) -> None:
        self._redraft_ref = (ref, remote.generation)
        self._redraft_remote = remote
        self.__name__ = wire.short(node.get("n") or "function", 100)
        self.__qualname__ = wire.short(node.get("q") or self.__name__, 200)
        self.__doc__ = node.get("doc") if isinstance(node.get("doc"), str) else None
        self.__module__ = remote.module_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ref, generation = self._redraft_ref
        __tracebackhide__ = True
        return self._redraft_remote.request("call", ref, args, kwargs, generation=generation)

    def __repr__(self) -> str:
        return f"<function {self.__qualname__} of the solution>"


class MirroredClass(type):
    """The metaclass of the local stand-ins for the solution's classes: calling one makes an
    instance there; its attributes are the class's attributes there."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        ref, generation = cls.__dict__["_redraft_class_ref"]
        remote: Remote = cls.__dict__["_redraft_class_remote"]
        return remote.request("call", ref, args, kwargs, generation=generation)

    def __getattr__(cls, name: str) -> Any:
        __tracebackhide__ = True
        if _is_private(name):
            raise AttributeError(name)
        ref, generation = type.__getattribute__(cls, "_redraft_class_ref")
        remote: Remote = type.__getattribute__(cls, "_redraft_class_remote")
        return remote.request("getattr", ref, name=name, generation=generation)

    def __repr__(cls) -> str:
        return f"<class {cls.__module__}.{cls.__qualname__} of the solution>"


class MirroredException(type):
    """The metaclass of local stand-ins for the solution's exception classes: these are made
    here, as values (the solution's exceptions are raised as their instances)."""


def _forward(kind: str, name: str) -> Callable[..., Any]:
    def method(self: RemoteObject, *args: Any) -> Any:
        __tracebackhide__ = True
        ref, generation = object.__getattribute__(self, "_redraft_ref")
        return _remote_of(self).request(kind, ref, args, name=name, generation=generation)

    method.__name__ = name
    return method


def _between_objects(name: str) -> Callable[[RemoteObject, Any], Any]:
    """A comparison or arithmetic operator, done there only between the solution's objects.
    With the test's own data on the other side, the solution would answer for the test: an
    always-equal object, or one whose difference from any expected value is 0, proves
    nothing. Python then tries the plain side, which does not know the object."""
    forward = _forward("special", name)

    def method(self: RemoteObject, other: Any) -> Any:
        __tracebackhide__ = True
        if _reference_of(other) is None:
            return NotImplemented
        return forward(self, other)

    method.__name__ = name
    return method


_asked_contains = _forward("builtin", "contains")


def _contains(self: RemoteObject, item: Any) -> bool:
    """`item in obj`: asked of the solution for one of its own objects; for the test's data,
    the judge compares each item the object yields (membership claimed for anything would
    prove nothing)."""
    __tracebackhide__ = True
    if _reference_of(item) is not None:
        return bool(_asked_contains(self, item))
    return any(element is item or element == item for element in self)


class RemoteObject:
    """An object that lives in the solution's process; what is done to it is done there."""

    __slots__ = ("_redraft_ref", "_redraft_remote")

    def __getattr__(self, name: str) -> Any:
        __tracebackhide__ = True
        if _is_private(name):
            raise AttributeError(name)
        ref, generation = object.__getattribute__(self, "_redraft_ref")
        return _remote_of(self).request("getattr", ref, name=name, generation=generation)

    def __setattr__(self, name: str, value: Any) -> None:
        ref, generation = object.__getattribute__(self, "_redraft_ref")
        _remote_of(self).request("setattr", ref, (value,), name=name, generation=generation)

    def __delattr__(self, name: str) -> None:
        ref, generation = object.__getattribute__(self, "_redraft_ref")
        _remote_of(self).request("delattr", ref, name=name, generation=generation)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ref, generation = object.__getattribute__(self, "_redraft_ref")
        return _remote_of(self).request("call", ref, args, kwargs, generation=generation)

    __len__ = _forward("builtin", "len")
    __bool__ = _forward("builtin", "bool")
    __repr__ = _forward("builtin", "repr")
    __str__ = _forward("builtin", "str")
    __hash__ = _forward("builtin", "hash")
    __iter__ = _forward("builtin", "iter")
    __next__ = _forward("builtin", "next")
    __int__ = _forward("builtin", "int")
    __float__ = _forward("builtin", "float")
    __abs__ = _forward("builtin", "abs")
    __contains__ = _contains
    __getitem__ = _forward("builtin", "getitem")
    __setitem__ = _forward("builtin", "setitem")
    __delitem__ = _forward("builtin", "delitem")
    __eq__ = _between_objects("__eq__")
    __ne__ = _between_objects("__ne__")
    __lt__ = _between_objects("__lt__")
    __le__ = _between_objects("__le__")
    __gt__ = _between_objects("__gt__")
    __ge__ = _between_objects("__ge__")
    __index__ = _forward("special", "__index__")
    __neg__ = _forward("special", "__neg__")
    __pos__ = _forward("special", "__pos__")
    __add__ = _between_objects("__add__")
    __radd__ = _between_objects("__radd__")
    __sub__ = _between_objects("__sub__")
    __rsub__ = _between_objects("__rsub__")
    __mul__ = _between_objects("__mul__")
    __rmul__ = _between_objects("__rmul__")
    __truediv__ = _between_objects("__truediv__")
    __rtruediv__ = _between_objects("__rtruediv__")
    __floordiv__ = _between_objects("__floordiv__")
    __mod__ = _between_objects("__mod__")
    __pow__ = _between_objects("__pow__")
    __matmul__ = _between_objects("__matmul__")
    __and__ = _between_objects("__and__")
    __or__ = _between_objects("__or__")
    __xor__ = _between_objects("__xor__")

    def __enter__(self) -> Any:
        ref, generation = object.__getattribute__(self, "_redraft_ref")
        return _remote_of(self).request("builtin", ref, name="enter", generation=generation)

    def __exit__(self, *exc: object) -> Any:
        ref, generation = object.__getattribute__(self, "_redraft_ref")
        # The test's exception stays here: the solution is not given it.
        return _remote_of(self).request(
            "builtin", ref, (None, None, None), name="exit", generation=generation
        )

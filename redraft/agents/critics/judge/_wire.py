"""How the judge and the solution's process talk: frames, and values as plain data.

Shared by both sides: the judge imports it, and it is shipped into the sandbox next to the
solution server, so it is standard library only.

A frame is a 4-byte big-endian length and that many bytes of JSON. Values travel as JSON, with
what JSON lacks (tuples, sets, bytes, dicts with any keys, non-finite floats, ...) tagged
`{"$": tag, ...}`. Decoding builds only the exact built-in and standard-library types named
here, whatever arrives, never anything the sender defines; everything else is a reference to an
object that stays on its side (`{"$": "r", ...}`) and is used through a proxy. Decoding is
bounded: in depth, in frame size, and in the number of items.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct

# Imported lazily, and typing not at all: the solution's process imports this module on every
# run, and these imports would cost it milliseconds each.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any
STANDARD_MODULES = ("collections", "decimal", "fractions", "datetime")

LENGTH = struct.Struct(">I")
MAX_DEPTH = 200
MAX_ITEMS = 1_000_000
TEXT_CHARS = 300
BIG_INT_BITS = 10_000
MAX_INT_HEX = 4_000_000  # a 16-million-bit integer
STANDARD_TAGS = (
    "Counter",
    "OrderedDict",
    "deque",
    "Decimal",
    "Fraction",
    "datetime",
    "date",
    "time",
    "timedelta",
)
FRACTION = re.compile(r"-?\d+(/\d+)?")

BUILTIN_TYPES: dict[str, type] = {
    t.__name__: t
    for t in (
        int,
        float,
        str,
        bytes,
        bytearray,
        bool,
        list,
        tuple,
        dict,
        set,
        frozenset,
        complex,
        object,
        type,
        type(None),
        range,
    )
}


class WireError(ValueError):
    """A frame or value that does not decode: too big, too deep, or malformed."""


def pack(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return LENGTH.pack(len(body)) + body


def unpack(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except RecursionError:
        raise WireError("a value nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"not a valid frame ({str(exc)[:100]})") from None
    if not isinstance(message, dict):
        raise WireError("a frame must hold an object")
    return message


def short(text: object, limit: int = TEXT_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def safe_repr(value: object, limit: int = TEXT_CHARS) -> str:
    try:
        return short(repr(value), limit)
    except Exception as exc:
        return f"<repr failed: {type(exc).__name__}>"


class Encoder:
    """Values to plain data; `export(value)` gives the node of anything else (a reference)."""

    def __init__(self, export: Callable[[Any], Any]) -> None:
        self.export = export

    def encode(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError("a value nested too deeply to send")
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value
        if kind is int:
            # Past a few thousand digits, decimal conversion is refused (and slow): hex is not.
            return value if value.bit_length() < BIG_INT_BITS else {"$": "int", "v": hex(value)}
        if kind is float:
            return value if math.isfinite(value) else {"$": "f", "v": repr(value)}
        down = depth + 1
        if kind is list:
            return [self.encode(item, down) for item in value]
        if kind is tuple:
            return {"$": "t", "v": [self.encode(item, down) for item in value]}
        if kind is dict:
            return {"$": "d", "v": self.pairs(value, down)}
        if kind is set or kind is frozenset:
            tag = "s" if kind is set else "fs"
            return {"$": tag, "v": [self.encode(item, down) for item in value]}
        if kind is bytes or kind is bytearray:
            tag = "b" if kind is bytes else "ba"
            return {"$": tag, "v": base64.b64encode(bytes(value)).decode("ascii")}
        if kind is complex:
            return {"$": "c", "v": [self.encode(value.real), self.encode(value.imag)]}
        if value is NotImplemented:
            return {"$": "NotImplemented"}
        if value is Ellipsis:
            return {"$": "Ellipsis"}
        if kind is type and BUILTIN_TYPES.get(getattr(value, "__name__", "")) is value:
            return {"$": "type", "n": getattr(value, "__name__", "")}
        if kind is range:
            return {"$": "range", "v": [value.start, value.stop, value.step]}
        special = self.standard(value, kind, down)
        if special is not None:
            return special
        return self.export(value)

    def pairs(self, mapping: Any, depth: int) -> list[list[Any]]:
        return [[self.encode(k, depth), self.encode(v, depth)] for k, v in mapping.items()]

    def standard(self, value: Any, kind: type, depth: int) -> Any:
        """Standard-library values that tests compare as data."""
        if isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
            fields = [str(name) for name in getattr(kind, "_fields", ())]
            items = [self.encode(item, depth) for item in value]
            return {"$": "namedtuple", "n": kind.__name__, "f": fields, "v": items}
        if kind.__module__ not in STANDARD_MODULES:
            return None
        import collections
        import datetime
        import decimal
        import fractions

        if kind is collections.Counter:
            return {"$": "Counter", "v": self.pairs(value, depth)}
        if kind is collections.OrderedDict:
            return {"$": "OrderedDict", "v": self.pairs(value, depth)}
        if kind is collections.defaultdict:
            return {"$": "d", "v": self.pairs(value, depth)}
        if kind is collections.deque:
            return {"$": "deque", "v": [self.encode(item, depth) for item in value]}
        if kind is decimal.Decimal:
            return {"$": "Decimal", "v": str(value)}
        if kind is fractions.Fraction:
            return {"$": "Fraction", "v": str(value)}
        if kind in (datetime.datetime, datetime.date, datetime.time):
            return {"$": kind.__name__, "v": value.isoformat()}
        if kind is datetime.timedelta:
            return {"$": "timedelta", "v": [value.days, value.seconds, value.microseconds]}
        return None


class Decoder:
    """Plain data back to values; `reference(node)` makes the proxy of a reference node."""

    def __init__(self, reference: Callable[[dict[str, Any]], Any]) -> None:
        self.reference = reference
        self.items = 0
        self.namedtuples: dict[tuple[str, tuple[str, ...]], Any] = {}

    def decode(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError("a value nested too deeply")
        self.items += 1
        if self.items > MAX_ITEMS:
            raise WireError(f"a value of more than {MAX_ITEMS} items")
        kind = type(node)
        if node is None or kind is bool or kind is str or kind is int or kind is float:
            return node
        down = depth + 1
        if kind is list:
            return [self.decode(item, down) for item in node]
        if kind is not dict:
            raise WireError("an unknown value")
        tag = node.get("$")
        try:
            return self.tagged(tag, node, down)
        except WireError:
            raise
        except RecursionError:
            raise WireError("a value nested too deeply") from None
        except Exception as exc:
            raise WireError(
                f"a malformed {short(tag, 40)!s} value ({type(exc).__name__})"
            ) from None

    def many(self, node: dict[str, Any], depth: int) -> list[Any]:
        values = node["v"]
        if type(values) is not list:
            raise WireError("a malformed value")
        return [self.decode(item, depth) for item in values]

    def pairs(self, node: dict[str, Any], depth: int) -> list[tuple[Any, Any]]:
        out = []
        for pair in node["v"]:
            if type(pair) is not list or len(pair) != 2:
                raise WireError("a malformed mapping")
            out.append((self.decode(pair[0], depth), self.decode(pair[1], depth)))
        return out

    def tagged(self, tag: object, node: dict[str, Any], depth: int) -> Any:
        if tag == "t":
            return tuple(self.many(node, depth))
        if tag == "d":
            return dict(self.pairs(node, depth))
        if tag == "s":
            return set(self.many(node, depth))
        if tag == "fs":
            return frozenset(self.many(node, depth))
        if tag in ("b", "ba"):
            data = base64.b64decode(str(node["v"]), validate=True)
            return data if tag == "b" else bytearray(data)
        if tag == "int":
            text = node["v"]
            if type(text) is not str or len(text) > MAX_INT_HEX:
                raise WireError("a malformed integer")
            return int(text, 16)
        if tag == "f":
            text = node["v"]
            if text not in ("nan", "inf", "-inf"):
                raise WireError("a malformed float")
            return float(text)
        if tag == "c":
            real, imag = (float(part) for part in node["v"])
            return complex(real, imag)
        if tag == "NotImplemented":
            return NotImplemented
        if tag == "Ellipsis":
            return Ellipsis
        if tag == "type":
            found = BUILTIN_TYPES.get(node["n"])
            if found is None:
                raise WireError("an unknown built-in type")
            return found
        if tag == "range":
            start, stop, step = (int(part) for part in node["v"])
            return range(start, stop, step)
        if tag in STANDARD_TAGS:
            return self.standard(tag, node, depth)
        if tag == "namedtuple":
            return self.namedtuple(node, depth)
        if tag in ("r", "own"):
            return self.reference(node)
        raise WireError(f"an unknown value tag {short(tag, 40)}")

    def standard(self, tag: str, node: dict[str, Any], depth: int) -> Any:
        import collections
        import datetime
        import decimal
        import fractions

        if tag == "Counter":
            return collections.Counter(dict(self.pairs(node, depth)))
        if tag == "OrderedDict":
            return collections.OrderedDict(self.pairs(node, depth))
        if tag == "deque":
            return collections.deque(self.many(node, depth))
        if tag == "Decimal":
            return decimal.Decimal(short(node["v"], 5000))
        if tag == "Fraction":
            text = short(node["v"], 5000)
            if not FRACTION.fullmatch(text):  # no exponent: "1e999999999" would take ages
                raise WireError("a malformed fraction")
            return fractions.Fraction(text)
        if tag in ("datetime", "date", "time"):
            return getattr(datetime, tag).fromisoformat(short(node["v"], 100))
        if tag == "timedelta":
            days, seconds, micro = (int(part) for part in node["v"])
            return datetime.timedelta(days, seconds, micro)
        raise WireError(f"an unknown value tag {short(tag, 40)}")

    def namedtuple(self, node: dict[str, Any], depth: int) -> Any:
        name = str(node["n"])
        fields = tuple(str(field) for field in node["f"])
        key = (name, fields)
        made = self.namedtuples.get(key)
        if made is None:
            if len(self.namedtuples) > 1000:
                raise WireError("too many kinds of named tuple")
            made = self.namedtuples[key] = make_namedtuple(name, fields)
        values = self.many(node, depth)
        return made(*values)


def make_namedtuple(name: str, fields: tuple[str, ...]) -> Any:
    """A named tuple class of the standard library's (it checks the names it is given)."""
    import collections

    return collections.namedtuple(name, fields)

"""A small stand-in for pytest inside the sandbox, where pytest is not installed.

It covers what test files for a single solution commonly use: `pytest.raises`,
`pytest.approx`, `pytest.mark.parametrize` and `pytest.fail`. Anything else raises an error
that says the tests critic does not support it.
"""

import itertools
import math


class RaisesContext:
    def __init__(self, expected, match=None):
        self.expected = expected
        self.match = match
        self.value = None

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            name = getattr(self.expected, "__name__", self.expected)
            raise AssertionError(f"DID NOT RAISE {name}")
        if not issubclass(kind, self.expected):
            return False
        if self.match is not None:
            import re

            if not re.search(self.match, str(value)):
                raise AssertionError(f"{str(value)!r} does not match {self.match!r}")
        self.value = value
        return True


def raises(expected, *args, match=None, **kwargs):
    if args:
        with RaisesContext(expected, match):
            args[0](*args[1:], **kwargs)
        return None
    return RaisesContext(expected, match)


class Approx:
    def __init__(self, expected, rel=None, abs=None):
        self.expected = expected
        self.rel = 1e-6 if rel is None else rel
        self.abs = 1e-12 if abs is None else abs

    def _close(self, actual, expected):
        return math.isclose(actual, expected, rel_tol=self.rel, abs_tol=self.abs)

    def __eq__(self, actual):
        expected = self.expected
        if isinstance(expected, (list, tuple)):
            return len(actual) == len(expected) and all(
                self._close(a, e) for a, e in zip(actual, expected, strict=False)
            )
        if isinstance(expected, dict):
            return actual.keys() == expected.keys() and all(
                self._close(actual[k], expected[k]) for k in expected
            )
        return self._close(actual, expected)

    def __repr__(self):
        return f"approx({self.expected!r})"


def approx(expected, rel=None, abs=None):
    return Approx(expected, rel, abs)


def fail(reason=""):
    raise AssertionError(reason or "failed")


def _parametrize(names, values, ids=None):
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)

    def decorate(function):
        cases = []
        for index, value in enumerate(values):
            row = value if len(names) > 1 else (value,)
            label = ids[index] if ids else "-".join(repr(v) for v in row)
            cases.append((dict(zip(names, row, strict=False)), str(label)))
        earlier = getattr(function, "_redraft_parametrize", None)
        if earlier:
            cases = [
                ({**a, **b}, la + "-" + lb)
                for (a, la), (b, lb) in itertools.product(earlier, cases)
            ]
        function._redraft_parametrize = cases
        return function

    return decorate


class _Mark:
    parametrize = staticmethod(_parametrize)

    def __getattr__(self, name):
        raise NotImplementedError(f"pytest.mark.{name} is not supported by the tests critic")


mark = _Mark()


def fixture(*args, **kwargs):
    raise NotImplementedError("pytest fixtures are not supported by the tests critic")

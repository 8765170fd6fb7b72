"""The notation people write for a domain: ``log-uniform(1e-5, 1e-2)``, ``int(1, 8)``...

Grammar (one domain a string)::

    uniform(LOW, HIGH)            log-uniform(LOW, HIGH)       (also: loguniform)
    int(LOW, HIGH[, step=N])      log-int(LOW, HIGH)           (also: int(LOW, HIGH, log=true))
    choice(A, B, ...)             options: numbers, true/false, null, bare words or 'quoted text'
"""

from __future__ import annotations

import math
import re
from typing import Any

from tunecraft.exceptions import InvalidParameterError
from tunecraft.space._params import Categorical, ChoiceValue, Float, Int, Param

__all__ = ["needs_quotes", "parse"]

_CALL = re.compile(r"^\s*([A-Za-z][A-Za-z_-]*)\s*\((.*)\)\s*$", re.DOTALL)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INT = re.compile(r"^[+-]?\d+$")
_KEYWORDS: dict[str, ChoiceValue] = {
    "null": None,
    "none": None,
    "true": True,
    "false": False,
}


def needs_quotes(text: str) -> bool:
    """Whether a string option must be quoted to read back as the same string."""
    return (
        not text
        or text != text.strip()
        or any(c in text for c in ",()='\"\\")
        or _NUMBER.match(text) is not None
        or text.lower() in _KEYWORDS
        or text.lower() in ("inf", "-inf", "nan", "+inf")
    )


def _split_args(body: str, source: str) -> list[tuple[str, bool]]:
    """Split on top-level commas; return (token, was_quoted) pairs."""
    tokens: list[tuple[str, bool]] = []
    i, n = 0, len(body)
    while i < n:
        while i < n and body[i].isspace():
            i += 1
        if i >= n:
            break
        if body[i] in "'\"":
            quote, j, buf = body[i], i + 1, []
            while j < n and body[j] != quote:
                if body[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(body[j])
                j += 1
            if j >= n:
                raise InvalidParameterError(f"{source!r}: unterminated quote.")
            tokens.append(("".join(buf), True))
            i = j + 1
            while i < n and body[i].isspace():
                i += 1
            if i < n and body[i] != ",":
                raise InvalidParameterError(f"{source!r}: expected ',' after a quoted option.")
            i += 1
        else:
            j = body.find(",", i)
            j = n if j < 0 else j
            tok = body[i:j].strip()
            if not tok:
                raise InvalidParameterError(f"{source!r}: empty argument.")
            tokens.append((tok, False))
            i = j + 1
    return tokens


def _number(tok: str, source: str, what: str) -> float:
    if not _NUMBER.match(tok) and tok.lower() not in ("inf", "-inf", "+inf", "nan"):
        raise InvalidParameterError(f"{source!r}: {what} must be a number, got {tok!r}.")
    return float(tok)


def _integer(tok: str, source: str, what: str) -> int:
    if _INT.match(tok):
        return int(tok)
    value = _number(tok, source, what)
    if not math.isfinite(value) or not value.is_integer():
        raise InvalidParameterError(f"{source!r}: {what} must be an int, got {tok!r}.")
    return int(value)


def _option(tok: str, quoted: bool) -> ChoiceValue:
    if quoted:
        return tok
    if tok.lower() in _KEYWORDS:
        return _KEYWORDS[tok.lower()]
    if _INT.match(tok):
        return int(tok)
    if _NUMBER.match(tok):
        return float(tok)
    return tok


def parse(text: Any) -> Param:
    """Read a domain written in the notation above.

    Raises:
        InvalidParameterError: The text is not a domain, names an unknown kind or has bad bounds.

    Example:
        >>> parse("log-uniform(1e-5, 1e-2)")
        <log-uniform(1e-05, 0.01)>
    """
    if not isinstance(text, str):
        raise InvalidParameterError(
            f"A domain must be written like 'uniform(0, 1)' or 'choice(a, b)', got {text!r}."
        )
    m = _CALL.match(text)
    if not m:
        raise InvalidParameterError(
            f"{text!r} is not a domain; write one of uniform(LOW, HIGH), log-uniform(LOW, HIGH),"
            " int(LOW, HIGH), log-int(LOW, HIGH), choice(A, B, ...)."
        )
    kind, body = m.group(1).lower().replace("_", "-"), m.group(2)
    tokens = _split_args(body, text)
    if kind == "choice":
        return Categorical([_option(t, q) for t, q in tokens])
    positional = [t for t, q in tokens if q or "=" not in t]
    keywords: dict[str, str] = {}
    for t, q in tokens:
        if not q and "=" in t:
            k, _, v = t.partition("=")
            key = k.strip().lower()
            if key in keywords:
                raise InvalidParameterError(f"{text!r}: option {key!r} is given twice.")
            keywords[key] = v.strip()
    if len(positional) != 2:
        raise InvalidParameterError(f"{text!r}: {kind}() takes exactly two bounds, LOW and HIGH.")
    lo_t, hi_t = positional
    if kind in ("uniform", "log-uniform", "loguniform"):
        unknown = set(keywords) - {"log"}
        if unknown:
            raise InvalidParameterError(f"{text!r}: unknown option {sorted(unknown)[0]!r}.")
        log = kind != "uniform" or _bool(keywords.get("log", "false"), text)
        return Float(_number(lo_t, text, "low"), _number(hi_t, text, "high"), log=log)
    if kind in ("int", "integer", "log-int", "logint"):
        unknown = set(keywords) - {"log", "step"}
        if unknown:
            raise InvalidParameterError(f"{text!r}: unknown option {sorted(unknown)[0]!r}.")
        log = kind.startswith("log") or _bool(keywords.get("log", "false"), text)
        step = _integer(keywords.get("step", "1"), text, "step")
        return Int(_integer(lo_t, text, "low"), _integer(hi_t, text, "high"), log=log, step=step)
    raise InvalidParameterError(
        f"{text!r}: unknown domain {m.group(1)!r}; use uniform, log-uniform, int, log-int"
        " or choice."
    )


def _bool(tok: str, source: str) -> bool:
    value = _KEYWORDS.get(tok.lower(), "?")
    if not isinstance(value, bool):
        raise InvalidParameterError(f"{source!r}: log must be true or false, got {tok!r}.")
    return value

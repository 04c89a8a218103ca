"""Values with units: durations, percentages and bit rates.

Each parser takes what YAML gave (a string or a number) and returns the value in the
unit the rest of the lab uses, or raises ``ValueError`` with a message for the
instructor.  The ``*_PATTERN`` strings are the JSON Schema's view of the same
syntax (ECMA-262 regexes, non-negative values only).

* durations: ``300ms``, ``5s``, ``1.5s``, ``2m``, ``500us``; ``0`` alone needs no
  unit.  A plain number is refused: ``delay: 50`` could mean 50 ms or 50 s.
* percentages: ``10%``, ``0.5%``, or a plain number meaning percent (``10`` == 10%).
* rates: ``bit``, ``kbit``, ``mbit``, ``gbit`` (bits per second, powers of 1000).
  ``kbps``/``mbps`` are refused: ``tc`` reads them as *bytes* per second, a classic trap.
* sizes: ``KiB``, ``MiB``, ``GiB`` (powers of 1024), ``kB``, ``MB``, ``GB``
  (powers of 1000), ``B``; the value is bytes. A plain number is refused (bytes? MiB?);
  its hint names what it most likely meant: MiB or GiB for memory, B or KiB for a byte
  count in a stream (``reset_after: 5``).
"""
from __future__ import annotations

import math
import re
from typing import Union

Number = Union[int, float]

NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"

DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = rf"^{NUMBER}\s*(?:us|ms|s|m|h)$"
_DURATION = re.compile(rf"^\s*([-+]?)({NUMBER})\s*([A-Za-zµ]*)\s*$")

# 0..100 with a % sign: the schema can check the range too.
PERCENT_PATTERN = r"^(?:100(?:\.0*)?|[0-9]{1,2}(?:\.[0-9]*)?|\.[0-9]+)\s*%$"
_PERCENT = re.compile(rf"^\s*([-+]?{NUMBER})\s*%\s*$")

RATE_UNITS = {"bit": 1e-3, "kbit": 1.0, "mbit": 1e3, "gbit": 1e6}
RATE_PATTERN = rf"^{NUMBER}\s*(?:bit|[kK]bit|[mM]bit|[gG]bit)$"
_RATE = re.compile(rf"^\s*([-+]?)({NUMBER})\s*([A-Za-z/]*)\s*$")
SIZE_UNITS = {"b": 1, "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "kb": 10 ** 3, "mb": 10 ** 6,
              "gb": 10 ** 9}
SIZE_PATTERN = rf"^{NUMBER}\s*(?:[bB]|[kKmMgG][iI]?[bB])$"
_SIZE = re.compile(rf"^\s*([-+]?)({NUMBER})\s*([A-Za-z]*)\s*$")
_BYTE_RATES = {"bps", "kbps", "mbps", "gbps", "b/s", "kb/s", "mb/s", "gb/s"}


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Number) -> Number:
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


def parse_duration(value: object) -> float:
    """A duration in seconds."""
    if is_number(value):
        if value == 0:
            return 0.0
        raise ValueError(f"{value} has no unit: write {value}ms or {value}s")
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 300ms or 5s, got {describe(value)}")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration (like 300ms, 5s, 1.5s, 2m)")
    sign, number, unit = match.groups()
    if not unit:
        if float(number) == 0:
            return 0.0
        raise ValueError(f"{value!r} has no unit: write {number}ms or {number}s")
    if unit not in DURATION_UNITS:
        raise ValueError(f"{value!r}: unknown time unit {unit!r} (use us, ms, s, m or h)")
    seconds = float(number) * DURATION_UNITS[unit]
    if sign == "-" and seconds:
        raise ValueError(f"{value!r} is negative")
    return seconds


def parse_percent(value: object) -> float:
    """A percentage, 0..100 (range checked by the caller's field)."""
    if is_number(value):
        return float(_finite(value))
    if not isinstance(value, str):
        raise ValueError(f"expected a percentage like 10%, got {describe(value)}")
    match = _PERCENT.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a percentage (like 10% or 0.5%)")
    return float(match.group(1))


def check_percent_range(percent: float) -> None:
    if percent > 100:
        raise ValueError(f"{fmt_percent(percent)} is over 100%")
    if percent < 0:
        raise ValueError(f"{fmt_percent(percent)} is negative")


def parse_rate(value: object) -> float:
    """A rate in kbit/s."""
    if is_number(value):
        raise ValueError(f"{value} has no unit: write it as {value}kbit or {value}mbit")
    if not isinstance(value, str):
        raise ValueError(f"expected a rate like 1mbit, got {describe(value)}")
    match = _RATE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a rate (like 512kbit, 1mbit, 1.5gbit)")
    sign, number, unit = match.groups()
    low = unit.lower()
    if not unit:
        raise ValueError(f"{value!r} has no unit: write it as {number}kbit or {number}mbit")
    if low in _BYTE_RATES:
        bits = {"b": "bit", "k": "kbit", "m": "mbit", "g": "gbit"}[low[0]]
        raise ValueError(f"{value!r}: write rates in bits per second ({number}{bits}); "
                         f"'{unit}' is ambiguous (tc reads it as bytes per second)")
    if low not in RATE_UNITS:
        raise ValueError(f"{value!r}: unknown rate unit {unit!r} (use kbit, mbit or gbit)")
    if sign == "-":
        raise ValueError(f"{value!r} is negative")
    return float(number) * RATE_UNITS[low]


# What a size without a unit most likely meant, and sizes to show as examples.
MEMORY = (("MiB", "GiB"), "256MiB, 1GiB, 500MB")    # memory: nobody means 256 bytes
BYTES = (("B", "KiB"), "100B, 1KiB, 500kB")         # a byte count in a stream (reset_after)


def parse_size(value: object, kind=MEMORY) -> int:
    """A size in bytes; ``kind`` (MEMORY or BYTES) chooses the hints of the messages."""
    (first, second), examples = kind
    if is_number(value):
        raise ValueError(f"{value} has no unit: write it as {value}{first} or {value}{second}")
    if not isinstance(value, str):
        raise ValueError(f"expected a size like {examples.split(',')[0]}, got {describe(value)}")
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size (like {examples})")
    sign, number, unit = match.groups()
    if not unit:
        raise ValueError(f"{value!r} has no unit: write it as {number}{first} or {number}{second}")
    if unit.lower() not in SIZE_UNITS:
        raise ValueError(f"{value!r}: unknown size unit {unit!r} (use B, KiB, MiB, GiB, kB, MB or GB)")
    if sign == "-":
        raise ValueError(f"{value!r} is negative")
    return int(float(number) * SIZE_UNITS[unit.lower()])


def fmt_size(size: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if size >= SIZE_UNITS[unit.lower()] and size % SIZE_UNITS[unit.lower()] == 0:
            return f"{size // SIZE_UNITS[unit.lower()]}{unit}"
    return f"{size}B"


def fmt_percent(percent: float) -> str:
    return f"{percent:g}%"


def fmt_seconds(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def describe(value: object) -> str:
    """How a wrongly typed YAML value is named in messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if is_number(value):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__

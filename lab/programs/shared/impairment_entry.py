"""A checked impairment entry (``spec.IMPAIRMENT``'s normalised mapping: seconds, kbit/s,
percent) turned into ``impairment.Impairment``, with the entry's key a refusal is
about.  Shared by scenario files (validate.py) and the one-line form (oneline.py).
Pure; standard library only (the router's image imports it).
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional, Tuple

from .impairment import STREAM_FIELDS, GilbertElliott, Impairment

# Model attribute -> the entry's key, to say an error in the user's words.
MODEL_TO_KEY = {"delay_ms": "delay", "jitter_ms": "jitter", "rate_kbit": "rate", "queue_limit": "queue",
                **{f.attr: f.key for f in STREAM_FIELDS if f.attr != f.key}}


def _stream_values(entry: Dict[str, Any]) -> Dict[str, Any]:
    """The stream fields in model units (durations: seconds in the entry, ms in the model)."""
    out = {}
    for f in STREAM_FIELDS:
        value = entry.get(f.key)
        if value is not None and f.value == "duration":
            value = value * 1000.0
        out[f.attr] = value
    return out


class EntryError(ValueError):
    """``key`` (None: the entry as a whole) and a message in the entry's own words."""

    def __init__(self, key: Optional[str], message: str):
        super().__init__(message)
        self.key = key


def build(entry: Dict[str, Any]) -> Impairment:
    """The Impairment an entry asks for; EntryError if the combination is refused."""
    ge = entry.get("gemodel")
    ms = lambda s: None if s is None else s * 1000.0  # noqa: E731
    try:
        return Impairment(
            loss=entry.get("loss"), loss_correlation=entry.get("loss_correlation"),
            gemodel=None if ge is None else GilbertElliott(
                p=ge["p"], r=ge.get("r"),
                one_minus_h=100.0 if ge.get("one_minus_h") is None else ge["one_minus_h"],
                one_minus_k=0.0 if ge.get("one_minus_k") is None else ge["one_minus_k"]),
            delay_ms=ms(entry.get("delay")), jitter_ms=ms(entry.get("jitter")),
            duplicate=entry.get("duplicate"), corrupt=entry.get("corrupt"), reorder=entry.get("reorder"),
            rate_kbit=entry.get("rate"), queue_limit=entry.get("queue"), **_stream_values(entry))
    except ValueError as exc:
        message, key = _in_entry_words(str(exc), entry)
        raise EntryError(key, message) from None


def _in_entry_words(message: str, entry: Dict[str, Any]) -> Tuple[str, Optional[str]]:
    for attr, key in MODEL_TO_KEY.items():
        message = re.sub(rf"\b{attr}\b", key, message)
    words = re.findall(r"[a-z_]+", message)
    keys = ("loss", "loss_correlation", "gemodel", "delay", "jitter", "duplicate", "corrupt",
            "reorder", "rate", "queue") + tuple(f.key for f in STREAM_FIELDS)
    return message, next((w for w in words if w in keys and entry.get(w) is not None), None)

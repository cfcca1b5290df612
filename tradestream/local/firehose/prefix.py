"""Firehose's S3 key naming: prefix expressions and the object name suffix.

A key is ``<evaluated prefix><stream name>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><extension>``
(AWS, "Configure Amazon S3 object name format"). Prefix expressions (AWS, "Custom prefixes for
Amazon S3 objects") are ``!{namespace:value}``:

- ``timestamp``: a Java DateTimeFormatter pattern, evaluated at the approximate arrival time of
  the oldest record in the object (every instance in one prefix gives the same instant);
  text in single quotes is literal. The letters implemented are y u M d D H h m s S E a;
  others are refused (``Y`` is Java's week-based year, almost always a mistake for ``y``);
- ``firehose:error-output-type`` (ErrorOutputPrefix only) and ``firehose:random-string``
  (11 random characters, new at each instance);
- ``partitionKeyFromLambda:<key>``: a partition key the transform returned (dynamic
  partitioning). ``partitionKeyFromQuery`` (jq inline parsing) is not emulated.

The semantic rules are Firehose's: a Prefix without a timestamp expression gets
``!{timestamp:yyyy/MM/dd/HH/}`` appended (not with dynamic partitioning, whose keys partition
instead); ErrorOutputPrefix may be absent only if Prefix has no expression, and then is Prefix
followed by ``<error-output-type>/yyyy/MM/dd/HH/``; an ErrorOutputPrefix with expressions must
include error-output-type, which Prefix may not; dynamic partitioning needs an ErrorOutputPrefix
and a partition key expression in Prefix. Not checked: the 512-character limit on evaluated
prefixes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from tradestream.cfn.template import NotEmulatedError, TemplateError

DEFAULT_TIMESTAMP = "yyyy/MM/dd/HH/"
ERROR_OUTPUT_TYPE = "error-output-type"
RANDOM_STRING = "random-string"
PROCESSING_FAILED = "processing-failed"
MAX_PREFIX_CHARS = 1024  # the API's limit on Prefix and ErrorOutputPrefix as configured

_EXPRESSION = re.compile(r"!\{([^}:]*):([^}]*)\}")
_NAMESPACES = {"timestamp", "firehose", "partitionKeyFromLambda", "partitionKeyFromQuery"}


class PrefixError(TemplateError):
    """A Prefix / ErrorOutputPrefix Firehose would refuse (InvalidArgumentException)."""

    code = "InvalidArgumentException"


@dataclass(frozen=True)
class Expression:
    namespace: str
    value: str


Part = str | Expression


@dataclass(frozen=True)
class Context:
    """What a prefix is evaluated against, for one S3 object."""

    moment: datetime  # the oldest record's arrival, in the stream's time zone
    partition_keys: Mapping[str, str]
    error_output_type: str | None = None


@dataclass(frozen=True)
class PrefixTemplate:
    parts: tuple[Part, ...]

    @classmethod
    def parse(cls, text: str, field: str) -> PrefixTemplate:
        if len(text) > MAX_PREFIX_CHARS:
            raise PrefixError(f"{field} is longer than {MAX_PREFIX_CHARS} characters")
        parts: list[Part] = []
        position = 0
        for match in _EXPRESSION.finditer(text):
            parts.extend(_literal(text[position : match.start()], field))
            parts.append(_expression(match.group(1), match.group(2), field))
            position = match.end()
        parts.extend(_literal(text[position:], field))
        return cls(tuple(parts))

    def expressions(self, namespace: str | None = None) -> list[Expression]:
        return [
            part
            for part in self.parts
            if isinstance(part, Expression) and namespace in (None, part.namespace)
        ]

    def has(self, namespace: str, value: str | None = None) -> bool:
        return any(value in (None, e.value) for e in self.expressions(namespace))

    @property
    def partition_key_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.value for e in self.expressions("partitionKeyFromLambda")))

    @property
    def static_head(self) -> str:
        """The folder every evaluated prefix starts with: the literal text before the first
        expression, up to its last slash ("trades/" for "trades/symbol=!{...}/")."""
        head = ""
        for part in self.parts:
            if isinstance(part, Expression):
                return head[: head.rfind("/") + 1]
            head += part
        return head

    def evaluate(self, context: Context, random: Callable[[], str] | None = None) -> str:
        fresh = random or random_string
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.namespace == "timestamp":
                out.append(format_timestamp(part.value, context.moment))
            elif part.namespace == "partitionKeyFromLambda":
                out.append(context.partition_keys[part.value])
            elif part.value == ERROR_OUTPUT_TYPE:
                out.append(context.error_output_type or PROCESSING_FAILED)
            else:
                out.append(fresh())
        return "".join(out)


@dataclass(frozen=True)
class Prefixes:
    """The data and error prefixes of a delivery stream, after Firehose's rules."""

    data: PrefixTemplate
    error: PrefixTemplate

    @classmethod
    def parse(
        cls,
        prefix: str,
        error_output_prefix: str | None,
        *,
        dynamic_partitioning: bool,
        has_lambda: bool,
    ) -> Prefixes:
        data = PrefixTemplate.parse(prefix, "Prefix")
        if data.has("firehose", ERROR_OUTPUT_TYPE):
            raise PrefixError("Prefix can't contain !{firehose:error-output-type}")
        keyed = data.has("partitionKeyFromLambda")
        if keyed and not dynamic_partitioning:
            raise PrefixError("partitionKeyFromLambda needs dynamic partitioning enabled")
        if keyed and not has_lambda:
            raise PrefixError("partitionKeyFromLambda needs a Lambda processor")
        if dynamic_partitioning:
            if not keyed:
                raise PrefixError("dynamic partitioning needs a partition key expression in Prefix")
            if error_output_prefix is None:
                raise PrefixError("dynamic partitioning needs an ErrorOutputPrefix")
        if error_output_prefix is None:
            if data.expressions():
                raise PrefixError(
                    "ErrorOutputPrefix can't be null when Prefix contains expressions"
                )
            error = PrefixTemplate.parse(
                f"{prefix}!{{firehose:{ERROR_OUTPUT_TYPE}}}/!{{timestamp:{DEFAULT_TIMESTAMP}}}",
                "ErrorOutputPrefix",
            )
        else:
            error = PrefixTemplate.parse(error_output_prefix, "ErrorOutputPrefix")
            if error.expressions() and not error.has("firehose", ERROR_OUTPUT_TYPE):
                raise PrefixError(
                    "an ErrorOutputPrefix with expressions must include "
                    "!{firehose:error-output-type}"
                )
            if error.has("partitionKeyFromLambda"):
                raise PrefixError("ErrorOutputPrefix can't use partition keys")
        if not dynamic_partitioning and not data.has("timestamp"):
            data = PrefixTemplate((*data.parts, Expression("timestamp", DEFAULT_TIMESTAMP)))
        return cls(data=data, error=error)


def object_name(stream_name: str, version: int, moment: datetime, extension: str) -> str:
    """The key suffix: ``<name>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid><extension>``."""
    return f"{stream_name}-{version}-{moment:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{extension}"


def random_string() -> str:
    """11 random characters, shaped like AWS's example (``046b6c7f-0b``)."""
    return str(uuid.uuid4())[:11]


def _literal(text: str, field: str) -> list[Part]:
    if "!{" in text:
        raise PrefixError(f"{field}: '!{{' can only start a !{{namespace:value}} expression")
    return [text] if text else []


def _expression(namespace: str, value: str, field: str) -> Expression:
    if namespace not in _NAMESPACES:
        raise PrefixError(f"{field}: unknown namespace {namespace!r} in !{{{namespace}:{value}}}")
    if namespace == "partitionKeyFromQuery":
        raise NotEmulatedError("partitionKeyFromQuery (jq inline parsing) is not emulated")
    if namespace == "firehose" and value not in (ERROR_OUTPUT_TYPE, RANDOM_STRING):
        raise PrefixError(f"{field}: !{{firehose:{value}}} is not a firehose expression")
    if namespace == "timestamp":
        compile_pattern(value)  # refuse a bad pattern now, not at the first delivery
    if not value:
        raise PrefixError(f"{field}: !{{{namespace}:}} needs a value")
    return Expression(namespace, value)


# --- Java DateTimeFormatter patterns --------------------------------------------------------------

Formatter = Callable[[datetime], str]

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]  # fmt: skip
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def format_timestamp(pattern: str, moment: datetime) -> str:
    return "".join(piece(moment) for piece in compile_pattern(pattern))


def compile_pattern(pattern: str) -> list[Formatter]:
    """The pieces of a DateTimeFormatter pattern; PrefixError / NotEmulatedError if unsupported."""
    pieces: list[Formatter] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end == -1:
                raise PrefixError(f"timestamp pattern {pattern!r}: unclosed quote")
            text = pattern[i + 1 : end] or "'"  # '' is a literal quote
            pieces.append(_constant(text))
            i = end + 1
        elif char.isascii() and char.isalpha():
            count = len(pattern) - i - len(pattern[i:].lstrip(char))
            pieces.append(_field(char, count, pattern))
            i += count
        else:
            pieces.append(_constant(char))
            i += 1
    return pieces


def _constant(text: str) -> Formatter:
    return lambda _moment: text


def _field(letter: str, count: int, pattern: str) -> Formatter:
    if letter in "yu":
        if count == 2:
            return lambda m: f"{m.year % 100:02d}"
        return lambda m: f"{m.year:0{max(count, 1)}d}"
    if letter == "M":
        if count == 3:
            return lambda m: _MONTHS[m.month - 1][:3]
        if count == 4:
            return lambda m: _MONTHS[m.month - 1]
        return _number(lambda m: m.month, count, 2)
    simple: dict[str, tuple[Callable[[datetime], int], int]] = {
        "d": (lambda m: m.day, 2),
        "D": (lambda m: m.timetuple().tm_yday, 3),
        "H": (lambda m: m.hour, 2),
        "h": (lambda m: (m.hour % 12) or 12, 2),
        "m": (lambda m: m.minute, 2),
        "s": (lambda m: m.second, 2),
    }
    if letter in simple:
        value, widest = simple[letter]
        return _number(value, count, widest)
    if letter == "S" and count <= 9:
        return lambda m: f"{m.microsecond:06d}{'0' * 3}"[:count]
    if letter == "E":
        return (lambda m: _DAYS[m.weekday()]) if count == 4 else (lambda m: _DAYS[m.weekday()][:3])
    if letter == "a":
        return lambda m: "AM" if m.hour < 12 else "PM"
    if letter == "Y":
        raise NotEmulatedError(
            f"timestamp pattern {pattern!r}: Y is Java's week-based year; you most likely want y"
        )
    raise NotEmulatedError(f"timestamp pattern {pattern!r}: the letter {letter!r} is not emulated")


def _number(value: Callable[[datetime], int], count: int, widest: int) -> Formatter:
    if count > widest:
        raise PrefixError(f"too many pattern letters: {count} (at most {widest})")
    return lambda m: f"{value(m):0{count}d}"

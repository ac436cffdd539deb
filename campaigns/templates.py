"""Message templates: Jinja2 in a sandbox, strict about missing variables, plain text (no escaping).

A template sees one recipient's columns (headers turned into identifiers by the ingest: `Full Name` is
`full_name`). A variable whose column is absent, or whose cell is empty, is missing: that recipient is
skipped with the reason `missing variable: X` (write `{{ x | default("") }}` or `{% if x is defined %}`
for an optional column). A text longer than the gateway allows is skipped with the reason
`campaigns.gateway_limits.too_long` gives.

Templates made only of text and `{{ name }}` (the common case) are rendered for a whole chunk at once by
joining strings; any other template is rendered by Jinja2 one recipient at a time. Both give the same
text: Jinja2 turns a string value into itself.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from typing import NamedTuple

import numpy as np
import pandas as pd
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from campaigns import gateway_limits
from campaigns.errors import BlastError

MISSING_VARIABLE = "missing variable: {name}"
MAX_REASON = 200  # the width of message.skip_reason

# Bounds on one recipient's rendering (a template bomb is skipped with its reason, never run to the end):
MAX_TEXT = 100_000  # characters of output, and of any string or list a template builds with * or +
MAX_STEPS = 100_000  # loop steps over range(), in all of a rendering's loops together
MAX_SECONDS = 1.0  # wall time of one rendering, checked at each loop step and output chunk


class TemplateBomb(SecurityError):
    """A rendering over its bounds (MAX_TEXT, MAX_STEPS, MAX_SECONDS)."""


class _Budget:
    __slots__ = ("deadline", "steps")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self, count: int = 1) -> None:
        self.steps -= count
        if self.steps < 0:
            raise TemplateBomb(f"template runs more than {MAX_STEPS:,} loop steps")
        if time.monotonic() > self.deadline:
            raise TemplateBomb(f"template takes more than {MAX_SECONDS:g} s for one recipient")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # rendered outside render_one (tests): a budget of its own
        budget = _Budget()
        _BUDGET.set(budget)
    return budget


def _bounded_range(*args: int) -> Iterator[int]:
    budget = _budget()
    numbers = range(*args)
    if len(numbers) > budget.steps:
        raise TemplateBomb(f"template runs more than {MAX_STEPS:,} loop steps")
    for number in numbers:
        budget.step()
        yield number


def _size(value) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


class BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, with repetition and powers bounded: `'ab' * 10**8` and `9 ** 9 ** 9` are refused."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context, operator: str, left, right):
        if operator == "**" and isinstance(right, int) and abs(right) > 1000:
            raise TemplateBomb("template raises a number to a power over 1000")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                size = _size(sequence)
                if size is not None and isinstance(times, int) and size * times > MAX_TEXT:
                    raise TemplateBomb(f"template builds a text over {MAX_TEXT:,} characters")
        if operator == "+" and (_size(left) or 0) + (_size(right) or 0) > MAX_TEXT:
            raise TemplateBomb(f"template builds a text over {MAX_TEXT:,} characters")
        return super().call_binop(context, operator, left, right)


_ENVIRONMENT = BoundedEnvironment(undefined=StrictUndefined, autoescape=False)
_ENVIRONMENT.globals["range"] = _bounded_range
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


class TemplateProblem(BlastError):
    """A template that does not parse."""


@dataclass(frozen=True)
class MessageTemplate:
    source: str
    jinja: object  # jinja2.Template
    # Literal text and variable names in order, when the template is only text and `{{ name }}`.
    pieces: tuple[tuple[bool, str], ...] | None
    variables: frozenset[str]


class Preview(NamedTuple):
    text: str | None
    skip_reason: str | None


def _simple_pieces(tree: nodes.Template) -> tuple[tuple[bool, str], ...] | None:
    """(is_variable, text) pieces when the template is only text and bare variable names, else None."""
    pieces: list[tuple[bool, str]] = []
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                pieces.append((False, node.data))
            elif (isinstance(node, nodes.Name) and node.ctx == "load"
                  and node.name not in _ENVIRONMENT.globals):
                pieces.append((True, node.name))
            else:
                return None
    return tuple(pieces)


@lru_cache(maxsize=64)
def compile_template(source: str) -> MessageTemplate:
    """Parse and compile a template; a TemplateProblem (a BlastError) names the line that is wrong."""
    try:
        tree = _ENVIRONMENT.parse(source)
        jinja = _ENVIRONMENT.from_string(tree)
    except TemplateSyntaxError as error:
        raise TemplateProblem(f"template does not parse: line {error.lineno}: {error.message}") from None
    return MessageTemplate(source=source, jinja=jinja, pieces=_simple_pieces(tree),
                           variables=frozenset(meta.find_undeclared_variables(tree)))


def _as_template(template: str | MessageTemplate) -> MessageTemplate:
    return template if isinstance(template, MessageTemplate) else compile_template(template)


def variables_of(template: str | MessageTemplate) -> set[str]:
    """The names a template reads from each recipient's columns."""
    return set(_as_template(template).variables)


def _reason(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def render_one(template: str | MessageTemplate, variables: Mapping[str, object]) -> Preview:
    """One recipient's text, or the reason to skip them. Empty cells count as missing."""
    compiled = _as_template(template)
    context = {name: value for name, value in variables.items() if value is not None and value != ""}
    token = _BUDGET.set(_Budget())
    try:
        return Preview(_bounded_text(compiled, context), None)
    except UndefinedError as error:
        found = _UNDEFINED_NAME.search(str(error))
        if found:
            return Preview(None, _reason(MISSING_VARIABLE.format(name=found.group(1))))
        return Preview(None, _reason(f"template error: {error}"))
    except (SecurityError, TemplateError, TypeError, ValueError, ArithmeticError) as error:
        return Preview(None, _reason(f"template error: {error}"))
    except (MemoryError, RecursionError) as error:
        return Preview(None, _reason(f"template error: {type(error).__name__}"))
    finally:
        _BUDGET.reset(token)


def _bounded_text(compiled: MessageTemplate, context: Mapping[str, object]) -> str:
    """The rendering, a chunk at a time, stopped at MAX_TEXT characters or MAX_SECONDS."""
    budget = _budget()
    chunks, size = [], 0
    for chunk in compiled.jinja.generate(context):
        size += len(chunk)
        if size > MAX_TEXT:
            raise TemplateBomb(f"template writes more than {MAX_TEXT:,} characters")
        budget.step(0)
        chunks.append(chunk)
    return "".join(chunks)


def preview(template: str | MessageTemplate, rows: Iterable[Mapping[str, object]] | pd.DataFrame,
            n: int = 3) -> list[Preview]:
    """The first `n` recipients' texts (or skip reasons), to show before launching."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.head(n).to_dict("records")
    found = []
    for row in rows:
        if len(found) >= n:
            break
        found.append(render_one(template, row))
    return found


def _render_simple(pieces: tuple[tuple[bool, str], ...], frame: pd.DataFrame, texts: np.ndarray,
                   reasons: np.ndarray) -> None:
    size = len(frame)
    missing = np.zeros(size, dtype=bool)
    for is_variable, name in pieces:
        if not is_variable:
            continue
        if name not in frame.columns:
            empty = np.ones(size, dtype=bool)
        else:
            empty = (frame[name].to_numpy(dtype=object, na_value="") == "")
        first = empty & ~missing
        if first.any():
            reasons[first] = _reason(MISSING_VARIABLE.format(name=name))
            missing |= first
    present = [text for is_variable, text in pieces if is_variable and text in frame.columns]
    if not any(is_variable for is_variable, _text in pieces):
        texts[:] = "".join(text for _is_variable, text in pieces)
    elif present:
        columns = [frame[text].to_numpy(dtype=object, na_value="") if is_variable and text in present
                   else repeat("" if is_variable else text) for is_variable, text in pieces]
        texts[:] = ["".join(parts) for parts in zip(*columns, strict=False)]  # repeat() pieces are endless
    texts[missing] = None


def render_frame(template: str | MessageTemplate, frame: pd.DataFrame, *, provider: str,
                 kind: str = "text") -> tuple[np.ndarray, np.ndarray]:
    """Texts (None where skipped) and skip reasons (None where rendered) for every row of `frame`.

    `frame` holds one column per variable, as strings ("" for an empty cell).
    """
    compiled = _as_template(template)
    size = len(frame)
    texts = np.full(size, None, dtype=object)
    reasons = np.full(size, None, dtype=object)
    if size == 0:
        return texts, reasons
    if compiled.pieces is not None:
        _render_simple(compiled.pieces, frame, texts, reasons)
    else:
        names = [str(column) for column in frame.columns]
        for index, values in enumerate(frame.itertuples(index=False, name=None)):
            texts[index], reasons[index] = render_one(compiled, dict(zip(names, values, strict=True)))
    _skip_too_long(texts, reasons, provider, kind)
    return texts, reasons


def _skip_too_long(texts: np.ndarray, reasons: np.ndarray, provider: str, kind: str) -> None:
    limit, unit = gateway_limits.text_limit(provider, kind)
    for index, text in enumerate(texts):
        if text is None or len(text) * (4 if unit == "bytes" else 1) <= limit:
            continue  # cheap bound: a character is at most 4 bytes of UTF-8
        reason = gateway_limits.too_long(text, provider, kind)
        if reason is not None:
            texts[index], reasons[index] = None, _reason(reason)

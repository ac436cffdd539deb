"""Templates: sandboxed Jinja2, strict about missing variables, the fast path equal to Jinja2's own."""

from __future__ import annotations

import pandas as pd
import pytest

from campaigns import gateway_limits, templates
from campaigns.errors import BlastError


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in columns.items()})


def test_plain_substitution_renders_each_row():
    # Given a template of text and {{ name }} substitutions
    rows = frame(name=["Amina", "Brian"], day=["Monday", "Friday"])
    # When rendered for a chunk
    texts, reasons = templates.render_frame("Hi {{ name }}, see you {{ day }}.\n", rows, provider="socnet")
    # Then each row gets its text (Jinja2 drops one trailing newline)
    assert list(texts) == ["Hi Amina, see you Monday.", "Hi Brian, see you Friday."]
    assert list(reasons) == [None, None]


@pytest.mark.parametrize("source", [
    "Hi {{ name }}, see you {{ day }}.",
    "{{name}}{{day}}",
    "Only text, no variables",
    "{{ name }}",
    "Line one\nLine two {{ day }}\n\n",
    'Quotes " and \\ backslashes {{ name }} 100% {{ day }}',
])
def test_fast_path_gives_the_same_text_as_jinja(source):
    # Given a template the fast path handles, and rows with awkward values
    compiled = templates.compile_template(source)
    assert compiled.pieces is not None
    rows = frame(name=["Amina", "Ọkẹ́llọ", 'say "hi"', "{{ not code }}"],
                 day=["Monday", "", "tab\there", "new\nline"])
    # When rendered for the chunk and one row at a time by Jinja2
    texts, reasons = templates.render_frame(compiled, rows, provider="socnet")
    one_by_one = [templates.render_one(compiled, row) for row in rows.to_dict("records")]
    # Then both agree, text for text and reason for reason
    assert list(zip(texts, reasons, strict=True)) == [tuple(result) for result in one_by_one]


def test_logic_templates_render_per_row():
    # Given a template with a condition and a filter
    source = "{% if vip is defined %}Dear {{ name | upper }}{% else %}Hi {{ name }}{% endif %}"
    compiled = templates.compile_template(source)
    assert compiled.pieces is None
    rows = frame(name=["amina", "brian"], vip=["yes", ""])
    # When rendered
    texts, reasons = templates.render_frame(compiled, rows, provider="socnet")
    # Then the empty cell counts as missing (undefined) and the filter applies
    assert list(texts) == ["Dear AMINA", "Hi brian"]
    assert list(reasons) == [None, None]


@pytest.mark.parametrize("source", ["Hi {{ name }} on {{ day }}",
                                    "{% if 1 %}Hi {{ name }} on {{ day }}{% endif %}"])
def test_missing_or_empty_variable_skips_the_row_naming_it(source):
    # Given rows where a cell is empty, and a template needing a column that is absent
    rows = frame(name=["Amina", ""], day=["Monday", "Friday"])
    texts, reasons = templates.render_frame(source, rows, provider="socnet")
    assert list(texts) == ["Hi Amina on Monday", None]
    assert list(reasons) == [None, "missing variable: name"]
    # When a column is absent altogether
    texts, reasons = templates.render_frame(source, rows[["name"]], provider="socnet")
    # Then every row names the first missing variable
    assert list(reasons) == ["missing variable: day", "missing variable: name"]
    assert list(texts) == [None, None]


def test_text_over_the_gateway_limit_is_skipped_with_the_gateway_reason():
    # Given a recipient whose text is over Devino's 1000 characters
    rows = frame(note=["x" * 995, "y" * 20])
    texts, reasons = templates.render_frame("Note: {{ note }}", rows, provider="devino")
    # Then that row is skipped with the reason gateway_limits gives, the other is kept
    assert texts[0] is None
    assert reasons[0] == gateway_limits.too_long("Note: " + "x" * 995, "devino", "text")
    assert texts[1] == "Note: " + "y" * 20


def test_byte_limits_count_utf8_bytes():
    # Given the HTTP API's 2000-byte limit and a text of 700 three-byte characters
    rows = frame(word=["€" * 700])
    texts, reasons = templates.render_frame("{{ word }}", rows, provider="httpapi")
    # Then 2100 bytes is too long even though it is 700 characters
    assert texts[0] is None and "2100 bytes" in reasons[0]


def test_template_that_does_not_parse_names_the_line():
    with pytest.raises(BlastError, match="line 2"):
        templates.compile_template("Hello\n{{ name }\nBye")
    with pytest.raises(BlastError, match="line 1"):
        templates.compile_template("{% if x %}never closed")


def test_sandbox_refuses_unsafe_attribute_access():
    # Given a template reaching for Python internals
    texts, reasons = templates.render_frame("{{ name.__class__.__mro__ }}", frame(name=["Amina"]),
                                            provider="socnet")
    # Then the row is not rendered (a sandboxed environment hides private attributes)
    assert texts[0] is None or "class" not in texts[0]
    if texts[0] is None:
        assert reasons[0].startswith(("template error", "missing variable"))


def test_variables_of_lists_what_a_template_reads():
    source = "Hi {{ name }}{% if vip %}, {{ vip | upper }}{% endif %}"
    assert templates.variables_of(source) == {"name", "vip"}
    assert templates.variables_of("No variables") == set()


def test_preview_shows_the_first_rows():
    rows = [{"name": "Amina"}, {"name": ""}, {"name": "Grace"}, {"name": "Joseph"}]
    shown = templates.preview("Hi {{ name }}", rows, n=3)
    assert shown == [("Hi Amina", None), (None, "missing variable: name"), ("Hi Grace", None)]
    assert templates.preview("Hi {{ name }}", pd.DataFrame(rows), n=1) == [("Hi Amina", None)]


# ---------------------------------------------------------------- template bombs


@pytest.mark.parametrize(("source", "words"), [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop steps"),
    ("{% for i in range(10**6) %}x{% endfor %}", "loop steps"),
    ("{{ 'ab' * 100000000 }}", "characters"),
    ("{{ [1] * 100000000 }}", "characters"),
    ("{{ 2 ** 100000000 }}", "power"),
    ("{% for i in range(99999) %}{{ 'x' * 99 }}{% endfor %}", "characters"),
])
def test_template_bombs_are_skipped_with_a_reason_in_bounded_time(source, words):
    import time

    from campaigns.templates import MAX_SECONDS, render_one

    began = time.monotonic()
    text, reason = render_one(source, {"name": "Aisha"})
    assert text is None and reason.startswith("template error") and words in reason
    assert time.monotonic() - began < MAX_SECONDS * 3


def test_a_template_within_its_bounds_renders():
    from campaigns.templates import render_one

    text, reason = render_one("{% for i in range(3) %}{{ name }}{{ i }} {% endfor %}{{ '-' * 3 }}", {"name": "A"})
    assert (text, reason) == ("A0 A1 A2 ---", None)

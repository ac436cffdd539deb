"""Phone numbers to E.164, with the `phonenumbers` library and a default region (the campaign's).

What a number means is phonenumbers' verdict: `phonenumbers.parse(text, region)`, then
`is_valid_number`, then `format_number(..., E164)`. Before that, two things people's files do to numbers
are undone (both only rescue numbers phonenumbers would reject as written):

- spreadsheets turn numbers into floats: `256701234567.0` is read as `256701234567`, and
  `2.56701234567E+11` too, but only when the mantissa still holds every digit; `2.567E+11` lost digits
  and is skipped as rounded (we would rather skip a row than message a stranger);
- `00` is the international prefix in most of the world, but phonenumbers only knows the default
  region's own (Uganda's is 000, 005 or 007): a number starting `00` that is invalid as written is read
  again as `+` followed by the rest.

One thing phonenumbers accepts is refused: letters. phonenumbers reads them as a keypad's ("vanity"
numbers: 0701ABC567 is 0701222567), so a typo in a list would reach a stranger. A skipped number says why, in
one of a closed set of reasons (phonenumbers' own parse errors and `is_possible_number_with_reason`, then its
validity): missing, rounded by a spreadsheet, letters, not a number, unknown country code, too short, too
long, wrong length, or invalid (the right length, but no such number in its country's plan). Fixed-line
numbers are kept: WhatsApp Business accounts are registered on landlines too, and no gateway Blast drives
refuses them; one that has no WhatsApp is reported by the gateway as not on WhatsApp.

`normalise` is that definition, one value at a time. `normalise_many` gives the same answers for a whole
column, fast: each distinct value once, the common shapes through `phone_rules` (phonenumbers'
own metadata, replayed over arrays), everything else through `normalise`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from campaigns.errors import BlastError
from campaigns.ingest import phone_rules

# Skip reasons (they are also the keys of the ingest report's `reasons`).
MISSING = "missing phone"
ROUNDED = "number rounded by a spreadsheet"
LETTERS = "letters in the number"
NOT_A_NUMBER = "not a number"
UNKNOWN_COUNTRY = "unknown country code"
TOO_SHORT = "too short"
TOO_LONG = "too long"
WRONG_LENGTH = "wrong length for its country"
INVALID = "invalid number"  # the right length, but no such number in its country's numbering plan
REASONS = (MISSING, ROUNDED, LETTERS, NOT_A_NUMBER, UNKNOWN_COUNTRY, TOO_SHORT, TOO_LONG, WRONG_LENGTH, INVALID)

# phonenumbers' parse errors and `is_possible_number_with_reason` verdicts, as skip reasons.
_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: UNKNOWN_COUNTRY,
    NumberParseException.NOT_A_NUMBER: NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: TOO_SHORT,
    NumberParseException.TOO_SHORT_NSN: TOO_SHORT,
    NumberParseException.TOO_LONG: TOO_LONG,
}
_NOT_POSSIBLE = {
    ValidationResult.INVALID_COUNTRY_CODE: UNKNOWN_COUNTRY,
    ValidationResult.TOO_SHORT: TOO_SHORT,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: TOO_SHORT,  # a local number, without its area code
    ValidationResult.TOO_LONG: TOO_LONG,
    ValidationResult.INVALID_LENGTH: WRONG_LENGTH,
}

DEFAULT_REGION = "UG"

_INTEGRAL_FLOAT = re.compile(r"(\d+)\.0+")
_SCIENTIFIC = re.compile(r"(\d)(?:\.(\d+))?[eE]\+?(\d{1,2})")
# The shapes the fast path reads by their digits alone: digits, spaces, `-`, `.`, parentheses, and at
# most one `+`, before the first digit (after a spreadsheet's float is undone). Longer or stranger values
# go to phonenumbers itself (through `normalise`).
_SIMPLE_SHAPE = re.compile(r"\(?(\+)?\(?[0-9][0-9 ().\-]*")
_SIMPLE_MIN_DIGITS, _SIMPLE_MAX_DIGITS = 4, 30
_MAX_INPUT = 250  # phonenumbers refuses longer strings (phonenumberutil._MAX_INPUT_STRING_LENGTH)


def check_region(region: str) -> str:
    """The region code, upper case; a BlastError when phonenumbers does not know it."""
    code = (region or "").strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise BlastError(f"unknown region {region!r}: use a two-letter country code such as UG, KE or GB")
    return code


def undo_spreadsheet(text: str) -> tuple[str, bool]:
    """The digits a spreadsheet's float stood for, and whether digits were lost (then skip the row)."""
    if "." not in text and "e" not in text and "E" not in text:
        return text, False
    if match := _INTEGRAL_FLOAT.fullmatch(text):
        return match.group(1), False
    if match := _SCIENTIFIC.fullmatch(text):
        lead, fraction, exponent = match.group(1), match.group(2) or "", int(match.group(3))
        if exponent < len(fraction):  # 2.5670123456701E+11 is no whole number: not a phone cell
            return text, False
        if exponent > len(fraction):  # the padding zeros were never in the file: digits were lost
            return text, True
        return lead + fraction, False
    return text, False


def _phonenumbers_e164(text: str, region: str) -> tuple[str | None, str | None]:
    """(E.164, None) for a number phonenumbers finds valid, else (None, skip reason)."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as error:
        return None, _PARSE_ERRORS.get(error.error_type, NOT_A_NUMBER)
    if not phonenumbers.is_valid_number(number):
        return None, _NOT_POSSIBLE.get(phonenumbers.is_possible_number_with_reason(number), INVALID)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), None


def normalise(raw: object, region: str = DEFAULT_REGION) -> tuple[str | None, str | None]:
    """(E.164, None) for a valid number, else (None, skip reason). `region` is an upper-case code."""
    if raw is None or (isinstance(raw, float) and raw != raw):
        return None, MISSING
    text = str(raw).strip()
    if not text:
        return None, MISSING
    text, rounded = undo_spreadsheet(text)
    if rounded:
        return None, ROUNDED
    if any(character.isalpha() for character in text):
        return None, LETTERS
    e164, reason = _phonenumbers_e164(text, region)
    if e164 is None and text.startswith("00"):  # the reason is the number's read as international
        e164, reason = _phonenumbers_e164("+" + text[2:], region)
    return e164, reason


def normalise_many(values: Iterable[object] | pd.Series, region: str = DEFAULT_REGION
                   ) -> tuple[np.ndarray, np.ndarray]:
    """E.164 (or None) and skip reason (or None) for every value: the same answers as `normalise`.

    Returns two object arrays as long as `values`.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    phones, reasons = _normalise_distinct(np.asarray(uniques, dtype=object), region)
    size = len(codes)
    out_phones = np.full(size, None, dtype=object)
    out_reasons = np.full(size, MISSING, dtype=object)
    present = codes >= 0
    out_phones[present] = phones[codes[present]]
    out_reasons[present] = reasons[codes[present]]
    return out_phones, out_reasons


# A simple-shape value's digits (see _SIMPLE_SHAPE): the other characters it may hold, deleted in one pass.
_NOT_DIGITS = str.maketrans("", "", " -.()+")


def _normalise_distinct(values: np.ndarray, region: str) -> tuple[np.ndarray, np.ndarray]:
    size = len(values)
    reasons = np.full(size, None, dtype=object)
    texts = [value.strip() if isinstance(value, str) else str(value).strip() for value in values]
    simple_shape = _SIMPLE_SHAPE.fullmatch
    fast_index: list[int] = []
    fast_digits: list[str] = []
    fast_plus: list[bool] = []
    slow: list[int] = []
    for index, text in enumerate(texts):
        if text.isdigit() and text.isascii():  # the commonest shape, without a regular expression
            if _SIMPLE_MIN_DIGITS <= len(text) <= _SIMPLE_MAX_DIGITS:
                fast_index.append(index)
                fast_digits.append(text)
                fast_plus.append(False)
            else:
                slow.append(index)
            continue
        if "." in text or "e" in text or "E" in text:
            text, rounded = undo_spreadsheet(text)
            if rounded:
                reasons[index] = ROUNDED
                continue
            texts[index] = text
        match = simple_shape(text) if len(text) <= _MAX_INPUT else None
        if match is None:
            slow.append(index)
            continue
        number = text.translate(_NOT_DIGITS)
        if _SIMPLE_MIN_DIGITS <= len(number) <= _SIMPLE_MAX_DIGITS:
            fast_index.append(index)
            fast_digits.append(number)
            fast_plus.append(match.group(1) is not None)
        else:
            slow.append(index)

    phones = np.full(size, None, dtype=object)
    where = np.array(fast_index, dtype=np.int64)
    digits = np.array(fast_digits, dtype=object)
    outcome = phone_rules.evaluate(digits, np.array(fast_plus, dtype=bool), region)
    phones[where] = outcome.e164
    reasons[where] = _reasons_of(outcome.why)
    slow.extend(where[outcome.fallback].tolist())

    # "00" read as "+": only for numbers invalid as written (see the module's docstring).
    retry = np.flatnonzero(~outcome.fallback & (outcome.e164 == None))  # noqa: E711 (element-wise)
    retry = [i for i in retry if texts[where[i]].startswith("00")]
    # A short rest ("+53") fails phonenumbers' first check, that a number has three digits: its own to say.
    slow.extend(where[i] for i in retry if len(digits[i]) - 2 < _SIMPLE_MIN_DIGITS)
    retry = np.array([i for i in retry if len(digits[i]) - 2 >= _SIMPLE_MIN_DIGITS], dtype=np.int64)
    if len(retry):
        again = phone_rules.evaluate(
            np.array([digits[i][2:] for i in retry], dtype=object), np.ones(len(retry), dtype=bool), region)
        phones[where[retry]] = again.e164
        reasons[where[retry]] = _reasons_of(again.why)
        slow.extend(where[retry[again.fallback]].tolist())

    for index in slow:
        phones[index], reasons[index] = normalise(texts[index], region)
    return phones, reasons


def _reasons_of(why: np.ndarray) -> np.ndarray:
    """The fast path's verdicts (phone_rules.Why, in phonenumbers' words) as skip reasons."""
    reasons = np.full(len(why), None, dtype=object)
    for verdict in set(why.tolist()) - {None}:
        if verdict.parse_error is not None:
            reason = _PARSE_ERRORS.get(verdict.parse_error, NOT_A_NUMBER)
        else:
            reason = _NOT_POSSIBLE.get(verdict.possibility, INVALID)
        reasons[why == verdict] = reason
    return reasons


class AheadOfTime:
    """`normalise_many` in a helper process, so the next chunk's numbers are checked while the caller handles
    the current one: a big file is read on two cores. `submit(values)` returns a future of (E.164, reasons).
    Without a process to spare (a daemonic one may not start children), the work is done at once, here.

    The helper is spawned, never forked (the caller may run threads: a worker's, the web app's); as with any
    spawned process, a script that reads contact files must guard its main code with
    `if __name__ == "__main__":` (Blast's own commands do)."""

    def __init__(self, region: str):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.region = region
        self.pool = None
        if not multiprocessing.current_process().daemon:
            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, values: np.ndarray):
        from concurrent.futures import Future

        if self.pool is not None:
            return self.pool.submit(normalise_many, values, self.region)
        done = Future()
        done.set_result(normalise_many(values, self.region))
        return done

    def close(self, *, finished: bool) -> None:
        """Stop the helper: at the end of a file it is waited for; after a failure, not."""
        if self.pool is not None:
            self.pool.shutdown(wait=finished, cancel_futures=not finished)

"""The fast path of phone validation: phonenumbers' own rules, applied to many digit strings at once.

`phonenumbers.parse` + `is_valid_number` costs tens of microseconds per number, too slow for a
million-row contact list. For the common shapes (a digit string, with or without a leading `+`) the
outcome depends only on the digits, and on the metadata phonenumbers ships: this module replays, step by
step and with that metadata, what `phonenumbers.parse` (`_maybe_extract_country_code`,
`_maybe_strip_national_prefix_carrier_code`, `_test_number_length`) and `is_valid_number`
(`region_code_for_number`, `_number_type_helper`) do, over whole arrays, with each regular expression
compiled once.

Whatever is not certain to be replayed exactly is marked for the fallback (phonenumbers itself, one
distinct value at a time): regions whose national prefix is rewritten by a transform rule, and numbers
that would take phonenumbers' "strip the plus sign and retry" branch. tests/ingest/test_phones.py checks this
module against phonenumbers on random numbers: any disagreement is a bug here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, ValidationResult
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# The phonenumbers releases this module was checked against, step by step and by tests/ingest/test_phones.py's
# differential: a release outside them may change a private step replayed here, so the dependency is pinned
# to the same range (pyproject.toml) and a test fails, naming the differences, when another is installed.
PROVEN_RELEASES = "~=9.0.43"

# phonenumbers' own bounds (phonenumberutil._MIN_LENGTH_FOR_NSN and _MAX_LENGTH_FOR_NSN).
MIN_NSN_DIGITS = 2
MAX_NSN_DIGITS = 17

# phonenumbers' ValidationResult values that _test_number_length can give for a number.
IS_POSSIBLE = ValidationResult.IS_POSSIBLE
IS_POSSIBLE_LOCAL_ONLY = ValidationResult.IS_POSSIBLE_LOCAL_ONLY
INVALID_LENGTH = ValidationResult.INVALID_LENGTH
TOO_SHORT = ValidationResult.TOO_SHORT
TOO_LONG = ValidationResult.TOO_LONG



@dataclass(frozen=True, eq=False)  # each verdict is one object (below): compared by identity, at C speed
class Why:
    """Why a number is not valid, in phonenumbers' own words: the error `parse` raises, or, for a number it
    parses but `is_valid_number` refuses, what `is_possible_number_with_reason` says. campaigns.ingest.phones
    names them."""

    parse_error: int | None = None  # a NumberParseException error type
    possibility: int | None = None  # a ValidationResult


TOO_SHORT_AFTER_IDD = Why(parse_error=NumberParseException.TOO_SHORT_AFTER_IDD)
TOO_SHORT_NSN = Why(parse_error=NumberParseException.TOO_SHORT_NSN)
NSN_TOO_LONG = Why(parse_error=NumberParseException.TOO_LONG)
NO_COUNTRY_CODE = Why(parse_error=NumberParseException.INVALID_COUNTRY_CODE)
_POSSIBILITY = {result: Why(possibility=result) for result in
                (IS_POSSIBLE, IS_POSSIBLE_LOCAL_ONLY, INVALID_LENGTH, TOO_SHORT, TOO_LONG)}

_COUNTRY_CODES = {str(code) for code in COUNTRY_CODE_TO_REGION_CODE}


@dataclass(frozen=True)
class Outcome:
    """E.164 text (or None when invalid) per input, why an invalid one is, and which inputs need
    phonenumbers itself."""

    e164: np.ndarray  # object: str | None
    fallback: np.ndarray  # bool
    why: np.ndarray  # object: Why | None

    def take(self, where: np.ndarray, part: Outcome) -> None:
        """Fill the entries at `where` from the outcome of those inputs."""
        self.e164[where] = part.e164
        self.fallback[where] = part.fallback
        self.why[where] = part.why


def _empty(size: int) -> Outcome:
    return Outcome(np.full(size, None, dtype=object), np.zeros(size, dtype=bool), np.full(size, None, dtype=object))


def _fullmatcher(pattern: str | None):
    """phonenumbers' `_match_national_number`: the whole digit string matches; no pattern never matches."""
    if not pattern:
        return lambda _number: False
    compiled = re.compile(pattern)
    return lambda number: compiled.fullmatch(number) is not None


@dataclass
class Rules:
    """One region's metadata, compiled for repeated use."""

    metadata: PhoneMetadata
    general: object = field(init=False)
    possible_lengths: tuple[int, ...] = field(init=False)
    local_lengths: tuple[int, ...] = field(init=False)
    national_prefix: re.Pattern | None = field(init=False)
    prefix_is_transformed: bool = field(init=False)
    _validity: dict[int, re.Pattern | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        general = self.metadata.general_desc
        self.general = _fullmatcher(general.national_number_pattern if general else None)
        self.possible_lengths = tuple(general.possible_length) if general else ()
        self.local_lengths = tuple(general.possible_length_local_only or ()) if general else ()
        prefix = self.metadata.national_prefix_for_parsing
        self.national_prefix = re.compile(prefix) if prefix else None
        self.prefix_is_transformed = bool(self.metadata.national_prefix_transform_rule)
        self.prefix_literal = prefix if prefix and prefix.isdigit() else None
        self.length_results = tuple(self.length_result(length) for length in range(64))

    def length_result(self, length: int) -> int:
        """phonenumbers' `_test_number_length` for type UNKNOWN (the general description)."""
        lengths = self.possible_lengths
        if not lengths or lengths[0] == -1:
            return INVALID_LENGTH
        if length in self.local_lengths:
            return IS_POSSIBLE_LOCAL_ONLY
        if lengths[0] == length:
            return IS_POSSIBLE
        if lengths[0] > length:
            return TOO_SHORT
        if lengths[-1] < length:
            return TOO_LONG
        return IS_POSSIBLE if length in lengths[1:] else INVALID_LENGTH

    def validity(self, length: int) -> re.Pattern | None:
        """One regex: `_number_type_helper(number) != UNKNOWN` for numbers of `length` digits.

        It is the general description (as a lookahead) and then any one of the type descriptions whose
        possible lengths allow `length`, in the same order and with the same mobile/fixed-line rule.
        None when no number of that length can be valid.
        """
        if length not in self._validity:
            self._validity[length] = self._build_validity(length)
        return self._validity[length]

    def _build_validity(self, length: int) -> re.Pattern | None:
        metadata = self.metadata

        def allows(desc) -> bool:
            return (desc is not None and bool(desc.national_number_pattern)
                    and (not desc.possible_length or length in desc.possible_length))

        general = metadata.general_desc
        if not allows(general):
            return None
        types = [metadata.premium_rate, metadata.toll_free, metadata.shared_cost, metadata.voip,
                 metadata.personal_number, metadata.pager, metadata.uan, metadata.voicemail,
                 metadata.fixed_line]
        if not metadata.same_mobile_and_fixed_line_pattern:
            types.append(metadata.mobile)
        alternatives = [f"(?:{desc.national_number_pattern})" for desc in types if allows(desc)]
        if not alternatives:
            return None
        return re.compile(f"(?=(?:{general.national_number_pattern})\\Z)(?:{'|'.join(alternatives)})")

    def strip_national_prefix(self, numbers: np.ndarray) -> np.ndarray:
        """`_maybe_strip_national_prefix_carrier_code` for rules without a transform (callers check)."""
        prefix, general = self.national_prefix, self.general
        if prefix is None:
            return numbers
        stripped = numbers.copy()
        if self.prefix_literal is not None:  # the common case ("0", "1", "8"): no regex needed
            literal, size = self.prefix_literal, len(self.prefix_literal)
            for index in [i for i, number in enumerate(numbers) if number.startswith(literal)]:
                number = numbers[index]
                rest = number[size:]
                if not (general(number) and not general(rest)):
                    stripped[index] = rest
            return stripped
        for index, number in enumerate(numbers):
            if not number:
                continue
            match = prefix.match(number)
            if match is None:
                continue
            rest = number[match.end():]
            # Keep the number as it is when it was viable and would not be any more.
            if general(number) and not general(rest):
                continue
            stripped[index] = rest
        return stripped


@cache
def rules_for_region(region: str) -> Rules | None:
    metadata = PhoneMetadata.metadata_for_region(region, None)
    return Rules(metadata) if metadata is not None else None


@cache
def rules_for_country_code(country_code: int) -> Rules | None:
    """The metadata phonenumbers.parse uses for a number that carries this country code."""
    main_region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, main_region)
    return Rules(metadata) if metadata is not None else None


@cache
def _regions_of(country_code: int) -> tuple[tuple[re.Pattern | None, Rules], ...]:
    """The regions sharing a country code, in phonenumbers' order, with their leading-digits pattern."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) == 1:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, regions[0])
        return ((None, Rules(metadata)),) if metadata is not None else ()
    found = []
    for region in regions:
        rules = rules_for_region(region.upper())
        if rules is None:
            continue
        leading = rules.metadata.leading_digits
        found.append((re.compile(leading) if leading is not None else None, rules))
    return tuple(found)


def _lengths(numbers: np.ndarray) -> np.ndarray:
    return np.fromiter(map(len, numbers), dtype=np.int64, count=len(numbers))


def _type_is_known(numbers: np.ndarray, rules: Rules) -> np.ndarray:
    """`_number_type_helper(number, metadata) != UNKNOWN`, for every number."""
    known = np.zeros(len(numbers), dtype=bool)
    lengths = _lengths(numbers)
    for length in np.unique(lengths):
        pattern = rules.validity(int(length))
        if pattern is None:
            continue
        where = np.flatnonzero(lengths == length)
        fullmatch = pattern.fullmatch
        known[where] = [fullmatch(number) is not None for number in numbers[where]]
    return known


def is_valid(country_code: int, numbers: np.ndarray) -> np.ndarray:
    """`is_valid_number` for national significant numbers under one country code."""
    regions = _regions_of(country_code)
    valid = np.zeros(len(numbers), dtype=bool)
    if len(regions) == 1:
        valid[:] = _type_is_known(numbers, regions[0][1])
        return valid
    # Several regions share the code: the number belongs to the first whose leading digits match, or,
    # for a region without leading digits, the first where it is a known type (region_code_for_number).
    undecided = np.ones(len(numbers), dtype=bool)
    for leading, rules in regions:
        where = np.flatnonzero(undecided)
        if not len(where):
            break
        if leading is not None:
            chosen = np.array([leading.match(number) is not None for number in numbers[where]], dtype=bool)
            picked = where[chosen]
            valid[picked] = _type_is_known(numbers[picked], rules)
        else:
            chosen = _type_is_known(numbers[where], rules)
            picked = where[chosen]
            valid[picked] = True
        undecided[picked] = False
    return valid


def _finish(country_code: int, numbers: np.ndarray, rules: Rules | None) -> Outcome:
    """The end of phonenumbers.parse (national prefix, length bounds) and then is_valid_number."""
    outcome = _empty(len(numbers))
    if rules is None or rules.prefix_is_transformed:
        outcome.fallback[:] = True
        return outcome
    long_enough = _lengths(numbers) >= MIN_NSN_DIGITS
    outcome.why[~long_enough] = TOO_SHORT_NSN
    candidates = numbers[long_enough]
    stripped = rules.strip_national_prefix(candidates)
    # The stripped number is kept only when its length is possible (or too long) for the region.
    results = rules.length_results
    keep = np.array([results[len(number)] in (IS_POSSIBLE, TOO_LONG) if len(number) < len(results)
                     else rules.length_result(len(number)) in (IS_POSSIBLE, TOO_LONG) for number in stripped],
                    dtype=bool)
    national = np.where(keep, stripped, candidates)
    in_bounds = _lengths(national) <= MAX_NSN_DIGITS
    checked = national[in_bounds]
    valid = is_valid(country_code, checked)
    prefix = f"+{country_code}"
    results = np.full(len(checked), None, dtype=object)
    results[valid] = [prefix + number for number in checked[valid]]
    # Refused by is_valid_number: is_possible_number_with_reason judges the length by the country code's
    # main region (which is not the default region when several share the code).
    judge = rules_for_country_code(country_code) or rules
    reasons = np.full(len(checked), None, dtype=object)
    reasons[~valid] = [_POSSIBILITY[judge.length_result(len(number))] for number in checked[~valid]]
    inner_e164 = np.full(len(candidates), None, dtype=object)
    inner_why = np.full(len(candidates), NSN_TOO_LONG, dtype=object)
    inner_e164[in_bounds] = results
    inner_why[in_bounds] = reasons
    outcome.e164[long_enough] = inner_e164
    outcome.why[long_enough] = inner_why
    return outcome


def _split_country_code(digits: str) -> int:
    """phonenumbers' `_extract_country_code`: the length of the leading country code, 0 when none."""
    if not digits or digits[0] == "0":
        return 0
    for size in (1, 2, 3):
        if digits[:size] in _COUNTRY_CODES and len(digits) >= size:
            return size
    return 0


def _international(digits: np.ndarray, *, after_plus: bool, default: Rules) -> Outcome:
    """Numbers after a `+` (after_plus) or after the default region's international dialling prefix."""
    outcome = _empty(len(digits))
    sizes = np.array([_split_country_code(number) if len(number) > MIN_NSN_DIGITS else -1
                      for number in digits], dtype=np.int64)
    outcome.why[sizes == -1] = TOO_SHORT_AFTER_IDD
    # No known country code: phonenumbers' INVALID_COUNTRY_CODE (after a plus, also on its retry below).
    outcome.why[sizes == 0] = NO_COUNTRY_CODE
    if after_plus:
        # A `+` then no known country code: phonenumbers strips the plus and retries the digits as
        # dialled in the default region. Only an international prefix there can make that valid.
        idd = default.metadata.international_prefix
        if idd:
            idd_pattern = re.compile(idd)
            for index in np.flatnonzero(sizes == 0):
                if idd_pattern.match(digits[index]):
                    outcome.fallback[index] = True
                    outcome.why[index] = None
    known = np.flatnonzero(sizes > 0)
    codes = np.array([int(digits[i][: sizes[i]]) for i in known], dtype=np.int64)
    for code in np.unique(codes):
        where = known[codes == code]
        size = len(str(code))
        national = np.array([number[size:] for number in digits[where]], dtype=object)
        outcome.take(where, _finish(int(code), national, rules_for_country_code(int(code))))
    return outcome

def _idd_remainders(digits: np.ndarray, pattern: str | None) -> np.ndarray:
    """phonenumbers' `_parse_prefix_as_idd`: the digits after the prefix, or None when not dialled so."""
    remainders = np.full(len(digits), None, dtype=object)
    if not pattern:
        return remainders
    match_idd = re.compile(pattern).match
    for index, number in enumerate(digits):
        match = match_idd(number)
        if match is None:
            continue
        rest = number[match.end():]
        if rest[:1] != "0":  # a country code never starts with 0: then it was not a prefix
            remainders[index] = rest
    return remainders


def _national(digits: np.ndarray, default: Rules, region_code: int) -> Outcome:
    """Numbers without `+`, read as dialled in the default region."""
    outcome = _empty(len(digits))
    remainders = _idd_remainders(digits, default.metadata.international_prefix)
    dialled_abroad = np.array([rest is not None for rest in remainders], dtype=bool)
    where = np.flatnonzero(dialled_abroad)
    if len(where):
        outcome.take(where, _international(remainders[where], after_plus=False, default=default))

    home = np.flatnonzero(~dialled_abroad)
    code_text = str(region_code)
    starts = np.array([number.startswith(code_text) for number in digits[home]], dtype=bool)
    if starts.any() and default.prefix_is_transformed:
        outcome.fallback[home[starts]] = True
        home, starts = home[~starts], starts[~starts]
    with_code = np.zeros(len(home), dtype=bool)
    if starts.any():
        candidates = digits[home[starts]]
        rest = default.strip_national_prefix(
            np.array([number[len(code_text):] for number in candidates], dtype=object))
        general = default.general
        # phonenumbers keeps the default country code stripped when the number was not viable with
        # it and is without it, or when it was too long with it.
        take = np.array([(not general(number) and general(stripped))
                         or default.length_result(len(number)) == TOO_LONG
                         for number, stripped in zip(candidates, rest, strict=True)], dtype=bool)
        with_code[np.flatnonzero(starts)[take]] = True
        if take.any():
            picked = home[with_code]
            outcome.take(picked, _finish(region_code, rest[take], rules_for_country_code(region_code)))
    plain = home[~with_code]
    if len(plain):
        outcome.take(plain, _finish(region_code, digits[plain], default))
    return outcome


def evaluate(digits: np.ndarray, plus: np.ndarray, region: str) -> Outcome:
    """E.164 for each digit string, as phonenumbers would parse it (with `+` first where `plus`).

    `digits` holds ASCII digit strings taken from inputs that had no other characters than digits,
    spaces, `-`, `.`, parentheses and one leading `+`: the shapes for which phonenumbers' result depends
    on nothing but the digits and the plus sign.
    """
    outcome = _empty(len(digits))
    default = rules_for_region(region)
    if default is None:
        outcome.fallback[:] = True
        return outcome
    for wanted, reader in ((True, "plus"), (False, "national")):
        where = np.flatnonzero(plus == wanted)
        if not len(where):
            continue
        if reader == "plus":
            part = _international(digits[where], after_plus=True, default=default)
        else:
            part = _national(digits[where], default, default.metadata.country_code)
        outcome.take(where, part)
    return outcome

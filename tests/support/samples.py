"""Messy contact data, made on demand (seeded) for tests, benchmarks and demos: nothing is stored.

`messy_phone` writes numbers the way people's spreadsheets hold them: mostly Ugandan, some from
neighbouring and other countries, in every common format, with a share of broken ones.
`adversarial_phone` is harsher: any country, random lengths, stray characters; it exists to compare the
fast path with phonenumbers where they are most likely to differ.
"""

from __future__ import annotations

import csv
import random
from functools import cache
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberType

# Where recipients of a Ugandan campaign live, by weight.
COUNTRY_WEIGHTS = {"UG": 80, "KE": 5, "TZ": 3, "RW": 2, "GB": 3, "US": 2, "IN": 2, "NG": 2, "ZA": 1}
FIRST_NAMES = ["Amina", "Brian", "Grace", "Joseph", "Sarah", "Moses", "Esther", "Isaac", "Ruth", "Peter",
               "Agnes", "Daniel", "Joan", "Ivan", "Patience", "Samuel", "Mercy", "Ronald", "Doreen", "Allan"]
LAST_NAMES = ["Nakato", "Okello", "Namubiru", "Mugisha", "Atim", "Ssempala", "Achieng", "Kato", "Nansubuga",
              "Tumusiime", "Auma", "Wasswa", "Babirye", "Opio", "Nalwoga", "Byaruhanga"]
_SEPARATORS = [" ", "-", ".", ""]


@cache
def _templates(region: str) -> tuple[str, ...]:
    """National significant numbers phonenumbers ships as examples (mobile first)."""
    found = []
    for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            found.append(phonenumbers.national_significant_number(example))
    return tuple(found) or ("123456789",)


def _national_number(rng: random.Random, region: str) -> str:
    template = _templates(region)[0 if rng.random() < 0.85 else rng.randrange(len(_templates(region)))]
    keep = max(2, len(template) - 7)
    return template[:keep] + "".join(rng.choice("0123456789") for _ in range(len(template) - keep))


def _group(rng: random.Random, digits: str) -> str:
    separator = rng.choice(_SEPARATORS)
    if not separator:
        return digits
    cut = rng.randint(2, 4)
    return digits[:cut] + separator + digits[cut:cut + 3] + separator + digits[cut + 3:]


def messy_phone(rng: random.Random) -> str:
    """One number as a contact list might hold it (about one in seven is unusable)."""
    region = rng.choices(list(COUNTRY_WEIGHTS), weights=list(COUNTRY_WEIGHTS.values()))[0]
    code = str(phonenumbers.country_code_for_region(region))
    national = _national_number(rng, region)
    roll = rng.random()
    if roll < 0.03:
        national = national[:-rng.randint(1, 3)]  # too short
    elif roll < 0.05:
        national += str(rng.randrange(10))  # too long
    elif roll < 0.06:
        return rng.choice(["", "n/a", "none", "-", "unknown", "0", "TBA"])
    elif roll < 0.07:
        national = national[:2] + "O" + national[3:]  # letter O for zero
    home = region == "UG"
    shape = rng.random()
    if shape < 0.25:
        return "+" + code + _group(rng, national)
    if shape < 0.35:
        return "+" + code + " " + _group(rng, national)
    if shape < 0.45:
        return "00" + code + _group(rng, national)
    if shape < 0.55:
        return code + national
    if shape < 0.60:
        return code + national + ".0"  # a spreadsheet's float
    if shape < 0.62:
        digits = code + national
        return f"{digits[0]}.{digits[1:]}E+{len(digits) - 1}"
    if not home:
        return "+" + code + " " + national
    if shape < 0.85:
        return "0" + _group(rng, national)
    if shape < 0.93:
        return f"(0{national[:3]}) {national[3:6]}-{national[6:]}"
    return national


def adversarial_phone(rng: random.Random) -> str:
    """A number-like string built to probe the corners of phone parsing."""
    roll = rng.random()
    if roll < 0.45:
        return messy_phone(rng)
    if roll < 0.75:
        # Any country code, then random digits of a random length, in a random format.
        code = str(rng.choice(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)))
        region = phonenumbers.region_code_for_country_code(int(code))
        if region in phonenumbers.SUPPORTED_REGIONS and rng.random() < 0.6:
            national = _national_number(rng, region)
        else:
            national = "".join(rng.choice("0123456789") for _ in range(rng.randint(2, 16)))
        prefix = rng.choice(["+", "+", "00", "", "0", "000", "011", "+0", "(+", "+("])
        return prefix + code + rng.choice(["", " ", "-", ") "]) + _group(rng, national)
    if roll < 0.93:
        # Random digits with the punctuation phone numbers carry.
        alphabet = "0123456789" * 4 + " -.()+"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 22)))
    # Stray characters: letters, extensions, other digit systems, separators phonenumbers knows.
    alphabet = "0123456789" * 3 + " -.()+x#,;/ABCOext\u00a0\u0661\u0662\uff11\uff12\uff10*~"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))


def contact_rows(count: int, *, seed: int = 7, duplicate_share: float = 0.02):
    """(phone, name, appointment) rows; a share of them repeat an earlier phone in another format."""
    rng = random.Random(seed)
    earlier: list[str] = []
    for index in range(count):
        if earlier and rng.random() < duplicate_share:
            phone = rng.choice(earlier)
        else:
            phone = messy_phone(rng)
            if len(earlier) < 10_000:
                earlier.append(phone)
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        yield phone, name, f"2026-12-{1 + index % 28:02d}"


def write_contacts_csv(path: Path, count: int, *, seed: int = 7, delimiter: str = ",",
                       encoding: str = "utf-8") -> Path:
    """A contact CSV (Phone, Name, Appointment) of `count` generated rows."""
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(["Phone", "Name", "Appointment"])
        writer.writerows(contact_rows(count, seed=seed))
    return path

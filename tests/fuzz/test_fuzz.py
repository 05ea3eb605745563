"""Property-based fuzzing of every reader that meets outside input (a short run in the suite).

For each target of fuzz_targets.py: mutations of valid seeds (byte flips, insertions of tokens that
matter to the format, deletions, truncation, splices) and raw random bytes. The property: the reader
returns or raises FFUError with a one-line message; nothing else escapes. The examples are
derandomized, so a failure replays; FFUFORGE_FUZZ_EXAMPLES raises the count (the long runs use
atheris, see README.md here).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_targets

EXAMPLES = int(os.environ.get("FFUFORGE_FUZZ_EXAMPLES", "50"))
TOKENS = [
    b"<",
    b">",
    b"/>",
    b"</",
    b"&",
    b"&amp;",
    b"&#0;",
    b'"',
    b"'",
    b"=",
    b"$(",
    b")",
    b"%",
    b"\\",
    b"..\\",
    b"../",
    b"\x00",
    b"\xff\xfe",
    b"\r\n",
    b"[",
    b"]",
    b";",
    b",",
    b"0x",
    b"-1",
    b"4294967296",
    b"99999999999999999999",
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"<![CDATA[",
    b"xmlns=",
    b"NT$ARCH$",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x80",
    b"MSCF",
    b"regf",
    b"hbin",
    b"nk",
    b"vk",
    b"lf",
    b"SignedImage ",
]

_op = st.tuples(
    st.sampled_from(["flip", "insert", "token", "delete", "truncate", "splice", "dup"]),
    st.floats(0, 1),
    st.floats(0, 1),
    st.integers(0, 255),
    st.sampled_from(TOKENS),
)


def _mutate(seed: bytes, ops) -> bytes:
    data = bytearray(seed)
    for kind, a, b, byte, token in ops:
        n = len(data)
        i = int(a * n) if n else 0
        j = min(n, i + 1 + int(b * 64))
        if kind == "flip" and n:
            data[min(i, n - 1)] ^= 1 << (byte % 8)
        elif kind == "insert":
            data[i:i] = bytes([byte]) * (1 + int(b * 8))
        elif kind == "token":
            data[i:i] = token
        elif kind == "delete":
            del data[i:j]
        elif kind == "truncate":
            del data[i:]
        elif kind == "splice" and n:
            k = int(b * n)
            data[i:i] = data[k : k + 1 + byte]
        elif kind == "dup":
            data[j:j] = data[i:j]
    return bytes(data)


def _inputs(name: str):
    seeds = fuzz_targets.seeds(name)
    mutated = st.builds(_mutate, st.sampled_from(seeds), st.lists(_op, min_size=1, max_size=6))
    raw = st.binary(max_size=512)
    return st.one_of(mutated, mutated, mutated, raw)


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_reader_only_raises_ffuerror(name):
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_inputs(name))
    def run(data: bytes) -> None:
        fuzz_targets.run(name, data)

    run()


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_seeds_are_accepted(name):
    """The seeds are valid inputs: the mutations start from something every reader takes."""
    for seed in fuzz_targets.seeds(name):
        fuzz_targets.TARGETS[name](seed)


REGRESSIONS = sorted(p for p in (fuzz_targets.ROOT / "tests/fuzz/regressions").glob("*/*") if p.is_file())


@pytest.mark.parametrize("case", REGRESSIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression(case):
    """Every input a fuzzer found crashing ffuforge (regressions/<target>/<name>), replayed."""
    fuzz_targets.run(case.parent.name, case.read_bytes())

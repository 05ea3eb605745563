"""Coverage-guided fuzzing (atheris / libFuzzer) of one target of fuzz_targets.py.

Each `atheris_<target>.py` beside this file calls main("<target>"):

    python tests/fuzz/atheris_cab.py -runs=200000             # a number of inputs
    python tests/fuzz/atheris_cab.py -max_total_time=180      # or a time budget
    python tests/fuzz/atheris_cab.py corpus/cab -max_total_time=600   # keep and grow a corpus

Without a corpus directory, one is made in a temp dir from the target's seeds. libFuzzer flags pass
through; defaults here: -timeout=20 -rss_limit_mb=2048 -max_len=4194304. A crash is written as
crash-<sha1> in the current directory: replay it with `python tests/fuzz/atheris_<target>.py crash-…`
and turn it into a regression test (tests/fuzz/regressions/ + test_fuzz.py).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[2] / "site_scons"))


def main(name: str) -> None:
    import atheris

    with atheris.instrument_imports(include=["ffuforge"]):
        import fuzz_targets

    def one_input(data: bytes) -> None:
        fuzz_targets.run(name, data)

    argv = list(sys.argv)
    flags = [a for a in argv[1:] if a.startswith("-")]
    paths = [a for a in argv[1:] if not a.startswith("-")]
    for flag, value in (
        ("-timeout", "20"),
        ("-rss_limit_mb", "2048"),
        ("-max_len", str(fuzz_targets.MAX_LEN)),
    ):
        if not any(f.startswith(flag + "=") for f in flags):
            argv.append(f"{flag}={value}")
    if not paths:
        corpus = fuzz_targets.write_corpus(name, tempfile.mkdtemp(prefix=f"ffuforge-corpus-{name}-"))
        argv.append(str(corpus))
    atheris.Setup(argv, one_input)
    atheris.Fuzz()

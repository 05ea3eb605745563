"""atheris entry point for fuzz target 'bcd': python tests/fuzz/atheris_bcd.py -runs=N (see atheris_main.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from atheris_main import main  # noqa: E402

if __name__ == "__main__":
    main("bcd")

"""ffuforge benchmarks: `python -m bench --help`."""

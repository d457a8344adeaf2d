"""The harness the tests and the benchmarks share: a JACK dummy server, the daemon as a process,
OSC and MIDI senders, JACK captures, the sine test models, fuzz inputs, docs/osc.md read as data.

It lives in bench/ because benchmarks run as files (`.venv/bin/python bench/X.py` puts bench/ on
the import path); pytest finds it through `pythonpath` in pyproject.toml. Neither side edits
sys.path.
"""

"""The book's benchmarks (``make bench``); see ``benchmarks/run.py`` for what they measure and how to run them."""

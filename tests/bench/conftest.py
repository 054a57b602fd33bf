"""The benchmark modules are a program, not tests: keep pytest out of them."""

collect_ignore_glob = ["*.py"]

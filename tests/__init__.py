"""tuspipe's test suite (a package, so tests can share helpers and `python -m tests.demo` runs)."""

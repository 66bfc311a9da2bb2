"""sample/ is a user's test suite that test_plugin.py runs in a subprocess; it is not
part of this test run."""

collect_ignore = ["sample"]

"""Shared by the whole suite: pytest puts this directory on sys.path, so helpers here
(`testpki`) are importable from every test directory."""

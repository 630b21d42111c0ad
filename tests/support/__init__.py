"""Helpers the tests share: the real CLI, hand-built and real studies, servers, a browser."""

"""Reusable helpers for integration tests: cached tool binaries, network namespaces, a loopback registry,
a containerd daemon. Every process a helper starts is stopped by PID by the fixture that started it."""

"""Benchmarks: measured, reported, never asserted."""

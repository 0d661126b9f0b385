"""Helpers for the demo, the tests and the benchmarks: a private Mosquitto, participants
run as `clocksync` processes, and a passive observer that judges accuracy from the truth
signal."""

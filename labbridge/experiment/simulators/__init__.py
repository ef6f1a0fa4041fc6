"""Simulated instruments, served by the experiment process for modules with `simulate: true`."""

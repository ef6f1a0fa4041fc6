"""Commands that run neither process: environment set-up and the demo launcher (standard library only)."""

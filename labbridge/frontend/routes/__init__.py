"""The frontend's HTTP routes, as module-level handlers on APIRouters (one file per group of URLs)."""

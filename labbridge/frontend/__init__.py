"""The web process (main.py): FastAPI routes that forward to the experiment process over ZeroMQ.

It owns no instrument and imports no module code.  `app.py` wires the pieces;
`routes/` holds the HTTP handlers, one file per group of URLs.
"""

"""How modules talk to their instruments: an HTTP API in some dialect, or SCPI over VISA.

    http_dialect.py   HttpDialect (how an instrument's HTTP API spells reads, writes
                      and errors) and HttpDriver, which speaks it over instrument_client.py
    visa.py           VisaSession: one PyVISA resource, its errors mapped to the bridge's
"""

"""The experiment process (start_experiment.py): it owns the instruments.

`process.py` starts it, `server.py` answers the frontend over ZeroMQ,
`experiment.py` dispatches each request to its module, `base_module.py` is what
every module is (`scpi_module.py` one that speaks SCPI), `worker.py` runs a
module's blocking driver calls on its own thread, `instrument_client.py` is the
HTTP hop to an instrument, `drivers/` how modules speak to instruments (HTTP
dialects, VISA), and `simulators/` imitate instruments so the demo and tests
need no hardware.
"""

"""The experiment process (start_experiment.py): it owns the instruments.

`process.py` starts it, `server.py` answers the frontend over ZeroMQ,
`experiment.py` dispatches each request to its module, `base_module.py` is what
every module is, `instrument_client.py` the HTTP hop to an instrument, and
`simulators/` imitate instruments so the demo and tests need no hardware.
"""

"""ActionQuota: how many invocations may be unfinished at once, per module and per client (429 past it).

Each invocation, even one that returns at once, waits for its module's turns
(turns.py) and is remembered; about 100 `POST /module_a/stop` sent together
once filled the module's queue so that a plain read answered 504 for minutes.
So the experiment process admits a new invocation only while its module has
fewer than `actions.max_per_module` pending or running, and its client fewer
than `actions.max_per_client`; past either it answers 429 too_many_actions
with Retry-After.  A client is the token's identity when tokens are on, else
the TCP connection the frontend saw (address and port: every notebook on the
lab PC is 127.0.0.1), else the address.  A cancel (DELETE) is never counted
or refused, and reads do not count: they wait in the module's queue apart
from actions' turns (turns.py).
"""

from __future__ import annotations

from labbridge.core.config import ActionSettings
from labbridge.core.errors import TooManyActions
from labbridge.core.protocol import Request


def client_of(request: Request) -> str:
    """Who an invocation is counted against: the token's identity, else the connection, else the address."""
    if request.identity is not None:
        return f"identity {request.identity}"
    if request.connection is not None:
        return f"connection {request.connection}"
    return f"client {request.client or 'unknown'}"


class ActionQuota:
    """The unfinished invocations of each module and client, and the bounds on them."""

    def __init__(self, settings: ActionSettings = ActionSettings()) -> None:
        self.per_module = settings.max_per_module
        self.per_client = settings.max_per_client
        self._held: dict[str, tuple[str, str]] = {}  # invocation id -> (module, client)

    def check(self, module: str, client: str) -> None:
        """Raise TooManyActions if one more invocation of `module` by `client` would pass a bound."""
        of_module = sum(1 for held_module, _ in self._held.values() if held_module == module)
        if of_module >= self.per_module:
            raise TooManyActions(f"module {module} has {of_module} actions pending or running, the most it takes at "
                                 f"once (actions.max_per_module); try again when one has ended")
        of_client = sum(1 for _, held_client in self._held.values() if held_client == client)
        if of_client >= self.per_client:
            raise TooManyActions(f"{client} has {of_client} actions pending or running, the most one client may "
                                 f"have at once (actions.max_per_client); wait for one to end or cancel one")

    def hold(self, invocation: str, module: str, client: str) -> None:
        """Count an admitted invocation until `release`."""
        self._held[invocation] = (module, client)

    def release(self, invocation: str) -> None:
        """Stop counting an invocation (it ended, or never started); harmless if it was not counted."""
        self._held.pop(invocation, None)

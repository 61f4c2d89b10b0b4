"""daphne's command line (`python -m config.daphne_server …`, started by `manage.py run`), with one
change: a websocket that breaks a limit or the protocol is closed with a close frame carrying the
code and a reason (1009 "message too big", 1002, 1007), as RFC 6455 (7.1.7) asks, rather than by
dropping the TCP connection with no code at all (autobahn's default, `failByDrop`)."""

from __future__ import annotations

from daphne.cli import CommandLineInterface
from daphne.server import Server


class ClosingServer(Server):
    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory) -> None:
        # daphne makes its websocket factory in run() and sets the size limits on it right after.
        factory.setProtocolOptions(failByDrop=False)
        self._ws_factory = factory


class ClosingCommandLineInterface(CommandLineInterface):
    server_class = ClosingServer


if __name__ == "__main__":
    ClosingCommandLineInterface.entrypoint()

"""daphne's command line (`python -m config.daphne_server …`, started by `manage.py run`), with two
changes:

- the connection's edge of config/http/edge.py: request bodies refused by their declared size before they
  are read, header, body and keep-alive timeouts, a cap on connections per client;
- a websocket that breaks a limit or the protocol is closed with a close frame carrying the code and
  a reason (1009 "message too big", 1002, 1007), as RFC 6455 (7.1.7) asks, rather than by dropping
  the TCP connection with no code at all (autobahn's default, `failByDrop`).

Each process also raises its soft limit of open files to the hard limit when it starts: every
connection is a file descriptor, and the soft limit is often 1024.
"""

from __future__ import annotations

import resource

from daphne.cli import CommandLineInterface
from daphne.server import Server


class ConduitServer(Server):
    # daphne makes its two factories in run(), then sets the websocket size limits on one and listens
    # with the other: both are replaced or adjusted here as they are set.
    @property
    def http_factory(self):
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory) -> None:
        from config.http.edge import EdgeLimits, edge_factory  # needs Django set up: the application is loaded by now

        self._http_factory = edge_factory(self, EdgeLimits.from_settings())  # in place of daphne's plain one

    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory) -> None:
        factory.setProtocolOptions(failByDrop=False)
        self._ws_factory = factory


class ConduitCommandLineInterface(CommandLineInterface):
    server_class = ConduitServer


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # an unlimited hard limit (macOS) can't be a soft one
            pass


if __name__ == "__main__":
    raise_open_files_limit()
    ConduitCommandLineInterface.entrypoint()

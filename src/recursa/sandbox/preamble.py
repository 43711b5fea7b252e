"""Runs first in the sandboxed interpreter, then runs `program.py` as `__main__`
(after an optional prelude file whose names the program sees).

A standalone script (copied into the run's working directory; it must not import recursa).
It closes the network from inside the interpreter, the second layer under the network
namespace: an audit hook, which Python code cannot remove, refuses every socket operation
except creating AF_UNIX sockets (so `socket.socketpair`, which asyncio needs, still works),
and `socket.socket` is replaced by a class that accepts AF_UNIX only, and
`socket.create_connection` and friends by stubs that fail.
Code that reaches the C library directly (ctypes) is not stopped by this layer.
"""

import sys


def _refuse_network(event: str, args: tuple[object, ...]) -> None:
    if not event.startswith("socket."):
        return
    if event == "socket.__new__" and len(args) > 1 and args[1] == 1:  # AF_UNIX
        return
    raise PermissionError(f"network access is disabled in the sandbox ({event})")


sys.addaudithook(_refuse_network)


def _install_socket_stubs() -> None:
    import socket

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError("network access is disabled in the sandbox")

    class LocalOnlySocket(socket.socket):
        def __init__(
            self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
        ) -> None:
            if family != socket.AF_UNIX:
                refused()
            super().__init__(family, type, proto, fileno)

    for name in ("create_connection", "create_server", "getaddrinfo", "gethostbyname"):
        setattr(socket, name, refused)
    socket.socket = LocalOnlySocket  # type: ignore[misc]


def _main() -> None:
    import runpy

    program = sys.argv[1]
    names: dict[str, object] = {}
    if len(sys.argv) > 2:
        # A prelude (e.g. the imports a judge provides) runs first; its names are visible
        # to the program without shifting the program's line numbers.
        with open(sys.argv[2], encoding="utf-8") as f:
            exec(compile(f.read(), sys.argv[2], "exec"), names)
        names.pop("__builtins__", None)
    sys.argv = [program]
    runpy.run_path(program, init_globals=names, run_name="__main__")


_install_socket_stubs()
del _install_socket_stubs
_main()

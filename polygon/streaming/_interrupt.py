"""Ctrl-C for scripts whose process a :class:`StreamClient` keeps alive.

After ``start_stream_thread()`` the stream keeps the interpreter alive until
``close_stream()``, as the older library's did: a script in the callback style
lets its main function return and the data keeps flowing. Ctrl-C must then end
it cleanly. Python runs signal handlers on the main thread, also while the
interpreter waits for the stream's threads at exit, so a SIGINT handler is
installed on the first ``start_stream_thread()`` made on the main thread, but
only when SIGINT still has Python's default handler (an application's own
handler is never replaced):

- while the script's main code still runs, Ctrl-C closes every running stream
  (``on_close`` is called) and then raises :class:`KeyboardInterrupt` in the
  script as usual;
- once the main code has returned and only streams keep the process alive,
  Ctrl-C closes them and the process ends normally: one warning line (on the
  ``polygon.streaming.streaming`` logger, which Python prints to standard error
  when logging is not configured), no traceback.
"""

from __future__ import annotations

import logging
import signal
import threading
import weakref
from types import FrameType
from typing import Protocol

logger = logging.getLogger("polygon.streaming.streaming")


class Closable(Protocol):
    def close_stream(self) -> None: ...


_running: weakref.WeakSet[Closable] = weakref.WeakSet()
_lock = threading.Lock()
_installed = False


def keep_alive(client: Closable) -> None:
    """Register a started stream for Ctrl-C (installing the handler if it may be)."""
    global _installed
    with _lock:
        _running.add(client)
        if _installed or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return  # the application chose its own: leave it alone
        signal.signal(signal.SIGINT, _on_interrupt)
        _installed = True


def forget(client: Closable) -> None:
    """A stream was closed: Ctrl-C no longer concerns it."""
    with _lock:
        _running.discard(client)


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    with _lock:
        clients = list(_running)
    if not clients:
        # No stream of ours keeps the process: Python's own behaviour.
        signal.default_int_handler(signum, frame)
        return
    main_code_running = threading.main_thread().is_alive() and not _at_exit(frame)
    if not main_code_running:
        # The main code is over, so it holds none of the clients' locks; and from
        # Python 3.12 no thread may start while the interpreter waits at exit.
        logger.warning("interrupted (Ctrl-C): closing %d stream(s)", len(clients))
        _close_all(clients)
        return
    # Closed on a thread of their own: this handler may have interrupted the
    # main thread while it held one of the client's locks.
    closer = threading.Thread(target=_close_all, args=(clients,), name="polygon-stream-interrupt")
    closer.start()
    signal.default_int_handler(signum, frame)


def _at_exit(frame: FrameType | None) -> bool:
    """True when the main thread is in the interpreter's wait for other threads.

    Python 3.12 still reports the main thread alive while it waits there, so
    the frame the signal interrupted is the sure sign.
    """
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_shutdown" and code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def _close_all(clients: list[Closable]) -> None:
    for client in clients:
        try:
            client.close_stream()
        except Exception:
            logger.exception("closing a stream after Ctrl-C failed")

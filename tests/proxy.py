"""Loopback TCP helpers for failure tests: a controllable proxy, a black hole
and a port with nothing listening.

Everything here runs in real OS threads on plain blocking (unpatched)
sockets, taken from ``eventlet.patcher.original``.  So the helpers work the
same whether or not the test process is monkey-patched, and a test's green
threads can block inside a database driver without stopping the proxy that
the driver is talking through.

Typical use::

    with Proxy("127.0.0.1", 5432) as proxy:     # started on a free port
        conn = psycopg2.connect(host="127.0.0.1", port=proxy.port, ...)
        proxy.cut()          # the server "restarts": open connections drop
        proxy.blackhole()    # the network hangs: nothing goes through
        proxy.refuse()       # the server is down: connects are refused
        proxy.pass_traffic() # back to normal

Mode changes are synchronous: when the method returns, the proxy thread has
applied them (connections are closed, the listener is closed or open).
"""

from __future__ import annotations

import collections
import struct

import eventlet.patcher

_threading = eventlet.patcher.original("threading")
_socket = eventlet.patcher.original("socket")
_select = eventlet.patcher.original("select")
_time = eventlet.patcher.original("time")

__all__ = ["Blackhole", "Proxy", "closed_port"]

LOOPBACK = "127.0.0.1"

#: Bytes buffered per direction before the proxy stops reading from a side.
_BUFFER_LIMIT = 256 * 1024
#: Seconds the proxy waits for the target to accept a forwarded connection.
_UPSTREAM_CONNECT_TIMEOUT = 2.0
#: Seconds a caller waits for the proxy thread to apply a command.
_COMMAND_TIMEOUT = 10.0

_POLLIN = _select.POLLIN
_POLLOUT = _select.POLLOUT
_POLLERRS = _select.POLLERR | _select.POLLHUP | _select.POLLNVAL
_POLLRDHUP = getattr(_select, "POLLRDHUP", 0x2000)

PASS = "pass"
BLACKHOLE = "blackhole"


def closed_port(host: str = LOOPBACK) -> int:
    """Return a port on *host* with nothing listening (connects are refused).

    The port is taken from the kernel and released at once, so another
    process could in theory grab it; on a test machine that is negligible.
    """
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


class _Pair:
    """One accepted client connection and, once forwarded, its upstream."""

    __slots__ = ("client", "upstream", "to_upstream", "to_client")

    def __init__(self, client):
        self.client = client
        self.upstream = None
        self.to_upstream = bytearray()
        self.to_client = bytearray()

    def sockets(self):
        return [s for s in (self.client, self.upstream) if s is not None]


def _close(sock, reset=False):
    if sock is None:
        return
    try:
        if reset:
            # SO_LINGER with a zero timeout makes close() send an RST.
            sock.setsockopt(
                _socket.SOL_SOCKET, _socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        else:
            sock.shutdown(_socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of *target_host*:*target_port*.

    Modes (each method switches and returns once applied):

    - :meth:`pass_traffic`: accept and forward (the default; also reopens a
      listener closed by :meth:`refuse`, and resumes held connections);
    - :meth:`cut`: close every current connection now; new connections are
      still accepted and handled by the current mode;
    - :meth:`blackhole`: accept but never forward nor answer; existing
      connections stop being forwarded (their data waits, as on a hung
      network, and flows again after :meth:`pass_traffic`);
    - :meth:`refuse`: close the listener, so connects are refused; existing
      connections are left as they are (:meth:`down` also cuts them);
    - :meth:`stop`: close everything and end the thread.

    *target_host* may be None for a proxy that only ever black-holes (see
    :class:`Blackhole`).
    """

    def __init__(self, target_host, target_port=None, *, host=LOOPBACK, port=0):
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._requested_port = port
        self.port = None
        self._mode = PASS
        self._listening = True
        self._listener = None
        self._pairs = []
        self._accepted = 0
        self._commands = collections.deque()
        self._wake_r = self._wake_w = None
        self._thread = None
        self._running = False
        self._stopped = False

    # -- public API -----------------------------------------------------------

    def start(self):
        """Start listening and forwarding; return the listening port."""
        if self._thread is not None:
            return self.port
        if self._stopped:
            raise RuntimeError("a stopped proxy cannot be restarted")
        self._wake_r, self._wake_w = _socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        if self._listening:
            self._open_listener()
        else:
            self.port = self._requested_port or closed_port(self.host)
        self._running = True
        self._thread = _threading.Thread(
            target=self._run, name="test-proxy-%s" % self.port, daemon=True
        )
        self._thread.start()
        return self.port

    @property
    def address(self):
        """``(host, port)`` where clients connect."""
        return (self.host, self.port)

    @property
    def mode(self):
        """``"pass"``, ``"blackhole"`` or ``"refuse"``."""
        if not self._listening:
            return "refuse"
        return self._mode

    @property
    def connection_count(self):
        """Client connections currently open through the proxy."""
        return len(self._pairs)

    @property
    def accepted_count(self):
        """Client connections accepted since the proxy started."""
        return self._accepted

    def pass_traffic(self):
        """Accept and forward; resume anything held by :meth:`blackhole`."""
        self._command("pass")

    def cut(self, reset=False):
        """Close every current connection (with an RST if *reset*)."""
        self._command("cut", reset)

    def blackhole(self):
        """Accept connections but never forward or answer anything."""
        self._command("blackhole")

    def refuse(self):
        """Close the listener: connects are refused until :meth:`pass_traffic`."""
        self._command("refuse")

    def down(self, reset=False):
        """The server is gone: refuse new connections and cut existing ones."""
        self._command("refuse")
        self._command("cut", reset)

    def stop(self):
        """Close the listener and every connection; end the proxy thread."""
        if self._stopped:
            return
        if self._thread is not None and self._thread.is_alive():
            self._command("stop")
            self._thread.join(_COMMAND_TIMEOUT)
        self._stopped = True
        self._running = False
        for sock in (self._wake_r, self._wake_w):
            _close(sock)

    close = stop

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def __repr__(self):
        return "<%s %s:%s -> %s:%s mode=%s connections=%d>" % (
            type(self).__name__,
            self.host,
            self.port,
            self.target_host,
            self.target_port,
            self.mode,
            self.connection_count,
        )

    # -- commands -------------------------------------------------------------

    def _command(self, name, *args):
        if self._stopped:
            if name == "stop":
                return
            raise RuntimeError("proxy is stopped")
        if self._thread is None:
            # Not started yet: no sockets to touch, just record the mode.
            self._apply(name, args)
            return
        done = _threading.Event()
        box = []
        self._commands.append((name, args, done, box))
        self._wake()
        if not done.wait(_COMMAND_TIMEOUT):
            raise RuntimeError("proxy thread did not apply %r in time" % name)
        if box:
            raise box[0]

    def _apply(self, name, args):
        if name == "pass":
            self._mode = PASS
            self._listening = True
            if self._thread is not None and self._listener is None:
                self._open_listener()
        elif name == "blackhole":
            self._mode = BLACKHOLE
            self._listening = True
            if self._thread is not None and self._listener is None:
                self._open_listener()
        elif name == "refuse":
            self._listening = False
            _close(self._listener)
            self._listener = None
        elif name == "cut":
            (reset,) = args or (False,)
            pairs, self._pairs = self._pairs, []
            for pair in pairs:
                self._close_pair(pair, reset)
        elif name == "stop":
            self._running = False
        else:  # pragma: no cover - programming error
            raise ValueError("unknown proxy command %r" % name)

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _open_listener(self):
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port or self._requested_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._listener = sock
        self.port = sock.getsockname()[1]

    # -- the proxy thread -----------------------------------------------------

    def _run(self):
        try:
            while self._running:
                self._run_commands()
                if not self._running:
                    break
                if self._mode == PASS:
                    self._connect_upstreams()
                self._poll_once()
        finally:
            _close(self._listener)
            self._listener = None
            pairs, self._pairs = self._pairs, []
            for pair in pairs:
                self._close_pair(pair)
            # Release anyone still waiting for a command.
            while self._commands:
                _name, _args, done, _box = self._commands.popleft()
                done.set()

    def _run_commands(self):
        while self._commands:
            name, args, done, box = self._commands.popleft()
            try:
                self._apply(name, args)
            except Exception as exc:  # handed back to the caller
                box.append(exc)
            finally:
                done.set()

    def _connect_upstreams(self):
        for pair in list(self._pairs):
            if pair.upstream is not None:
                continue
            try:
                upstream = _socket.create_connection(
                    (self.target_host, self.target_port),
                    timeout=_UPSTREAM_CONNECT_TIMEOUT,
                )
            except (OSError, TypeError):
                # Target down or no target at all: the client sees a close.
                self._drop(pair)
                continue
            upstream.setblocking(False)
            upstream.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            pair.upstream = upstream

    def _poll_once(self):
        poller = _select.poll()
        owners = {}
        poller.register(self._wake_r, _POLLIN)
        if self._listener is not None:
            poller.register(self._listener, _POLLIN)
        forwarding = self._mode == PASS
        for pair in self._pairs:
            for sock, inbox, outbox in (
                (pair.client, pair.to_upstream, pair.to_client),
                (pair.upstream, pair.to_client, pair.to_upstream),
            ):
                if sock is None:
                    continue
                if forwarding and pair.upstream is not None:
                    events = 0
                    if len(inbox) < _BUFFER_LIMIT:
                        events |= _POLLIN
                    if outbox:
                        events |= _POLLOUT
                else:
                    # Held: notice only a peer that goes away, so pending
                    # data does not make the poll spin.
                    events = _POLLRDHUP
                poller.register(sock, events)
                owners[sock.fileno()] = (pair, sock)
        for fd, event in poller.poll(500):
            if fd == self._wake_r.fileno():
                self._drain_wake()
            elif self._listener is not None and fd == self._listener.fileno():
                self._accept()
            elif fd in owners:
                pair, sock = owners[fd]
                if pair in self._pairs:
                    self._service(pair, sock, event, forwarding)

    def _drain_wake(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _accept(self):
        while True:
            try:
                client, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            client.setblocking(False)
            try:
                client.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self._accepted += 1
            self._pairs.append(_Pair(client))

    def _service(self, pair, sock, event, forwarding):
        if not forwarding or pair.upstream is None:
            if event & (_POLLRDHUP | _POLLERRS):
                self._drop(pair)
            return
        if sock is pair.client:
            inbox, outbox, peer = pair.to_upstream, pair.to_client, pair.upstream
        else:
            inbox, outbox, peer = pair.to_client, pair.to_upstream, pair.client
        if event & _POLLOUT and outbox:
            try:
                sent = sock.send(outbox)
                del outbox[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(pair)
                return
        if event & (_POLLIN | _POLLERRS):
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                # One side closed: hand over what it sent, then close both.
                self._flush(peer, inbox)
                self._drop(pair)
                return
            inbox += data

    @staticmethod
    def _flush(sock, buf):
        if not buf or sock is None:
            return
        try:
            sock.setblocking(True)
            sock.settimeout(0.5)
            sock.sendall(buf)
        except OSError:
            pass
        buf.clear()

    def _drop(self, pair):
        try:
            self._pairs.remove(pair)
        except ValueError:
            pass
        self._close_pair(pair)

    @staticmethod
    def _close_pair(pair, reset=False):
        for sock in pair.sockets():
            _close(sock, reset)
        pair.client = pair.upstream = None


class Blackhole(Proxy):
    """A TCP listener on 127.0.0.1 that accepts and never answers.

    Use it as the address of a "database" that hangs: the TCP connect
    succeeds, the driver's handshake never gets a reply.
    """

    def __init__(self, *, host=LOOPBACK, port=0):
        super().__init__(None, None, host=host, port=port)
        self._mode = BLACKHOLE

    def pass_traffic(self):
        raise TypeError("a Blackhole has nothing to forward to")

    def __repr__(self):
        return "<Blackhole %s:%s connections=%d>" % (
            self.host,
            self.port,
            self.connection_count,
        )

"""Domain errors of the media path, mapped to replies by the signaling layer in one place."""

from __future__ import annotations


class MediaError(Exception):
    """A request the SFU refuses; ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidSdp(MediaError):
    def __init__(self, message: str) -> None:
        super().__init__("invalid-sdp", message)


class NoSupportedCodec(MediaError):
    def __init__(self, message: str) -> None:
        super().__init__("no-supported-codec", message)


class InvalidState(MediaError):
    def __init__(self, message: str) -> None:
        super().__init__("invalid-state", message)


class NotFound(MediaError):
    def __init__(self, message: str) -> None:
        super().__init__("not-found", message)


class NoFreePort(MediaError):
    """Every UDP port of the configured range is in use on a host address."""

    def __init__(self, port_min: int, port_max: int) -> None:
        super().__init__("no-free-port", f"no free UDP port in range {port_min}-{port_max}")
        self.port_min = port_min
        self.port_max = port_max


class LimitExceeded(MediaError):
    """A request over one of the operator's limits (``code`` names which)."""

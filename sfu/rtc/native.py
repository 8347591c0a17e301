"""The compiled module (``sfu._fastpath``) and pylibsrtp's libsrtp, and whether they fit.

The compiled paths call libsrtp through pylibsrtp's own copy: the addresses of its
``srtp_protect``/``srtp_unprotect`` are taken from pylibsrtp's cffi module and called
with libsrtp 2's signature.  :data:`FASTPATH` (forwarding, ``caucus_send``/``caucus_write``)
and :data:`FASTRECEIVE` (``caucus_receive``) say whether that holds on the installed
versions; when it does not, the reason is kept in :data:`PROBLEMS` and logged as a
warning at worker start (:func:`log_native_paths`), and the Python paths do the same
work, slower.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import pylibsrtp
from pylibsrtp import _binding as _srtp_binding

logger = logging.getLogger(__name__)

_compiled: Any = None
_IMPORT_PROBLEM: str | None = None
try:
    _compiled = importlib.import_module("sfu._fastpath")
except ImportError as exc:  # not compiled: the Python paths do the same, slower
    _IMPORT_PROBLEM = f"sfu._fastpath is not built ({exc})"

#: The compiled module (``sfu._fastpath``: ``.ffi`` and ``.lib``), or ``None``.
NATIVE: Any = _compiled

#: pylibsrtp's cffi ``ffi`` and the two libsrtp functions the paths call in place.
srtp_ffi: Any = _srtp_binding.ffi
srtp_protect: Any = _srtp_binding.lib.srtp_protect
srtp_unprotect: Any = _srtp_binding.lib.srtp_unprotect

#: The writer's buffer; an RTP packet leaves room for the largest SRTP trailer.
SRTP_BUFFER = 2048
MAX_RTP = SRTP_BUFFER - pylibsrtp.SRTP_MAX_TRAILER_LEN
#: The libsrtp 2 signature the compiled paths call ``srtp_protect``/``srtp_unprotect`` with.
SRTP_FUNCTION_TYPE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"


def address_of(pointer: Any) -> int:
    """The address a pylibsrtp cdata pointer holds (to hand it to the compiled path)."""
    return int(srtp_ffi.cast("uintptr_t", pointer))


def _signature(function: Any) -> str:
    return str(srtp_ffi.getctype(srtp_ffi.typeof(function)))


def _forwarding_problem() -> str | None:
    if _IMPORT_PROBLEM is not None:
        return _IMPORT_PROBLEM
    found = _signature(srtp_protect)
    if found != SRTP_FUNCTION_TYPE:
        return f"pylibsrtp's srtp_protect is {found!r}, not libsrtp 2's {SRTP_FUNCTION_TYPE!r}"
    if _compiled.lib.CAUCUS_MAX_RTP != MAX_RTP:
        return (
            f"pylibsrtp's SRTP_MAX_TRAILER_LEN leaves {MAX_RTP} bytes of RTP, the compiled "
            f"module was built for {_compiled.lib.CAUCUS_MAX_RTP}"
        )
    return None


def _receive_problem() -> str | None:
    forwarding = _forwarding_problem()
    if forwarding is not None:
        return forwarding
    found = _signature(srtp_unprotect)
    if found != SRTP_FUNCTION_TYPE:
        return f"pylibsrtp's srtp_unprotect is {found!r}, not libsrtp 2's {SRTP_FUNCTION_TYPE!r}"
    return None


#: Why a compiled path is not used, by name (``fastpath``, ``fastreceive``); empty when
#: both are.
PROBLEMS: dict[str, str] = {
    name: problem
    for name, problem in (("fastpath", _forwarding_problem()), ("fastreceive", _receive_problem()))
    if problem is not None
}
#: Whether the compiled forwarding path is in use: built (``pip install`` builds it) and
#: pylibsrtp's ``srtp_protect`` has libsrtp 2's signature.
FASTPATH = "fastpath" not in PROBLEMS
#: Whether the direct receive path reads, unprotects and counts in C (``caucus_receive``):
#: :data:`FASTPATH`, and pylibsrtp's ``srtp_unprotect`` has libsrtp 2's signature.
FASTRECEIVE = "fastreceive" not in PROBLEMS

if FASTPATH:
    #: ``srtp_protect`` as the compiled module's function pointer type.
    FAST_PROTECT: Any = _compiled.ffi.cast(
        "caucus_protect_fn", address_of(srtp_ffi.addressof(_srtp_binding.lib, "srtp_protect"))
    )
if FASTRECEIVE:
    FAST_UNPROTECT: Any = _compiled.ffi.cast(
        "caucus_protect_fn", address_of(srtp_ffi.addressof(_srtp_binding.lib, "srtp_unprotect"))
    )


def native_paths() -> dict[str, bool]:
    """Whether each compiled path is in use in this process: ``{"fastpath": ...,
    "fastreceive": ...}`` (exported in ``/metrics`` by the media host)."""
    return {"fastpath": FASTPATH, "fastreceive": FASTRECEIVE}


_logged = False


def log_native_paths() -> None:
    """Log, once per process, which compiled paths are in use (structured field
    ``native_paths``) and, as a warning, why one is not."""
    global _logged
    if _logged:
        return
    _logged = True
    paths = native_paths()
    logger.info("media paths: %s", paths, extra={"native_paths": paths})
    for name, problem in PROBLEMS.items():
        logger.warning(
            "compiled %s path not used: %s",
            name,
            problem,
            extra={"native_path": name, "reason": problem},
        )


def new_int() -> Any:
    """A C ``int *`` (compiled calls' out-parameters); ``None`` without the compiled path."""
    return _compiled.ffi.new("int *") if FASTPATH else None

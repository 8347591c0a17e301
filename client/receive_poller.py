"""The load client's receive poller: its connections' sockets read by one timer, in C,
instead of one event-loop wake-up per datagram (:class:`sfu.rtc.poller.ReceivePoller`,
which the SFU uses driven by readiness instead of a timer)."""

from sfu.rtc.poller import ReceivePoller

__all__ = ["ReceivePoller"]

"""One module per socket.io namespace (or, for ``live``, per component of one)."""

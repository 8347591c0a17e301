"""The vault: encryption at rest. Master key, blob format, writer, reader, the blob tree and
small sealed values."""

"""Payloads of ``/media``: joining a live room, publishing, the tiles a page shows,
leaving."""

from __future__ import annotations

from pydantic import Field, field_validator

from signaling.realtime.events import CasePayload, Payload

MEDIA_NAMESPACE = "/media"
MAX_SDP_CHARS = 200_000
#: Tiles one ``media.tiles`` may describe (each video the page receives once).
MAX_TILES = 64
#: The tallest tile a page may report, in device pixels (an 8K screen's height).
MAX_TILE_HEIGHT = 4320


class MediaPayload(CasePayload):
    pass


class PublishPayload(CasePayload):
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    #: The mid of the m-line carrying a shared screen, while the client shares one.
    screen_mid: str | None = Field(default=None, min_length=1, max_length=16)


class TileHeight(Payload):
    """One video on the page: the producer it shows (an id from ``media.tracks``) and the
    tile's height in device pixels, ``None`` when it is not shown."""

    producer_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")
    height: int | None = Field(ge=0, le=MAX_TILE_HEIGHT)


class TilesPayload(CasePayload):
    """Every video the page shows, and how tall (``media.tiles``)."""

    tiles: list[TileHeight] = Field(max_length=MAX_TILES)

    @field_validator("tiles")
    @classmethod
    def _once_each(cls, tiles: list[TileHeight]) -> list[TileHeight]:
        if len({tile.producer_id for tile in tiles}) != len(tiles):
            raise ValueError("each video is listed once")
        return tiles

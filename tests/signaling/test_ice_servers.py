"""TURN credentials minted per user with the TURN REST API scheme: their form, their
expiry, the settings that enable them, and the ``media.join`` reply that carries them.
(coturn accepting and refusing them: tests/signaling/test_turn_relay.py.)"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from signaling.cluster.media_host import media_settings
from signaling.realtime.ice_servers import TurnCredentials, browser_ice_servers, turn_password
from signaling.settings import Settings
from tests.support.plugin import make_settings
from tests.support.world import World, connect

SECRET = "a-turn-secret-of-some-length-0123"
TURN_URLS = ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]


def test_a_credential_is_the_expiry_and_user_signed_with_the_secret() -> None:
    now = 1_700_000_000.7
    turn = TurnCredentials(TURN_URLS, SecretStr(SECRET), 3600, clock=lambda: now)
    credential = turn.mint("u123")
    assert credential.username == "1700003600:u123"
    assert credential.expires_at == 1_700_003_600
    expected = hmac.new(SECRET.encode(), b"1700003600:u123", hashlib.sha1).digest()
    assert base64.b64decode(credential.password) == expected
    assert credential.password == turn_password(SECRET, "1700003600:u123")
    # computed apart: printf '1700003600:u123' | openssl dgst -sha1 -hmac "$SECRET" -binary
    # | base64
    assert credential.password == "GJhj2Qjxa63MRk4MOgESLEmf47A="
    assert credential.password not in repr(credential)
    assert SECRET not in repr(vars(turn))


def test_each_mint_is_fresh_and_follows_the_clock() -> None:
    now = [1_000.0]
    turn = TurnCredentials(TURN_URLS, SecretStr(SECRET), 60, clock=lambda: now[0])
    first = turn.mint("u1")
    now[0] += 30
    second = turn.mint("u1")
    assert (first.expires_at, second.expires_at) == (1060, 1090)
    assert first.password != second.password
    assert turn.mint("u2").username == "1090:u2"


@pytest.mark.parametrize("user_id", ["", "a:b", "x" * 129])
def test_user_ids_that_would_make_an_ambiguous_username_are_refused(user_id: str) -> None:
    turn = TurnCredentials(TURN_URLS, SecretStr(SECRET), 60)
    with pytest.raises(ValueError):
        turn.mint(user_id)


def test_settings_enable_turn_only_with_urls_and_a_secret(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        turn_urls=[*TURN_URLS, "turns:turn.example.org:443?transport=tcp"],
        turn_secret=SECRET,
    )
    assert settings.turn_credential_seconds == 3600
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert SECRET not in settings.model_dump_json()
    # media workers receive it (they answer media.join)
    assert json.loads(settings.worker_json())["turn_secret"] == SECRET
    assert Settings.model_validate_json(settings.worker_json()).turn_secret == settings.turn_secret
    # ...and no other secret: the payment keys never leave the node
    paying = settings.model_copy(
        update={
            "stripe_secret_key": SecretStr("sk_test_never_in_a_worker"),
            "stripe_webhook_secret": SecretStr("whsec_never_in_a_worker"),
        }
    )
    shipped = paying.worker_json()
    assert "never_in_a_worker" not in shipped and SECRET in shipped
    turn = TurnCredentials.from_settings(settings)
    assert turn is not None and turn.lifetime == 3600
    assert TurnCredentials.from_settings(Settings(data_dir=tmp_path)) is None

    for bad in (
        {"turn_urls": TURN_URLS},  # no secret
        {"turn_secret": SECRET},  # no URL
        {"turn_urls": ["turn:user:pw@host:3478"], "turn_secret": SECRET},  # credentials
        {"turn_urls": ["stun:host:3478"], "turn_secret": SECRET},
        {"turn_urls": ["turn:host:3478?transport=sctp"], "turn_secret": SECRET},
        {"turn_urls": TURN_URLS, "turn_secret": "short"},
        {"turn_urls": TURN_URLS, "turn_secret": SECRET, "turn_credential_seconds": 0},
    ):
        with pytest.raises(ValidationError):
            Settings(data_dir=tmp_path, **bad)


def test_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAUCUS_TURN_URLS", json.dumps(TURN_URLS))
    monkeypatch.setenv("CAUCUS_TURN_SECRET", SECRET)
    monkeypatch.setenv("CAUCUS_TURN_CREDENTIAL_SECONDS", "600")
    settings = Settings(data_dir=tmp_path)
    assert settings.turn_urls == TURN_URLS
    assert settings.turn_secret is not None and settings.turn_secret.get_secret_value() == SECRET
    assert settings.turn_credential_seconds == 600


def test_minted_turn_comes_first_and_static_servers_stay(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        turn_urls=TURN_URLS,
        turn_secret=SECRET,
        rtc_ice_servers=["stun:stun.example.org:3478", "turn:old:static@turn.example.org:3478"],
    )
    servers = browser_ice_servers(
        media_settings(settings), TurnCredentials.from_settings(settings), "u9"
    )
    assert [s["urls"] for s in servers] == [
        TURN_URLS,
        ["stun:stun.example.org:3478"],
        ["turn:turn.example.org:3478"],
    ]
    assert servers[0]["username"].endswith(":u9")
    assert servers[2] == {
        "urls": ["turn:turn.example.org:3478"],
        "username": "old",
        "credential": "static",
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path, turn_urls=TURN_URLS, turn_secret=SECRET, turn_credential_seconds=900
    )


async def test_media_join_gives_each_user_a_fresh_credential(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    case_id = world.cases["Case A"]
    replies = {}
    for name in ("paula", "carl"):
        sio = await connect(world, world.clients[name], "/media")
        try:
            before = int(time.time())
            reply = await sio.call("media.join", {"case_id": case_id}, namespace="/media")
            assert reply["ok"], reply
            again_at = int(time.time())
            await sio.call("media.leave", {"case_id": case_id}, namespace="/media")
            rejoined = await sio.call("media.join", {"case_id": case_id}, namespace="/media")
            await sio.call("media.leave", {"case_id": case_id}, namespace="/media")
        finally:
            await sio.disconnect()
        user_id = (await world.clients[name].session())["user"]["id"]
        turn = reply["ice_servers"][0]
        assert turn["urls"] == TURN_URLS
        expiry, _, who = turn["username"].partition(":")
        assert who == user_id
        assert before + 900 <= int(expiry) <= again_at + 900
        assert turn["credential"] == turn_password(SECRET, turn["username"])
        # renewed on rejoin: a later join's credential expires no earlier
        renewed = rejoined["ice_servers"][0]
        assert int(renewed["username"].partition(":")[0]) >= int(expiry)
        assert renewed["credential"] == turn_password(SECRET, renewed["username"])
        replies[name] = turn
    assert replies["paula"]["username"] != replies["carl"]["username"]
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert SECRET not in logged
    assert all(turn["credential"] not in logged for turn in replies.values())

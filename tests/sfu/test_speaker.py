"""The active speaker of a room, from the audio-level extension read without decoding
(``sfu.speaker``): the rule on its own, then a room of real peers where one publishes a
tone and the others silence."""

from __future__ import annotations

from sfu.speaker import ActiveSpeaker, SpeakerRule
from tests.support.eventually import eventually

SILENT = (50, 127.0, 0)


def loud(level: float = 20.0, voiced: int = 0) -> tuple[int, float, int]:
    return (50, level, voiced)


def test_the_loudest_speaking_member_takes_over_after_holding_the_lead() -> None:
    speaker = ActiveSpeaker(SpeakerRule(hold=2))
    assert speaker.update({"a": loud(), "b": SILENT}) is None  # one interval is not enough
    assert speaker.update({"a": loud(), "b": SILENT}) == "a"
    assert speaker.current == "a"
    # silence keeps the last speaker on screen
    assert speaker.update({"a": SILENT, "b": SILENT}) is None
    assert speaker.current == "a"


def test_a_speaker_still_speaking_is_not_cut_off_by_a_slightly_louder_one() -> None:
    speaker = ActiveSpeaker(SpeakerRule(hold=1, switch_margin=6))
    assert speaker.update({"a": loud(30), "b": SILENT}) == "a"
    for _ in range(5):  # 3 dB louder: not enough while a still speaks
        assert speaker.update({"a": loud(30), "b": loud(27)}) is None
    assert speaker.update({"a": loud(30), "b": loud(20)}) == "b"  # 10 dB louder
    assert speaker.update({"a": SILENT, "b": SILENT}) is None
    assert speaker.update({"a": loud(40), "b": SILENT}) == "a"  # b stopped: a takes over


def test_voice_activity_counts_and_a_lead_must_be_held_in_a_row() -> None:
    speaker = ActiveSpeaker(SpeakerRule(hold=3))
    quiet_voice = (50, 70.0, 40)  # quieter than the level rule, but most packets voiced
    assert speaker.speaking(quiet_voice) and not speaker.speaking((50, 70.0, 10))
    assert not speaker.speaking((0, 0.0, 0))
    assert speaker.update({"a": quiet_voice}) is None
    assert speaker.update({"a": quiet_voice}) is None
    assert speaker.update({"a": SILENT, "b": loud()}) is None  # the lead changed hands
    assert speaker.update({"a": SILENT, "b": loud()}) is None
    assert speaker.update({"a": SILENT, "b": loud()}) == "b"


def test_a_speaker_who_leaves_is_forgotten() -> None:
    speaker = ActiveSpeaker(SpeakerRule(hold=1))
    assert speaker.update({"a": loud()}) == "a"
    assert speaker.update({"b": SILENT}) is None
    assert speaker.current is None


async def test_the_member_publishing_a_tone_becomes_the_active_speaker(worker, participants):
    """aiortc's sender writes each packet's level (computed from the tone); the compiled
    receive path sums them; the worker decides every interval."""
    changes: list[tuple[str, str]] = []
    worker.on_active_speaker = lambda room, pid: changes.append((room, pid))
    quiet = participants("quiet", audio=True, video=None, decode=False)
    talker = participants("talker", audio="tone", video=None, decode=False)
    await quiet.join()
    await talker.join()
    await eventually(lambda: worker.active_speaker("room") == "talker", 15)
    assert changes and changes[-1] == ("room", "talker")
    assert all(pid == "talker" for _, pid in changes)

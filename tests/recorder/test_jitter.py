"""The jitter buffer: order, wrap-around, loss, frames on the marker bit."""

from recorder.depacketizer import vp8_starts_frame
from recorder.jitter import JitterBuffer


def video() -> JitterBuffer:
    return JitterBuffer(frames_end_on_marker=True, starts_frame=vp8_starts_frame, max_delay=0.1)


def start(n: int) -> bytes:
    return bytes((0x10, n))


def more(n: int) -> bytes:
    return bytes((0x00, n))


def test_reordered_packets_make_frames_in_order_across_the_wrap():
    jb = video()
    seqs = [0xFFFE, 0xFFFF, 0, 1]
    # frame A: 0xFFFE, 0xFFFF (marker); frame B: 0, 1 (marker); arrive out of order
    out = []
    out += jb.push(0xFFFF, 100, 1, more(2), 0.0)
    assert out == []  # the first packet is not a frame start: the buffer waits for one
    jb = video()
    out += jb.push(seqs[0], 100, 0, start(1), 0.0)
    out += jb.push(seqs[2], 200, 0, start(3), 0.01)
    out += jb.push(seqs[3], 200, 1, more(4), 0.02)
    assert out == []  # frame A incomplete, B waits behind it
    out += jb.push(seqs[1], 100, 1, more(2), 0.03)
    assert [(f.timestamp, f.payloads, f.after_loss) for f in out] == [
        (100, [start(1), more(2)], False),
        (200, [start(3), more(4)], False),
    ]
    assert jb.push(seqs[1], 100, 1, more(2), 0.04) == []  # duplicate
    assert jb.packets_late == 1


def test_a_lost_packet_drops_its_frame_and_marks_the_next():
    jb = video()
    out = jb.push(10, 100, 1, start(1), 0.0)
    assert len(out) == 1
    # frame 200 = 11, 12(lost), 13 marker; frame 300 = 14 marker
    assert jb.push(11, 200, 0, start(2), 0.01) == []
    assert jb.push(13, 200, 1, more(3), 0.02) == []
    assert jb.push(14, 300, 1, start(4), 0.05) == []  # still waiting for 12
    out = jb.push(15, 400, 1, start(5), 0.2)  # waited longer than max_delay
    assert [(f.timestamp, f.after_loss) for f in out] == [(300, True), (400, False)]
    assert jb.packets_lost == 1 and jb.frames_dropped == 1


def test_retransmission_in_time_fills_the_gap():
    jb = video()
    jb.push(1, 100, 1, start(1), 0.0)
    assert jb.push(3, 200, 1, more(3), 0.01) == []
    out = jb.push(2, 200, 0, start(2), 0.05)
    assert [(f.timestamp, len(f.payloads), f.after_loss) for f in out] == [(200, 2, False)]
    assert jb.packets_lost == 0


def test_audio_packets_are_frames_and_loss_skips_ahead():
    jb = JitterBuffer(frames_end_on_marker=False, max_delay=0.1)
    assert [f.timestamp for f in jb.push(1, 0, 0, b"a", 0.0)] == [0]
    assert jb.push(3, 1920, 0, b"c", 0.01) == []
    out = jb.push(4, 2880, 0, b"d", 0.2)
    assert [(f.timestamp, f.after_loss) for f in out] == [(1920, True), (2880, False)]
    assert jb.packets_lost == 1


def test_a_jump_beyond_the_buffer_restarts_there():
    jb = JitterBuffer(frames_end_on_marker=False, max_packets=64)
    jb.push(100, 0, 0, b"a", 0.0)
    out = jb.push(1000, 9000, 0, b"b", 0.01)
    assert [(f.timestamp, f.after_loss) for f in out] == [(9000, True)]


def test_flush_releases_complete_frames_and_drops_partial_ones():
    jb = video()
    jb.push(1, 100, 0, start(1), 0.0)
    assert jb.flush() == []
    assert jb.frames_dropped == 1

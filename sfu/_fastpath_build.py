"""Builds ``sfu._fastpath``: the forwarding hot path in C, compiled at install time (cffi).

Per forwarded packet and subscriber the SFU rewrites the 12-byte RTP header, copies the
shared extensions+payload behind it, SRTP-protects it in place and sends it.  In Python
each of those steps is a call with its argument parsing, and the rewrite state is a
handful of attribute reads and writes: some 6 µs of interpreter work per packet and
subscriber around 1 µs of libsrtp and the ``sendto`` itself.  Here one C call does all of
it with the consumer's rewrite state in a C struct (``caucus_consumer``) and the
subscriber transport's socket, address and SRTP context in another (``caucus_sink``).

libsrtp is the one inside pylibsrtp: its ``srtp_protect`` is called through a function
pointer taken from pylibsrtp's compiled module (see ``sfu.aiortc_adapter``), so nothing
here links against a second copy of it.  The Python fallback (``sfu.consumer``,
``sfu.aiortc_adapter.RtpWriter``) computes exactly the same bytes; tests compare them.

    python sfu/_fastpath_build.py     # builds in place (``pip install`` does it too)
"""

from __future__ import annotations

from cffi import FFI

#: What both the C source and cffi's declarations hold: one definition of the structs.
STRUCTS = """
/* The writer's buffer; an RTP packet leaves room for libsrtp's largest trailer (144). */
#define CAUCUS_BUFFER 2048

typedef int (*caucus_protect_fn)(void *ctx, void *buf, int *len);

typedef struct {
    caucus_protect_fn protect;  /* libsrtp's srtp_protect */
    void *srtp;                 /* the transport's outbound srtp_t; NULL: not bound */
    int fd;                     /* the nominated ICE pair's UDP socket */
    int addrlen;
    unsigned char addr[28];     /* the remote address: sockaddr_in or sockaddr_in6 */
    int last_errno;             /* of the send that unbound the sink */
    uint64_t packets;
    uint64_t bytes;
    uint64_t dropped;
    unsigned char buf[CAUCUS_BUFFER];
} caucus_sink;

typedef struct {
    caucus_sink *sink;
    uint32_t ssrc;
    uint32_t ts_offset;
    uint32_t last_ts;
    uint16_t seq_offset;
    uint16_t last_seq;
    int32_t source_span;
    uint8_t payload_type;
    int64_t last_ms;
    uint64_t packets;
    uint64_t bytes;
} caucus_consumer;
"""

CDEF = (
    STRUCTS
    + """
#define CAUCUS_MAX_RTP ...
#define CAUCUS_NOT_BOUND ...
#define CAUCUS_DROPPED ...

int caucus_write(caucus_consumer *c, uint8_t first_byte, int marker, uint16_t seq,
                 uint32_t timestamp, int64_t arrival_ms, const unsigned char *tail,
                 int tail_len);
int caucus_send(caucus_sink *s, uint8_t first_byte, uint8_t second_byte, uint16_t seq,
                uint32_t timestamp, uint32_t ssrc, const unsigned char *tail, int tail_len);
"""
)

SOURCE = (
    r"""
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
"""
    + STRUCTS
    + r"""
#define CAUCUS_MAX_RTP (CAUCUS_BUFFER - 144)
#define CAUCUS_NOT_BOUND (-2)
#define CAUCUS_DROPPED (-1)

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Header, tail, SRTP in place, one sendto.  Returns the RTP length, CAUCUS_DROPPED (too
   large, SRTP failure, full send buffer) or CAUCUS_NOT_BOUND (no socket, or it failed:
   the sink is unbound and its errno kept). */
static int send_packet(caucus_sink *s, uint8_t first_byte, uint8_t second_byte, uint16_t seq,
                       uint32_t timestamp, uint32_t ssrc, const unsigned char *tail,
                       int tail_len)
{
    if (s == NULL || s->srtp == NULL)
        return CAUCUS_NOT_BOUND;
    int end = 12 + tail_len;
    if (tail_len < 0 || end > CAUCUS_MAX_RTP) {
        s->dropped++;
        return CAUCUS_DROPPED;
    }
    unsigned char *b = s->buf;
    b[0] = first_byte;
    b[1] = second_byte;
    b[2] = (unsigned char)(seq >> 8);
    b[3] = (unsigned char)seq;
    put32(b + 4, timestamp);
    put32(b + 8, ssrc);
    memcpy(b + 12, tail, (size_t)tail_len);
    int len = end;
    if (s->protect(s->srtp, b, &len) != 0) {
        s->dropped++;
        return CAUCUS_DROPPED;
    }
    ssize_t sent = sendto(s->fd, b, (size_t)len, 0, (const struct sockaddr *)s->addr,
                          (socklen_t)s->addrlen);
    if (sent < 0) {
        s->dropped++;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR)
            return CAUCUS_DROPPED;
        s->last_errno = errno;
        s->srtp = NULL;
        return CAUCUS_NOT_BOUND;
    }
    s->packets++;
    s->bytes += (uint64_t)end;
    return end;
}

int caucus_send(caucus_sink *s, uint8_t first_byte, uint8_t second_byte, uint16_t seq,
                uint32_t timestamp, uint32_t ssrc, const unsigned char *tail, int tail_len)
{
    return send_packet(s, first_byte, second_byte, seq, timestamp, ssrc, tail, tail_len);
}

/* Consumer.write's rewrite and send for a consumer that is not paused: the source's
   sequence number and timestamp shifted by the consumer's offsets; a packet from before
   the current source's first one is skipped (0); a newer one than any forwarded moves
   the stream's newest number, timestamp and arrival time. */
int caucus_write(caucus_consumer *c, uint8_t first_byte, int marker, uint16_t seq,
                 uint32_t timestamp, int64_t arrival_ms, const unsigned char *tail,
                 int tail_len)
{
    uint16_t out_seq = (uint16_t)(seq + c->seq_offset);
    int32_t behind = (uint16_t)(c->last_seq - out_seq);
    if (behind >= 0x8000)
        behind -= 0x10000;
    if (behind >= c->source_span)
        return 0;
    uint32_t out_ts = timestamp + c->ts_offset;
    int sent = send_packet(c->sink, first_byte,
                           (uint8_t)(c->payload_type | (marker ? 0x80 : 0)), out_seq, out_ts,
                           c->ssrc, tail, tail_len);
    if (sent <= 0)
        return sent;
    c->packets++;
    c->bytes += (uint64_t)sent;
    if (behind < 0) {
        int32_t span = c->source_span - behind;
        c->source_span = span < 0x8000 ? span : 0x8000;
        c->last_seq = out_seq;
        c->last_ts = out_ts;
        c->last_ms = arrival_ms;
    }
    return sent;
}
"""
)

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("sfu._fastpath", SOURCE, extra_compile_args=["-O2"])

if __name__ == "__main__":
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ffibuilder.compile(verbose=False)

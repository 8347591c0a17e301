"""Builds ``sfu._fastpath``: the forwarding hot path in C, compiled at install time (cffi).

Per forwarded packet and subscriber the SFU rewrites the 12-byte RTP header, copies the
shared extensions+payload behind it, SRTP-protects it in place and sends it.  In Python
each of those steps is a call with its argument parsing, and the rewrite state is a
handful of attribute reads and writes: some 6 µs of interpreter work per packet and
subscriber around 1 µs of libsrtp and the ``sendto`` itself.  Here one C call does all of
it with the consumer's rewrite state in a C struct (``caucus_consumer``) and the
subscriber transport's socket, address and SRTP context in another (``caucus_sink``).

libsrtp is the one inside pylibsrtp: its ``srtp_protect`` is called through a function
pointer taken from pylibsrtp's compiled module (see ``sfu.rtc.native``), so nothing
here links against a second copy of it.  The Python fallback (``sfu.consumer``,
``sfu.rtc.writer.RtpWriter``) computes exactly the same bytes; tests compare them.

    .venv/bin/pip install -e .        # builds it in place (``make dev-deps`` does it)
"""

from __future__ import annotations

from cffi import FFI

#: What both the C source and cffi's declarations hold: one definition of the structs.
STRUCTS = """
/* The writer's buffer; an RTP packet leaves room for libsrtp's largest trailer (144). */
#define CAUCUS_BUFFER 2048

typedef int (*caucus_protect_fn)(void *ctx, void *buf, int *len);

/* Transport-wide congestion control (draft-holmer-rmcat-transport-wide-cc-extensions-01):
   what a subscribe transport remembers of each packet it numbered and sent, for the
   feedback to be matched against; a ring indexed by the transport-wide number. */
#define CAUCUS_SENT_RING 4096

typedef struct {
    int64_t sent_us;            /* CLOCK_MONOTONIC microseconds when it left; 0: none */
    uint16_t seq;               /* the transport-wide number of the packet in the slot */
    uint16_t size;              /* its SRTP-protected length: the UDP payload */
    int32_t probe_cluster;      /* the sink's probe_cluster when it left (0: none) */
} caucus_sent;

/* Packets one sink holds back during a receive event. */
#define CAUCUS_SINK_BATCH 16
/* Sinks one receiver holds packets in during an event (more: the earlier ones leave). */
#define CAUCUS_PENDING_SINKS 64

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
    /* packets protected and waiting to leave in one sendmmsg (caucus_receive queues the
       packets it forwards during one readiness event, and sends them before it returns) */
    int queued;
    int queued_len[CAUCUS_SINK_BATCH];   /* protected */
    int queued_rtp[CAUCUS_SINK_BATCH];   /* before SRTP, as ``bytes`` counts */
    uint64_t batches;           /* sendmmsg calls */
    unsigned char batch[CAUCUS_SINK_BATCH][CAUCUS_BUFFER];
    /* transport-wide numbering: a packet whose one-byte extension block begins with the
       element transport_cc_id of length 2 gets transport_seq there, and its slot in
       ``sent`` once it left (number_packet, record_sent) */
    uint8_t transport_cc_id;    /* 0: packets are not numbered */
    uint16_t transport_seq;     /* the number the next packet gets */
    int32_t probe_cluster;      /* recorded with each packet that leaves (0: none) */
    caucus_sent *sent;          /* CAUCUS_SENT_RING slots (NULL: not numbered) */
    int queued_seq[CAUCUS_SINK_BATCH];   /* each queued packet's number, or -1 */
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
    int started;                /* Consumer.started */
    int paused;                 /* Consumer._paused */
    int vp8;                    /* rewrite VP8 picture IDs and TL0PICIDX (below) */
    uint16_t pic_offset;        /* added to the picture ID (modulo its width) */
    uint8_t tl0_offset;         /* added to TL0PICIDX (modulo 256) */
    int32_t last_pic;           /* the newest forwarded packet's, or -1 */
    int32_t last_tl0;
} caucus_consumer;

/* A producer's packets held for retransmission (answering subscribers' NACKs): a ring
   indexed by sequence number; a payload longer than CAUCUS_STORED_PAYLOAD is not held. */
#define CAUCUS_STORED_PAYLOAD 1400

typedef struct {
    uint16_t seq;
    uint8_t marker;
    uint8_t valid;
    uint32_t timestamp;
    int32_t length;
    unsigned char payload[CAUCUS_STORED_PAYLOAD];
} caucus_stored;

/* One consumer of a producer, with the header-extension ids its subscriber negotiated. */
typedef struct {
    caucus_consumer *consumer;
    uint8_t abs_send_time_id;
    uint8_t audio_level_id;
    uint8_t transport_cc_id;    /* its block begins with the transport-wide number's */
} caucus_output;

#define CAUCUS_PRODUCER_OUTPUTS 64
#define CAUCUS_TAILS 4

/* One published track (sfu.producer.Producer's per-packet state): the compiled receive
   path forwards an ordinary packet of it to every consumer without Python
   (caucus_producer_packet); anything else (the first packet, a new SSRC, a gap to NACK,
   RTX, a consumer waiting for a keyframe or not bound, a recorder, over budget) is left
   to Python, which reads and writes the same fields. */
typedef struct {
    int closed;
    int sinks;                  /* recorders: they take Python's path */
    int keyframe_waiters;
    int keyframe_pending;
    int has_ssrc;
    uint32_t ssrc;
    int payload_type;
    uint8_t audio_level_id;     /* the publisher's ssrc-audio-level id (0: none) */
    double budget_per_ms;       /* the byte budget: a token bucket on arrival ms */
    double budget_depth;
    double budget_tokens;
    int64_t budget_at;
    uint64_t packets;           /* reception statistics (RFC 3550 A.3) */
    uint64_t bytes;
    uint16_t max_seq;
    int64_t cycles;
    uint32_t last_timestamp;
    int64_t last_arrival_ms;
    int buffer_size;            /* a power of two, or 0: nothing held (audio) */
    caucus_stored *buffer;
    int outputs_used;
    int outputs_complete;       /* 1: outputs holds every consumer (all compiled) */
    caucus_output outputs[CAUCUS_PRODUCER_OUTPUTS];
    uint64_t forwarded_here;    /* packets forwarded entirely in C */
    uint64_t level_packets;     /* packets carrying the publisher's audio level ... */
    uint64_t level_sum;         /* ... the sum of their levels (-dBov, 0-127) ... */
    uint64_t level_voiced;      /* ... and those with the voice-activity bit */
    unsigned char tails[CAUCUS_TAILS][CAUCUS_BUFFER];
} caucus_producer;

/* Scratch buffers for the packets of one frame, sent with one sendmmsg (the load
   client's publishers; one per event loop, since a frame is sent in one call). */
#define CAUCUS_BATCH 16

typedef struct {
    unsigned char buf[CAUCUS_BATCH][CAUCUS_BUFFER];
} caucus_batch;

/* The receive side: what one received track delivered (the load client's figures) and
   one DTLS transport's socket, inbound SRTP context and routes (SSRC -> track). */
#define CAUCUS_TRACK_LATENCIES 4096
#define CAUCUS_RECEIVER_ROUTES 64
#define CAUCUS_DATAGRAM 65536

typedef struct {
    uint32_t ssrc;              /* of the first packet; other SSRCs are not counted */
    int started;
    int clock_rate;
    int every_packet_a_frame;   /* audio */
    uint64_t packets;
    uint64_t bytes;             /* payload bytes */
    uint64_t frames;
    int64_t base_seq;
    int64_t max_seq;            /* extended sequence numbers */
    int64_t cycles;
    int has_transit;
    double last_transit;
    double jitter_s;            /* RFC 3550 interarrival jitter */
    int has_first_frame;
    double first_frame_at;      /* CLOCK_MONOTONIC seconds, as Python's time.monotonic() */
    int has_packet;
    double last_packet_at;
    uint32_t latency_count;     /* samples waiting in latencies (ms) */
    uint64_t latency_dropped;   /* samples lost to a full buffer */
    double latencies[CAUCUS_TRACK_LATENCIES];
} caucus_track;

typedef struct {
    uint32_t ssrc;
    uint8_t payload_type;
    caucus_track *track;        /* counted here (the load client) ... */
    caucus_producer *producer;  /* ... or forwarded here (the SFU) */
} caucus_route;

/* SSRCs a receiver with ``filter`` set lets through to libsrtp (caucus_receiver_allow). */
#define CAUCUS_ALLOWED_SSRCS 16

typedef struct {
    caucus_protect_fn unprotect;  /* libsrtp's srtp_unprotect (same signature) */
    void *srtp;                   /* the transport's inbound srtp_t; NULL: released */
    int fd;                       /* the socket to drain; -1: none (a poller's own dup) */
    int budget;                   /* datagrams still to read in this event */
    int length;                   /* of the datagram or packet in buf */
    int addrlen;
    unsigned char addr[28];       /* where the datagram in buf came from */
    uint64_t datagrams;           /* read from the socket here */
    uint64_t counted;             /* packets a route's track counted here */
    uint64_t failed;              /* not unprotected: failed, too large, no context */
    int routes_used;
    caucus_route routes[CAUCUS_RECEIVER_ROUTES];
    int drop_rtcp;                /* SRTCP is counted and dropped, not handed on */
    uint64_t rtcp_dropped;
    int registered;               /* in a poller's epoll set (through fd, its own dup) */
    int filter;                   /* 1: only the allowed SSRCs reach libsrtp */
    int allowed_count;
    uint32_t allowed[CAUCUS_ALLOWED_SSRCS];
    uint64_t unknown_ssrc;        /* RTP datagrams left to Python for their SSRC */
    uint64_t too_large;           /* longer than CAUCUS_BUFFER (also in failed) */
    uint64_t forwarded;           /* packets a route's producer forwarded here */
    int pending_count;            /* sinks holding packets of this event */
    caucus_sink *pending[CAUCUS_PENDING_SINKS];
    uint64_t malformed;           /* too short, a negative length, RTCP types 209-223 */
    unsigned char buf[CAUCUS_DATAGRAM];
} caucus_receiver;

/* Polls the sockets of many receivers at once (epoll, level-triggered): the load client
   reads its media on a timer, with the kernel's arrival time of each datagram. */
#define CAUCUS_POLL_EVENTS 128

typedef struct {
    int epfd;
    int ready;                    /* receivers of the last epoll_wait ... */
    int next;                     /* ... and the first of them not yet drained */
    caucus_receiver *receivers[CAUCUS_POLL_EVENTS];
    caucus_receiver *current;     /* whose buf holds what the last call returned */
    uint64_t polls;
    uint64_t datagrams;
} caucus_poller;
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
int caucus_send_frame(caucus_sink *s, caucus_batch *batch, uint8_t first_byte,
                      uint8_t payload_type, uint16_t seq, uint32_t timestamp, uint32_t ssrc,
                      const unsigned char *tails, int tails_size, const int *lengths,
                      int count, int picture_id_offset, int picture_id, int stamped,
                      int *sent_bytes);

#define CAUCUS_DRAIN_BATCH ...
#define CAUCUS_RX_DONE ...
#define CAUCUS_RX_RTP ...
#define CAUCUS_RX_OTHER ...
#define CAUCUS_RX_UNKNOWN ...
#define CAUCUS_KIND_OTHER ...
#define CAUCUS_KIND_RTP ...
#define CAUCUS_KIND_RTCP ...
#define CAUCUS_KIND_MALFORMED ...

int caucus_classify(const unsigned char *b, int n);
int caucus_receiver_allow(caucus_receiver *r, const uint32_t *ssrcs, int n);
int caucus_unprotect_held(caucus_receiver *r);
int caucus_track_packet(caucus_track *t, const unsigned char *data, int len);
int caucus_route_add(caucus_receiver *r, uint32_t ssrc, uint8_t payload_type, caucus_track *t);
int caucus_route_add_producer(caucus_receiver *r, uint32_t ssrc, uint8_t payload_type,
                              caucus_producer *p);
int caucus_producer_packet(caucus_producer *p, const unsigned char *data, int len,
                           int64_t arrival_ms, int64_t send_time);
void caucus_producer_store(caucus_producer *p, uint16_t seq, uint32_t timestamp, int marker,
                           const unsigned char *payload, int length);
void caucus_producer_clear(caucus_producer *p);
int caucus_audio_level(const unsigned char *data, int len, int extension_id);
int caucus_payload_bounds(const unsigned char *data, int len, int *start, int *end);
int caucus_receive(caucus_receiver *r, const unsigned char *data, int length);
int caucus_poller_open(caucus_poller *p);
int caucus_poller_add(caucus_poller *p, caucus_receiver *r);
int caucus_poller_remove(caucus_poller *p, caucus_receiver *r);
int caucus_poll(caucus_poller *p, int start);
"""
)

SOURCE = (
    r"""
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sendmmsg */
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h> /* UDP_SEGMENT */
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
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

/* The 12-byte RTP header, then the tail (extension block and payload), at ``b``. */
static void write_packet(unsigned char *b, uint8_t first_byte, uint8_t second_byte,
                         uint16_t seq, uint32_t timestamp, uint32_t ssrc,
                         const unsigned char *tail, int tail_len)
{
    b[0] = first_byte;
    b[1] = second_byte;
    b[2] = (unsigned char)(seq >> 8);
    b[3] = (unsigned char)seq;
    put32(b + 4, timestamp);
    put32(b + 8, ssrc);
    memcpy(b + 12, tail, (size_t)tail_len);
}

/* CLOCK_MONOTONIC in microseconds (Python's time.monotonic() on Linux). */
static int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The transport-wide number of the RTP packet at ``b`` (``len`` bytes, written by the
   SFU): when the sink numbers packets and the packet's extension block (one-byte form,
   after the CSRC list) begins with the element of the sink's transport-cc id and length
   2, the sink's next number is written into that element and returned; otherwise -1
   and the packet is left as it is (e.g. a consumer whose subscriber did not negotiate
   the extension).  sfu.rtc.writer numbers the packets of the Python path the same way. */
static int number_packet(caucus_sink *s, unsigned char *b, int len)
{
    if (s->transport_cc_id == 0 || s->sent == NULL || !(b[0] & 0x10))
        return -1;
    int at = 12 + ((b[0] & 0x0F) << 2);
    if (len < at + 8 || b[at] != 0xBE || b[at + 1] != 0xDE || (b[at + 2] | b[at + 3]) == 0
        || b[at + 4] != (unsigned char)(s->transport_cc_id << 4 | 1))
        return -1;
    uint16_t number = s->transport_seq++;
    b[at + 5] = (unsigned char)(number >> 8);
    b[at + 6] = (unsigned char)number;
    return number;
}

/* The numbered packet ``number`` left at ``now_us``, ``size`` bytes on the wire. */
static void record_sent(caucus_sink *s, int number, int size, int64_t now_us)
{
    caucus_sent *slot = &s->sent[number & (CAUCUS_SENT_RING - 1)];
    slot->seq = (uint16_t)number;
    slot->size = (uint16_t)size;
    slot->sent_us = now_us > 0 ? now_us : 1;
    slot->probe_cluster = s->probe_cluster;
}

/* The packet (header, then tail) written at ``b``, numbered (number_packet: its number,
   or -1, in ``*number``) and SRTP-protected there with the sink's context: its protected
   length, its RTP length in ``*end``; CAUCUS_DROPPED (too large, SRTP failure: counted,
   and the number goes to the next packet) or CAUCUS_NOT_BOUND (no context). */
static int protect_packet(caucus_sink *s, unsigned char *b, uint8_t first_byte,
                          uint8_t second_byte, uint16_t seq, uint32_t timestamp, uint32_t ssrc,
                          const unsigned char *tail, int tail_len, int *end, int *number)
{
    if (s == NULL || s->srtp == NULL)
        return CAUCUS_NOT_BOUND;
    if (tail == NULL || tail_len < 0 || tail_len > CAUCUS_MAX_RTP - 12) {
        s->dropped++;
        return CAUCUS_DROPPED;
    }
    *end = 12 + tail_len;
    write_packet(b, first_byte, second_byte, seq, timestamp, ssrc, tail, tail_len);
    *number = number_packet(s, b, *end);
    int len = *end;
    if (s->protect(s->srtp, b, &len) != 0) {
        if (*number >= 0)
            s->transport_seq = (uint16_t)*number;
        s->dropped++;
        return CAUCUS_DROPPED;
    }
    return len;
}

/* Header, tail, SRTP in place, one sendto.  Returns the RTP length, CAUCUS_DROPPED (too
   large, SRTP failure, full send buffer) or CAUCUS_NOT_BOUND (no socket, or it failed:
   the sink is unbound and its errno kept).  A numbered packet that did not leave keeps
   its number (the subscriber sees it as lost) but no slot in ``sent``. */
static int send_packet(caucus_sink *s, uint8_t first_byte, uint8_t second_byte, uint16_t seq,
                       uint32_t timestamp, uint32_t ssrc, const unsigned char *tail,
                       int tail_len)
{
    int end = 0, number = -1;
    unsigned char *b = s != NULL ? s->buf : NULL;
    int len = protect_packet(s, b, first_byte, second_byte, seq, timestamp, ssrc, tail, tail_len,
                             &end, &number);
    if (len < 0)
        return len;
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
    if (number >= 0)
        record_sent(s, number, len, monotonic_us());
    s->packets++;
    s->bytes += (uint64_t)end;
    return end;
}

int caucus_send(caucus_sink *s, uint8_t first_byte, uint8_t second_byte, uint16_t seq,
                uint32_t timestamp, uint32_t ssrc, const unsigned char *tail, int tail_len)
{
    return send_packet(s, first_byte, second_byte, seq, timestamp, ssrc, tail, tail_len);
}

/* Whether the kernel segments a send (UDP generic segmentation offload, Linux 4.18+);
   cleared for the process the first time it refuses one. */
static int gso_works = 1;

/* Sends msgs[0..m) on the sink's socket with sendmmsg: again when a call is interrupted
   (EINTR) and with the rest after a partial send, each call counted in ``*calls`` unless
   it is NULL.  Returns how many messages left.  When a call fails the rest are dropped,
   each of their packets (one per iovec) counted in the sink's ``dropped``: a full send
   buffer (EAGAIN, EWOULDBLOCK, ENOBUFS) only drops them, as the network would; another
   failure also unbinds the sink, its errno kept, as send_packet does.  With
   ``refused`` (runs sent with UDP_SEGMENT), the kernel or the route refusing to segment
   the message that failed (one of several packets) drops nothing: ``*refused`` is set
   and the messages that left are returned, for the caller to send the rest one by one
   (also when a lone packet left before the first run). */
static int sendmmsg_all(caucus_sink *s, struct mmsghdr *msgs, int m, int *refused,
                        uint64_t *calls)
{
    int done = 0;
    while (done < m) {
        int sent = sendmmsg(s->fd, msgs + done, (unsigned int)(m - done), 0);
        if (calls != NULL)
            (*calls)++;
        if (sent >= 0) {
            done += sent;
            continue;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (refused != NULL && msgs[done].msg_hdr.msg_iovlen > 1
            && (err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP)) {
            *refused = 1;
            return done;
        }
        for (int k = done; k < m; k++)
            s->dropped += (uint64_t)msgs[k].msg_hdr.msg_iovlen;
        if (!(err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)) {
            s->last_errno = err;
            s->srtp = NULL;
        }
        break;
    }
    return done;
}

/* Sends what the sink holds back, in one sendmmsg (more when the kernel takes part of
   it).  Consecutive packets of one size (a video frame's, but its last) go as one
   message the kernel cuts into datagrams of that size (UDP_SEGMENT): the stack is
   walked once per run instead of once per packet; the receiver gets the same
   datagrams.  A full send buffer drops the rest (as the network would); another failure
   unbinds the sink, as send_packet does. */
static void flush_sink(caucus_sink *s)
{
    int n = s->queued;
    s->queued = 0;
    if (n <= 0)
        return;
    if (s->srtp == NULL) {
        s->dropped += (uint64_t)n;
        return;
    }
    struct mmsghdr msgs[CAUCUS_SINK_BATCH];
    struct iovec iovs[CAUCUS_SINK_BATCH];
    int counts[CAUCUS_SINK_BATCH], firsts[CAUCUS_SINK_BATCH];
    union {
        struct cmsghdr header;
        unsigned char space[CMSG_SPACE(sizeof(uint16_t))];
    } controls[CAUCUS_SINK_BATCH];
    int segmented = gso_works;
    int start = 0; /* the first packet not sent yet */
again:;
    int m = 0;
    for (int i = start; i < n;) {
        int size = s->queued_len[i], count = 1, total = size;
        iovs[i].iov_base = s->batch[i];
        iovs[i].iov_len = (size_t)size;
        while (segmented && i + count < n && count < 64) {
            int next = s->queued_len[i + count];
            if (next > size || total + next > 60000)
                break;
            iovs[i + count].iov_base = s->batch[i + count];
            iovs[i + count].iov_len = (size_t)next;
            total += next;
            count++;
            if (next < size)
                break; /* a shorter one ends the run */
        }
        memset(&msgs[m], 0, sizeof msgs[m]);
        msgs[m].msg_hdr.msg_name = s->addr;
        msgs[m].msg_hdr.msg_namelen = (socklen_t)s->addrlen;
        msgs[m].msg_hdr.msg_iov = &iovs[i];
        msgs[m].msg_hdr.msg_iovlen = (size_t)count;
        if (count > 1) {
            msgs[m].msg_hdr.msg_control = controls[m].space;
            msgs[m].msg_hdr.msg_controllen = sizeof controls[m].space;
            struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t segment = (uint16_t)size;
            memcpy(CMSG_DATA(c), &segment, sizeof segment);
        }
        firsts[m] = i;
        counts[m++] = count;
        i += count;
    }
    int refused = 0;
    int done = sendmmsg_all(s, msgs, m, segmented ? &refused : NULL, &s->batches);
    int64_t now_us = 0; /* read once, when a numbered packet left: they left together */
    for (int k = 0; k < done; k++) {
        s->packets += (uint64_t)counts[k];
        for (int j = firsts[k]; j < firsts[k] + counts[k]; j++) {
            s->bytes += (uint64_t)s->queued_rtp[j];
            if (s->queued_seq[j] >= 0) {
                if (now_us == 0)
                    now_us = monotonic_us();
                record_sent(s, s->queued_seq[j], s->queued_len[j], now_us);
            }
        }
    }
    if (refused) {
        gso_works = 0; /* this kernel or route does not segment: one by one */
        segmented = 0;
        start = firsts[done];
        goto again;
    }
}

/* Sends what every sink of the receiver's event holds back. */
static void flush_pending(caucus_receiver *r)
{
    for (int i = 0; i < r->pending_count; i++)
        flush_sink(r->pending[i]);
    r->pending_count = 0;
}

/* send_packet's work, but the packet waits in the sink's batch until the receiver's
   event ends (flush_pending) or the batch is full.  Returns the RTP length (counted as
   forwarded: the sink counts what left), CAUCUS_DROPPED or CAUCUS_NOT_BOUND. */
static int queue_packet(caucus_receiver *r, caucus_sink *s, uint8_t first_byte,
                        uint8_t second_byte, uint16_t seq, uint32_t timestamp, uint32_t ssrc,
                        const unsigned char *tail, int tail_len)
{
    int end = 0, number = -1;
    unsigned char *b = s != NULL ? s->batch[s->queued] : NULL;
    int len = protect_packet(s, b, first_byte, second_byte, seq, timestamp, ssrc, tail, tail_len,
                             &end, &number);
    if (len < 0)
        return len;
    if (s->queued == 0) {
        if (r->pending_count == CAUCUS_PENDING_SINKS)
            flush_pending(r);
        r->pending[r->pending_count++] = s;
    }
    s->queued_seq[s->queued] = number;
    s->queued_rtp[s->queued] = end;
    s->queued_len[s->queued++] = len;
    if (s->queued == CAUCUS_SINK_BATCH)
        flush_sink(s); /* still listed as pending: flushing it again sends nothing */
    return end;
}

/* Where the VP8 payload descriptor begins in a consumer's tail (after the extension
   block the first byte announces), or -1 for a tail too short (sfu.consumer). */
static int vp8_descriptor_start(uint8_t first_byte, const unsigned char *tail, int tail_len)
{
    if (!(first_byte & 0x10))
        return 0;
    if (tail_len < 4)
        return -1;
    int start = 4 + ((tail[2] << 8 | tail[3]) << 2);
    return start <= tail_len ? start : -1;
}

/* sfu.rtp_header.vp8_picture: the offsets of the picture ID (and its width in bits) and
   of TL0PICIDX in the VP8 payload descriptor at d (n bytes); -1 where there is none or
   the descriptor is too short for what it announces. */
static void vp8_picture(const unsigned char *d, int n, int *picture, int *bits, int *tl0)
{
    *picture = -1;
    *bits = 0;
    *tl0 = -1;
    if (n < 2 || !(d[0] & 0x80))
        return;
    uint8_t flags = d[1];
    int pos = 2, pic = -1, width = 0, level = -1;
    if (flags & 0x80) {
        if (n < pos + 1)
            return;
        pic = pos;
        if (d[pos] & 0x80) {
            width = 15;
            pos += 2;
        } else {
            width = 7;
            pos += 1;
        }
    }
    if (flags & 0x40) {
        level = pos;
        pos += 1;
    }
    if (pos > n)
        return;
    *picture = pic;
    *bits = width;
    *tl0 = level;
}

/* Consumer.write's rewrite and send for a consumer that is not paused: the source's
   sequence number and timestamp shifted by the consumer's offsets; a packet from before
   the current source's first one is skipped (0); a newer one than any forwarded moves
   the stream's newest number, timestamp and arrival time. */
static int write_consumer(caucus_consumer *c, uint8_t first_byte, int marker, uint16_t seq,
                          uint32_t timestamp, int64_t arrival_ms, const unsigned char *tail,
                          int tail_len, caucus_receiver *r)
{
    uint16_t out_seq = (uint16_t)(seq + c->seq_offset);
    int32_t behind = (uint16_t)(c->last_seq - out_seq);
    if (behind >= 0x8000)
        behind -= 0x10000;
    if (behind >= c->source_span)
        return 0;
    uint32_t out_ts = timestamp + c->ts_offset;
    unsigned char rewritten[CAUCUS_BUFFER];
    int32_t pic = -1, tl0 = -1;
    if (c->vp8 && tail_len <= CAUCUS_BUFFER) {
        int start = vp8_descriptor_start(first_byte, tail, tail_len);
        int bits = 0;
        int picture_at = -1, tl0_at = -1;
        if (start >= 0)
            vp8_picture(tail + start, tail_len - start, &picture_at, &bits, &tl0_at);
        if (picture_at >= 0 || tl0_at >= 0) {
            memcpy(rewritten, tail, (size_t)tail_len);
            unsigned char *d = rewritten + start;
            if (picture_at >= 0) {
                if (bits == 15) {
                    pic = (((d[picture_at] & 0x7F) << 8 | d[picture_at + 1]) + c->pic_offset)
                          & 0x7FFF;
                    d[picture_at] = (unsigned char)(0x80 | pic >> 8);
                    d[picture_at + 1] = (unsigned char)pic;
                } else {
                    pic = ((d[picture_at] & 0x7F) + c->pic_offset) & 0x7F;
                    d[picture_at] = (unsigned char)pic;
                }
            }
            if (tl0_at >= 0) {
                tl0 = (uint8_t)(d[tl0_at] + c->tl0_offset);
                d[tl0_at] = (unsigned char)tl0;
            }
            tail = rewritten;
        }
    }
    uint8_t second_byte = (uint8_t)(c->payload_type | (marker ? 0x80 : 0));
    int sent = r != NULL ? queue_packet(r, c->sink, first_byte, second_byte, out_seq, out_ts,
                                        c->ssrc, tail, tail_len)
                         : send_packet(c->sink, first_byte, second_byte, out_seq, out_ts,
                                       c->ssrc, tail, tail_len);
    if (sent <= 0)
        return sent;
    c->packets++;
    c->bytes += (uint64_t)sent;
    if (behind < 0) {
        int64_t span = (int64_t)c->source_span - behind;
        c->source_span = span < 0x8000 ? (int32_t)span : 0x8000;
        c->last_seq = out_seq;
        c->last_ts = out_ts;
        c->last_ms = arrival_ms;
        if (pic >= 0)
            c->last_pic = pic;
        if (tl0 >= 0)
            c->last_tl0 = tl0;
    }
    return sent;
}

int caucus_write(caucus_consumer *c, uint8_t first_byte, int marker, uint16_t seq,
                 uint32_t timestamp, int64_t arrival_ms, const unsigned char *tail,
                 int tail_len)
{
    return write_consumer(c, first_byte, marker, seq, timestamp, arrival_ms, tail, tail_len,
                          NULL);
}

/* "CcLt" + the send time in microseconds since the epoch (client.stamped) */
static const unsigned char STAMP_MAGIC[4] = {'C', 'c', 'L', 't'};
#define STAMP_SIZE 12

/* Sends the n packets built in the batch; returns how many left (a full send buffer
   drops the rest) or CAUCUS_NOT_BOUND when the socket failed before any left. */
static int send_batch(caucus_sink *s, caucus_batch *batch, const int *lens, int n)
{
    struct mmsghdr msgs[CAUCUS_BATCH];
    struct iovec iovs[CAUCUS_BATCH];
    for (int i = 0; i < n; i++) {
        iovs[i].iov_base = batch->buf[i];
        iovs[i].iov_len = (size_t)lens[i];
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_name = s->addr;
        msgs[i].msg_hdr.msg_namelen = (socklen_t)s->addrlen;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int done = sendmmsg_all(s, msgs, n, NULL, NULL);
    return done == 0 && s->srtp == NULL ? CAUCUS_NOT_BOUND : done;
}

/* One frame of a publisher: ``count`` RTP packets whose tails (extension block and
   payload) lie one after the other in ``tails`` (``tails_size`` bytes: a tail that does
   not lie inside, and every one after it, is dropped), ``lengths[i]`` bytes each, numbered from
   ``seq``, all with ``timestamp``.  The last carries the marker bit and, when ``stamped``,
   the stamp (client.stamped: magic and CLOCK_REALTIME microseconds) after its tail; when
   ``picture_id_offset`` >= 0 the 16 bits of ``picture_id`` are written there in every
   tail (VP8's M bit and 15-bit picture ID).  Each packet is SRTP-protected in the batch's
   buffers; CAUCUS_BATCH at a time leave in one sendmmsg.  Returns the packets sent, their
   RTP bytes in ``sent_bytes``; CAUCUS_NOT_BOUND when none could be (no socket, or it
   failed); a packet too large or failing SRTP is dropped (counted in the sink). */
int caucus_send_frame(caucus_sink *s, caucus_batch *batch, uint8_t first_byte,
                      uint8_t payload_type, uint16_t seq, uint32_t timestamp, uint32_t ssrc,
                      const unsigned char *tails, int tails_size, const int *lengths,
                      int count, int picture_id_offset, int picture_id, int stamped,
                      int *sent_bytes)
{
    *sent_bytes = 0;
    if (s == NULL || s->srtp == NULL)
        return CAUCUS_NOT_BOUND;
    if (batch == NULL || tails == NULL || lengths == NULL || tails_size < 0 || count < 0) {
        s->dropped += count > 0 ? (uint64_t)count : 0;
        return 0;
    }
    uint64_t sent_us = 0;
    if (stamped) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sent_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    }
    int lens[CAUCUS_BATCH], rtp[CAUCUS_BATCH];
    int n = 0, total = 0;
    int64_t bytes = 0;
    int offset = 0;  /* of the current tail in tails; -1 once a tail did not fit */
    for (int i = 0; i < count; i++) {
        int last = i == count - 1;
        int tail_len = lengths[i];
        if (offset < 0 || tail_len < 0 || tail_len > tails_size - offset) {
            offset = -1;  /* where the later tails begin is not known either */
            s->dropped++;
        } else if (tail_len > CAUCUS_MAX_RTP - 12 - (last && stamped ? STAMP_SIZE : 0)) {
            offset += tail_len;
            s->dropped++;
        } else {
            const unsigned char *tail = tails + offset;
            int end = 12 + tail_len + (last && stamped ? STAMP_SIZE : 0);
            offset += tail_len;
            unsigned char *b = batch->buf[n];
            write_packet(b, first_byte, (uint8_t)(payload_type | (last ? 0x80 : 0)),
                         (uint16_t)(seq + i), timestamp, ssrc, tail, tail_len);
            if (picture_id_offset >= 0 && picture_id_offset <= tail_len - 2) {
                b[12 + picture_id_offset] = (unsigned char)(picture_id >> 8);
                b[13 + picture_id_offset] = (unsigned char)picture_id;
            }
            if (last && stamped) {
                unsigned char *p = b + 12 + tail_len;
                memcpy(p, STAMP_MAGIC, 4);
                put32(p + 4, (uint32_t)(sent_us >> 32));
                put32(p + 8, (uint32_t)sent_us);
            }
            int len = end;
            if (s->protect(s->srtp, b, &len) != 0) {
                s->dropped++;
            } else {
                lens[n] = len;
                rtp[n] = end;
                n++;
            }
        }
        if (n == CAUCUS_BATCH || (last && n > 0)) {
            int sent = send_batch(s, batch, lens, n);
            if (sent == CAUCUS_NOT_BOUND) {
                if (total == 0)
                    return CAUCUS_NOT_BOUND;
                break;
            }
            for (int k = 0; k < sent; k++)
                bytes += rtp[k];
            total += sent;
            n = 0;
            if (s->srtp == NULL)
                break;
        }
    }
    s->packets += (uint64_t)total;
    s->bytes += (uint64_t)bytes;
    *sent_bytes = bytes > INT32_MAX ? INT32_MAX : (int)bytes;
    return total;
}

/* ---- receive ---------------------------------------------------------------------- */

/* A readiness event reads at most this many datagrams (the event's one included). */
#define CAUCUS_DRAIN_BATCH 32
#define CAUCUS_RX_DONE 0
#define CAUCUS_RX_RTP 1
#define CAUCUS_RX_OTHER 2
#define CAUCUS_RX_UNKNOWN 3

/* What a datagram is by its first two bytes (caucus_classify). */
#define CAUCUS_KIND_OTHER 0     /* not RTP or RTCP: STUN, DTLS, ... (aioice's) */
#define CAUCUS_KIND_RTP 1
#define CAUCUS_KIND_RTCP 2      /* packet types 192-208: aiortc's SRTCP path takes them */
#define CAUCUS_KIND_MALFORMED 3 /* RTCP types 209-223, or RTP too short for its header */

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* TrackStats.on_data: count one decrypted RTP packet of the track, arrived at ``now``
   (CLOCK_REALTIME) and ``monotonic`` (CLOCK_MONOTONIC) seconds.  Payload bounds as
   sfu.rtp_header.payload_bounds (0, 0 for a packet aiortc would reject). Returns 1 when
   counted, 0 when ignored (too short, another SSRC). */
static int track_packet(caucus_track *t, const unsigned char *data, int len, double now,
                        double monotonic)
{
    if (len < 12)
        return 0;
    uint8_t first = data[0], second = data[1];
    uint16_t sequence = (uint16_t)(data[2] << 8 | data[3]);
    uint32_t timestamp = get32(data + 4);
    uint32_t ssrc = get32(data + 8);
    int start = 12 + ((first & 0x0F) << 2), end = len;
    if (first & 0x10) {
        if (end < start + 4)
            start = end = 0;
        else
            start += 4 + ((data[start + 2] << 8 | data[start + 3]) << 2);
    }
    if (end && (first & 0x20)) {
        int padding = data[len - 1];
        if (!padding || padding > end - start)
            start = end = 0;
        else
            end -= padding;
    }
    if (start > end)
        start = end = 0;
    if (!t->started) {
        t->started = 1;
        t->ssrc = ssrc;
        t->base_seq = sequence;
        t->max_seq = (int64_t)sequence - 1;
    } else if (ssrc != t->ssrc) {
        return 0;
    }
    t->packets++;
    t->bytes += (uint64_t)(end - start);
    int64_t seq = (int64_t)sequence + t->cycles;
    if (seq < t->max_seq - 0x8000) {
        t->cycles += 0x10000;
        seq += 0x10000;
    }
    if (seq > t->max_seq)
        t->max_seq = seq;
    double transit = now - (double)timestamp / t->clock_rate;
    if (t->has_transit) {
        double d = transit - t->last_transit;
        t->jitter_s += ((d < 0 ? -d : d) - t->jitter_s) / 16;
    }
    t->has_transit = 1;
    t->last_transit = transit;
    t->has_packet = 1;
    t->last_packet_at = monotonic;
    if ((second & 0x80) || t->every_packet_a_frame) {
        t->frames++;
        if (!t->has_first_frame) {
            t->has_first_frame = 1;
            t->first_frame_at = t->last_packet_at;
        }
        if (end - start >= STAMP_SIZE && memcmp(data + end - STAMP_SIZE, STAMP_MAGIC, 4) == 0) {
            const unsigned char *p = data + end - 8;
            uint64_t sent_us = (uint64_t)get32(p) << 32 | get32(p + 4);
            if (t->latency_count < CAUCUS_TRACK_LATENCIES)
                t->latencies[t->latency_count++] = (now * 1e6 - (double)sent_us) / 1000;
            else
                t->latency_dropped++;
        }
    }
    return 1;
}

int caucus_track_packet(caucus_track *t, const unsigned char *data, int len)
{
    return track_packet(t, data, len, clock_seconds(CLOCK_REALTIME),
                        clock_seconds(CLOCK_MONOTONIC));
}

/* Routes packets of ``ssrc`` with ``payload_type`` to ``t``.  0: added (or there),
   -1: the table is full (the packets keep going to Python). */
int caucus_route_add(caucus_receiver *r, uint32_t ssrc, uint8_t payload_type, caucus_track *t)
{
    for (int i = 0; i < r->routes_used; i++)
        if (r->routes[i].ssrc == ssrc && r->routes[i].payload_type == payload_type) {
            r->routes[i].track = t;
            return 0;
        }
    if (r->routes_used == CAUCUS_RECEIVER_ROUTES)
        return -1;
    r->routes[r->routes_used].ssrc = ssrc;
    r->routes[r->routes_used].payload_type = payload_type;
    r->routes[r->routes_used].track = t;
    r->routes[r->routes_used].producer = NULL;
    r->routes_used++;
    return 0;
}

/* ---- the producer: forwarding received packets without Python ---------------------- */

/* Routes packets of ``ssrc`` with ``payload_type`` to producer ``p``
   (caucus_producer_packet).  0: added (or replaced another), 1: it was there, -1: the
   table is full. */
int caucus_route_add_producer(caucus_receiver *r, uint32_t ssrc, uint8_t payload_type,
                              caucus_producer *p)
{
    for (int i = 0; i < r->routes_used; i++)
        if (r->routes[i].ssrc == ssrc && r->routes[i].payload_type == payload_type) {
            if (r->routes[i].producer == p)
                return 1;
            r->routes[i].track = NULL;
            r->routes[i].producer = p;
            return 0;
        }
    if (r->routes_used == CAUCUS_RECEIVER_ROUTES)
        return -1;
    r->routes[r->routes_used].ssrc = ssrc;
    r->routes[r->routes_used].payload_type = payload_type;
    r->routes[r->routes_used].track = NULL;
    r->routes[r->routes_used].producer = p;
    r->routes_used++;
    return 0;
}

/* Where the payload of the RTP packet starts and ends: after the CSRC list and the
   header extension, before the padding (sfu.rtp_header.payload_bounds).  0, or -1 for a
   packet aiortc's parser would reject. */
int caucus_payload_bounds(const unsigned char *data, int len, int *start, int *end)
{
    if (data == NULL || len < 12)
        return -1;
    int s = 12 + ((data[0] & 0x0F) << 2);
    int e = len;
    if (data[0] & 0x10) {
        if (e < s + 4)
            return -1;
        s += 4 + ((data[s + 2] << 8 | data[s + 3]) << 2);
    }
    if (data[0] & 0x20) {
        int padding = data[len - 1];
        if (padding == 0 || padding > e - s)
            return -1;
        e -= padding;
    }
    if (s > e)
        return -1;
    *start = s;
    *end = e;
    return 0;
}

/* The ssrc-audio-level element (RFC 6464) with ``extension_id``: its byte (voice
   activity in the top bit, the level below), or -1 when there is none or the block is
   malformed (sfu.rtp_header.audio_level, one- and two-byte headers). */
int caucus_audio_level(const unsigned char *data, int len, int extension_id)
{
    if (data == NULL || len < 12 || !(data[0] & 0x10) || extension_id == 0)
        return -1;
    int pos = 12 + ((data[0] & 0x0F) << 2);
    if (len < pos + 4)
        return -1;
    int profile = data[pos] << 8 | data[pos + 1];
    int end = pos + 4 + ((data[pos + 2] << 8 | data[pos + 3]) << 2);
    pos += 4;
    if (end > len)
        return -1;
    if (profile == 0xBEDE) {
        while (pos < end) {
            int byte = data[pos];
            if (byte == 0) {
                pos++;
                continue;
            }
            int id = byte >> 4, length = (byte & 0x0F) + 1;
            pos++;
            if (pos + length > end)
                return -1;
            if (id == extension_id)
                return data[pos];
            pos += length;
        }
    } else if (profile == 0x1000) {
        while (pos < end) {
            if (data[pos] == 0) {
                pos++;
                continue;
            }
            if (pos + 2 > end)
                return -1;
            int id = data[pos], length = data[pos + 1];
            pos += 2;
            if (pos + length > end)
                return -1;
            if (id == extension_id && length)
                return data[pos];
            pos += length;
        }
    }
    return -1;
}

/* abs-send-time now: 6.18 fixed-point seconds of NTP time (sfu.rtp_header.abs_send_time,
   from microseconds as aiortc's clock). */
static int64_t abs_send_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t high = (uint64_t)ts.tv_sec + 2208988800u;
    uint64_t low = (uint64_t)(ts.tv_nsec / 1000) * 0xFFFFFFFFu / 1000000u;
    return (int64_t)((((high << 32) | low) >> 14) & 0xFFFFFF);
}

/* The one-byte-header extension block (sfu.rtp_header.extension_block) at ``b``; its
   length (0: nothing to write).  The transport-wide number's element comes first, 00 00
   until the sink numbers the packet (number_packet). */
static int extension_block(unsigned char *b, int transport_cc_id, int abs_send_time_id,
                           int64_t send_time, int audio_level_id, int level)
{
    int n = 4;
    if (transport_cc_id) {
        b[n++] = (unsigned char)(transport_cc_id << 4 | 1);
        b[n++] = 0;
        b[n++] = 0;
    }
    if (abs_send_time_id && send_time >= 0) {
        b[n++] = (unsigned char)(abs_send_time_id << 4 | 2);
        b[n++] = (unsigned char)(send_time >> 16);
        b[n++] = (unsigned char)(send_time >> 8);
        b[n++] = (unsigned char)send_time;
    }
    if (audio_level_id && level >= 0) {
        b[n++] = (unsigned char)(audio_level_id << 4);
        b[n++] = (unsigned char)level;
    }
    if (n == 4)
        return 0;
    while (n % 4)
        b[n++] = 0;
    b[0] = 0xBE;
    b[1] = 0xDE;
    b[2] = (unsigned char)(((n - 4) / 4) >> 8);
    b[3] = (unsigned char)((n - 4) / 4);
    return n;
}

/* Holds a packet for retransmission (Producer's buffer); a payload too long for a slot
   leaves the slot empty. */
void caucus_producer_store(caucus_producer *p, uint16_t seq, uint32_t timestamp, int marker,
                           const unsigned char *payload, int length)
{
    if (p->buffer == NULL || p->buffer_size <= 0)
        return;
    caucus_stored *slot = &p->buffer[seq & (p->buffer_size - 1)];
    if (payload == NULL || length < 0 || length > CAUCUS_STORED_PAYLOAD) {
        slot->valid = 0;
        return;
    }
    slot->seq = seq;
    slot->timestamp = timestamp;
    slot->marker = (uint8_t)(marker != 0);
    slot->length = length;
    memcpy(slot->payload, payload, (size_t)length);
    slot->valid = 1;
}

/* Forgets every held packet (a new stream began). */
void caucus_producer_clear(caucus_producer *p)
{
    for (int i = 0; p->buffer != NULL && i < p->buffer_size; i++)
        p->buffer[i].valid = 0;
}

/* Producer.on_rtp_data for an ordinary packet, in C: the budget, the reception
   statistics, the retransmission buffer and, for each consumer, the extension block +
   payload shared by consumers with the same ids and caucus_write.  Returns 1 when it
   did all of it, 0 (nothing changed) when Python must: not the current SSRC or the
   media payload type, closed, a recorder attached, a keyframe awaited or pending, over
   budget, malformed, a gap to NACK, a consumer started but paused or not bound, a
   consumer not compiled.  ``send_time`` is the abs-send-time to write (< 0: now). */
static int producer_packet(caucus_producer *p, const unsigned char *data, int len,
                           int64_t arrival_ms, int64_t send_time, caucus_receiver *r)
{
    if (p == NULL || data == NULL || len < 12 || p->closed || p->sinks || p->keyframe_waiters
        || p->keyframe_pending || !p->has_ssrc || !p->outputs_complete)
        return 0;
    uint8_t second = data[1];
    if ((second & 0x7F) != p->payload_type || get32(data + 8) != p->ssrc)
        return 0;
    int start, end;
    if (caucus_payload_bounds(data, len, &start, &end) != 0 || start >= end
        || end - start > CAUCUS_BUFFER - 16)
        return 0;
    int64_t elapsed = arrival_ms - p->budget_at;
    double tokens;
    if (elapsed > 0) {
        tokens = p->budget_tokens + (double)elapsed * p->budget_per_ms;
        if (tokens > p->budget_depth)
            tokens = p->budget_depth;
        tokens -= len;
    } else {
        tokens = p->budget_tokens - len;
    }
    if (tokens < 0)
        return 0;
    uint16_t seq = (uint16_t)(data[2] << 8 | data[3]);
    uint32_t timestamp = get32(data + 4);
    uint16_t delta = (uint16_t)(seq - p->max_seq);
    if (delta > 1 && delta < 0x8000 && p->buffer_size > 0)
        return 0;
    for (int i = 0; i < p->outputs_used; i++) {
        caucus_consumer *c = p->outputs[i].consumer;
        if (c == NULL)
            return 0;
        if (c->paused) {
            if (c->started)
                return 0;
            continue;
        }
        if (c->sink == NULL || c->sink->srtp == NULL)
            return 0;
    }
    /* from here on, the packet is this function's */
    if (elapsed > 0)
        p->budget_at = arrival_ms;
    p->budget_tokens = tokens;
    const unsigned char *payload = data + start;
    int payload_len = end - start;
    p->packets++;
    p->bytes += (uint64_t)payload_len;
    if (delta > 0 && delta < 0x8000) {
        if (seq < p->max_seq)
            p->cycles += 0x10000;
        p->max_seq = seq;
        p->last_timestamp = timestamp;
        p->last_arrival_ms = arrival_ms;
    }
    int marker = second >> 7;
    caucus_producer_store(p, seq, timestamp, marker, payload, payload_len);
    int keys[CAUCUS_TAILS], lengths[CAUCUS_TAILS], built = 0, level = -2;
    if (p->audio_level_id) {
        level = caucus_audio_level(data, len, p->audio_level_id);
        if (level >= 0) {
            p->level_packets++;
            p->level_sum += (uint64_t)(level & 0x7F);
            p->level_voiced += (uint64_t)(level >> 7);
        }
    }
    for (int i = 0; i < p->outputs_used; i++) {
        caucus_output *o = &p->outputs[i];
        caucus_consumer *c = o->consumer;
        if (c->paused)
            continue;
        const unsigned char *tail = payload;
        int tail_len = payload_len;
        uint8_t first_byte = 0x80;
        if (o->abs_send_time_id || o->audio_level_id || o->transport_cc_id) {
            int key = o->transport_cc_id << 16 | o->abs_send_time_id << 8 | o->audio_level_id;
            int k = 0;
            while (k < built && keys[k] != key)
                k++;
            if (k == built) {
                if (built == CAUCUS_TAILS)
                    k = CAUCUS_TAILS - 1; /* rebuilt in the last one */
                else
                    built++;
                if (o->abs_send_time_id && send_time < 0)
                    send_time = abs_send_time_now();
                if (o->audio_level_id && level == -2)
                    level = caucus_audio_level(data, len, p->audio_level_id);
                unsigned char *b = p->tails[k];
                int n = extension_block(b, o->transport_cc_id, o->abs_send_time_id, send_time,
                                        o->audio_level_id, o->audio_level_id ? level : -1);
                memcpy(b + n, payload, (size_t)payload_len);
                keys[k] = key;
                lengths[k] = n;
            }
            if (lengths[k]) {
                tail = p->tails[k];
                tail_len = lengths[k] + payload_len;
                first_byte = 0x90;
            }
        }
        write_consumer(c, first_byte, marker, seq, timestamp, arrival_ms, tail, tail_len, r);
    }
    p->forwarded_here++;
    return 1;
}

int caucus_producer_packet(caucus_producer *p, const unsigned char *data, int len,
                           int64_t arrival_ms, int64_t send_time)
{
    return producer_packet(p, data, len, arrival_ms, send_time, NULL);
}

/* The one demultiplexing rule of the receive paths (sfu.rtc.demux.classify is the
   same in Python).  RFC 7983: a first byte of 128-191 is RTP or RTCP; RFC 5761 §4: RTCP
   when the second byte (the packet type) is 192-223, RTP otherwise.  aiortc's SRTCP path
   (aiortc.rtp.is_rtcp) takes packet types 192-208 only and would unprotect 209-223 as
   RTP, which RFC 5761 forbids (those are RTP payload types 64-95 with the marker bit):
   they are malformed here and dropped.  RTP needs its 12-byte header and more (the SRTP
   authentication tag). */
int caucus_classify(const unsigned char *b, int n)
{
    if (b == NULL || n < 2 || b[0] < 128 || b[0] > 191)
        return CAUCUS_KIND_OTHER;
    if (b[1] >= 192 && b[1] <= 223)
        return b[1] <= 208 ? CAUCUS_KIND_RTCP : CAUCUS_KIND_MALFORMED;
    return n > 12 ? CAUCUS_KIND_RTP : CAUCUS_KIND_MALFORMED;
}

/* Replaces the table of SSRCs that reach libsrtp while ``filter`` is set.  0, or -1 (the
   table is left as it was) when ``n`` is negative or more than CAUCUS_ALLOWED_SSRCS. */
int caucus_receiver_allow(caucus_receiver *r, const uint32_t *ssrcs, int n)
{
    if (n < 0 || n > CAUCUS_ALLOWED_SSRCS || (n > 0 && ssrcs == NULL))
        return -1;
    for (int i = 0; i < n; i++)
        r->allowed[i] = ssrcs[i];
    r->allowed_count = n;
    return 0;
}

/* Whether the clear-text SSRC of the RTP datagram in buf may reach libsrtp. */
static int admitted(const caucus_receiver *r)
{
    if (!r->filter)
        return 1;
    uint32_t ssrc = get32(r->buf + 8);
    int count = r->allowed_count < CAUCUS_ALLOWED_SSRCS ? r->allowed_count : CAUCUS_ALLOWED_SSRCS;
    for (int i = 0; i < count; i++)
        if (r->allowed[i] == ssrc)
            return 1;
    return 0;
}

/* libsrtp unprotects the ``length`` bytes in buf in place; 0 when it did (``length`` is
   then the packet's), -1 when it failed or there is no context (counted). */
static int unprotect_buf(caucus_receiver *r, int *length)
{
    if (r->srtp == NULL || r->unprotect == NULL || *length < 12 || *length > CAUCUS_BUFFER) {
        r->failed++;
        return -1;
    }
    if (r->unprotect(r->srtp, r->buf, length) != 0 || *length < 12 || *length > CAUCUS_BUFFER) {
        r->failed++;
        return -1;
    }
    return 0;
}

/* Unprotects the RTP datagram of ``length`` bytes in buf and counts it when a route
   takes it: CAUCUS_RX_DONE; or leaves the packet in buf for Python: CAUCUS_RX_RTP; or,
   for an SSRC the filter does not let through, leaves the datagram in buf still
   protected: CAUCUS_RX_UNKNOWN. */
static int take_at(caucus_receiver *r, int length, double now, double monotonic)
{
    if (length > CAUCUS_BUFFER) {
        r->too_large++;
        r->failed++;
        return CAUCUS_RX_DONE;
    }
    if (length <= 12) {
        r->malformed++;
        return CAUCUS_RX_DONE;
    }
    if (!admitted(r)) {
        r->length = length;
        r->unknown_ssrc++;
        return CAUCUS_RX_UNKNOWN;
    }
    int len = length;
    if (unprotect_buf(r, &len) != 0)
        return CAUCUS_RX_DONE;
    r->length = len;
    uint32_t ssrc = get32(r->buf + 8);
    uint8_t payload_type = r->buf[1] & 0x7F;
    for (int i = 0; i < r->routes_used; i++)
        if (r->routes[i].ssrc == ssrc && r->routes[i].payload_type == payload_type) {
            if (now == 0)
                now = clock_seconds(CLOCK_REALTIME), monotonic = clock_seconds(CLOCK_MONOTONIC);
            caucus_producer *p = r->routes[i].producer;
            if (p != NULL) {
                /* arrival in ms since 1900, as aiortc's (sfu.rtc.receive.NTP_EPOCH_MS) */
                int64_t arrival_ms = (int64_t)(now * 1000) + INT64_C(2208988800000);
                if (!producer_packet(p, r->buf, len, arrival_ms, -1, r))
                    return CAUCUS_RX_RTP;
                r->forwarded++;
                return CAUCUS_RX_DONE;
            }
            if (track_packet(r->routes[i].track, r->buf, len, now, monotonic))
                r->counted++;
            return CAUCUS_RX_DONE;
        }
    return CAUCUS_RX_RTP;
}

/* After CAUCUS_RX_UNKNOWN, when Python admitted the SSRC: unprotects the datagram held
   in buf in place.  CAUCUS_RX_RTP (the packet is in buf, ``length`` bytes) or
   CAUCUS_RX_DONE (it failed, counted). */
int caucus_unprotect_held(caucus_receiver *r)
{
    int len = r->length;
    if (unprotect_buf(r, &len) != 0)
        return CAUCUS_RX_DONE;
    r->length = len;
    return CAUCUS_RX_RTP;
}

/* Reads the receiver's socket until it is empty or its budget is spent, unprotecting
   and counting as take() does; a datagram carrying the kernel's arrival time
   (SO_TIMESTAMPNS, set by caucus_poller_add) is counted at that time.  Stops at what
   Python must see, left in buf (CAUCUS_RX_RTP, CAUCUS_RX_OTHER). */
static int drain(caucus_receiver *r)
{
    union {
        struct cmsghdr header;
        unsigned char space[CMSG_SPACE(sizeof(struct timespec))];
    } control;
    double offset = 0; /* CLOCK_REALTIME - CLOCK_MONOTONIC, read at the first stamp */
    while (r->fd >= 0 && r->budget > 0) {
        r->budget--;
        struct iovec iov = {.iov_base = r->buf, .iov_len = sizeof r->buf};
        struct msghdr msg = {
            .msg_name = r->addr,
            .msg_namelen = sizeof r->addr,
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.space,
            .msg_controllen = sizeof control.space,
        };
        ssize_t n = recvmsg(r->fd, &msg, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return CAUCUS_RX_DONE; /* empty; an error is the transport's to report */
        }
        r->datagrams++;
        r->addrlen = msg.msg_namelen < sizeof r->addr ? (int)msg.msg_namelen : (int)sizeof r->addr;
        if (n > (ssize_t)sizeof r->buf)
            n = sizeof r->buf; /* cannot be (buf holds the largest UDP datagram) */
        int kind = caucus_classify(r->buf, (int)n);
        if (kind == CAUCUS_KIND_MALFORMED) {
            r->malformed++;
            continue;
        }
        if (kind == CAUCUS_KIND_RTCP && r->drop_rtcp) {
            r->rtcp_dropped++;
            continue;
        }
        if (kind != CAUCUS_KIND_RTP) {
            r->length = (int)n;
            return CAUCUS_RX_OTHER;
        }
        double now = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS
                && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
            }
        if (now != 0 && offset == 0)
            offset = clock_seconds(CLOCK_REALTIME) - clock_seconds(CLOCK_MONOTONIC);
        int result = take_at(r, (int)n, now, now - offset);
        if (result != CAUCUS_RX_DONE)
            return result;
    }
    return CAUCUS_RX_DONE;
}

/* The direct receive path of one readiness event.  ``data`` (an RTP datagram of
   ``length`` bytes, the one the event brought) starts the event; NULL continues it after
   Python handled what the previous call left in buf.  Then the socket is read until it
   is empty or CAUCUS_DRAIN_BATCH datagrams were read.  Returns CAUCUS_RX_DONE,
   CAUCUS_RX_RTP (buf holds an unprotected packet no route takes, ``length`` bytes),
   CAUCUS_RX_UNKNOWN (buf holds a still protected RTP datagram whose SSRC the filter does
   not let through, ``length`` bytes: see caucus_unprotect_held) or CAUCUS_RX_OTHER (buf
   holds a datagram that is not RTP, from ``addr``, for the caller to hand on). */
static int receive_event(caucus_receiver *r, const unsigned char *data, int length)
{
    if (data != NULL) {
        r->budget = CAUCUS_DRAIN_BATCH - 1;
        if (length > CAUCUS_BUFFER) {
            r->too_large++;
            r->failed++;
        } else if (caucus_classify(data, length) != CAUCUS_KIND_RTP) {
            r->malformed++; /* a negative length among them */
        } else {
            memcpy(r->buf, data, (size_t)length);
            int result = take_at(r, length, 0, 0);
            if (result != CAUCUS_RX_DONE)
                return result;
        }
    }
    return drain(r);
}

/* (What the packets forwarded meanwhile wait for: they leave, one sendmmsg per
   subscriber, before Python gets what this returns.) */
int caucus_receive(caucus_receiver *r, const unsigned char *data, int length)
{
    int result = receive_event(r, data, length);
    flush_pending(r);
    return result;
}

int caucus_poller_open(caucus_poller *p)
{
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->ready = p->next = 0;
    p->current = NULL;
    return p->epfd;
}

/* Adds the receiver's socket; its datagrams then carry the kernel's arrival time
   (SO_TIMESTAMPNS).  The receiver reads and is registered through a duplicate of the
   descriptor that it owns until caucus_poller_remove: when the socket's owner closes its
   own descriptor and the number is given to another socket, removing this receiver still
   removes this socket, never the other one.  0, or -errno. */
int caucus_poller_add(caucus_poller *p, caucus_receiver *r)
{
    if (r->registered)
        return 0;
    int on = 1;
    if (setsockopt(r->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0)
        return -errno;
    int fd = fcntl(r->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct epoll_event event = {.events = EPOLLIN, .data = {.ptr = r}};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &event) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    r->fd = fd;
    r->registered = 1;
    return 0;
}

/* Removes it (closing the receiver's duplicate: its fd is -1 afterwards), and from the
   receivers the current poll has still to drain.  0. */
int caucus_poller_remove(caucus_poller *p, caucus_receiver *r)
{
    if (r->registered) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, r->fd, NULL);
        close(r->fd);
        r->fd = -1;
    }
    r->registered = 0;
    for (int i = p->next; i < p->ready; i++)
        if (p->receivers[i] == r)
            p->receivers[i] = NULL;
    if (p->current == r)
        p->current = NULL;
    return 0;
}

/* One poll: ``start`` waits for nothing and collects the receivers whose socket holds
   datagrams; each is then drained.  Returns CAUCUS_RX_DONE when all were, or what
   caucus_receive returns, with ``current`` the receiver whose buf holds it: call again
   with start 0 to go on. */
int caucus_poll(caucus_poller *p, int start)
{
    if (start) {
        struct epoll_event events[CAUCUS_POLL_EVENTS];
        int n = epoll_wait(p->epfd, events, CAUCUS_POLL_EVENTS, 0);
        p->ready = n > 0 ? n : 0;
        for (int i = 0; i < p->ready; i++) {
            p->receivers[i] = events[i].data.ptr;
            p->receivers[i]->budget = 4 * CAUCUS_DRAIN_BATCH;
        }
        p->next = 0;
        p->polls++;
    }
    while (p->next < p->ready) {
        caucus_receiver *r = p->receivers[p->next];
        if (r != NULL) {
            uint64_t before = r->datagrams;
            int result = drain(r);
            flush_pending(r);
            p->datagrams += r->datagrams - before;
            if (result != CAUCUS_RX_DONE) {
                p->current = r;
                return result;
            }
        }
        p->next++;
    }
    p->current = NULL;
    return CAUCUS_RX_DONE;
}
"""
)

#: Every warning is an error: the module is small enough to keep at none.
CFLAGS = [
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fstack-protector-strong",
    "-U_FORTIFY_SOURCE",
    "-D_FORTIFY_SOURCE=2",
]
#: The sanitizer build (``make sanitize``): AddressSanitizer and UndefinedBehaviorSanitizer,
#: every finding fatal; ``-fno-wrapv`` undoes CPython's ``-fwrapv`` so that a signed
#: overflow is reported instead of wrapping.  Loaded with ``LD_PRELOAD`` of gcc's libasan.
SANITIZE_CFLAGS = [
    "-O1",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fno-omit-frame-pointer",
    "-fno-wrapv",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=undefined",
]
SANITIZE_LDFLAGS = ["-fsanitize=address,undefined"]

#: Lets ``sfu._fastpath`` be imported from a sanitizer build put first on PYTHONPATH,
#: while ``sfu`` itself stays the source tree's package (written beside the build).
SITECUSTOMIZE = """\
import importlib.machinery
import importlib.util
import sys

_MODULE = {path!r}


class _SanitizedFastpath:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "sfu._fastpath":
            return None
        loader = importlib.machinery.ExtensionFileLoader(name, _MODULE)
        return importlib.util.spec_from_file_location(name, _MODULE, loader=loader)


sys.meta_path.insert(0, _SanitizedFastpath)
"""


def builder(sanitize: bool = False) -> FFI:
    """The cffi builder of ``sfu._fastpath``; with ``sanitize``, the sanitizer build."""
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        "sfu._fastpath",
        SOURCE,
        extra_compile_args=SANITIZE_CFLAGS if sanitize else CFLAGS,
        extra_link_args=SANITIZE_LDFLAGS if sanitize else [],
    )
    return ffi


ffibuilder = builder()


def build_sanitized(directory: str) -> str:
    """Compile the sanitizer build into ``directory`` (not into the source tree, whose
    module the normal test run keeps using) and write the ``sitecustomize.py`` that makes
    ``import sfu._fastpath`` load it when ``directory`` is first on PYTHONPATH.  Returns
    the module's path."""
    import glob
    import os

    directory = os.path.abspath(directory)
    for old in glob.glob(os.path.join(directory, "sfu", "_fastpath*.so")):
        os.remove(old)
    path = builder(sanitize=True).compile(tmpdir=directory)
    with open(os.path.join(directory, "sitecustomize.py"), "w") as out:
        out.write(SITECUSTOMIZE.format(path=path))
    return path


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "--sanitize":
        sys.exit("usage: python sfu/_fastpath_build.py --sanitize DIRECTORY")
    print(build_sanitized(sys.argv[2]))

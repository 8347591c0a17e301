// Who is speaking, from the browser's own statistics: the audioLevel of each inbound-rtp
// audio stream of the subscribe connection (the people this page receives) and of the
// media-source of the publish connection (this page's own microphone). A person counts
// as speaking from a level above SPEAKING_LEVEL until HOLD_MS after the last one.

const SPEAKING_LEVEL = 0.04;
const HOLD_MS = 900;
const POLL_MS = 350;

/**
 * Polls `source()` ({publishPc, subscribePc, tracks}) and calls `onChange(speaking, self)`
 * with the set of participant ids speaking and whether this page's own person speaks,
 * whenever either changes.
 */
export function speakingDetector(source, onChange) {
  const heard = new Map(); // participant id (or "self") -> last time above the level
  let last = "";
  let timer = null;

  async function levels() {
    const { publishPc, subscribePc, tracks } = source();
    const now = Date.now();
    if (subscribePc) {
      const owners = new Map(tracks.filter((track) => track.kind === "audio").map((track) => [track.mid, track]));
      const stats = await subscribePc.getStats();
      stats.forEach((report) => {
        if (report.type === "inbound-rtp" && report.kind === "audio" && owners.has(report.mid)) {
          if ((report.audioLevel || 0) > SPEAKING_LEVEL) {
            heard.set(owners.get(report.mid).participant_id, now);
          }
        }
      });
    }
    if (publishPc) {
      const stats = await publishPc.getStats();
      stats.forEach((report) => {
        if (report.type === "media-source" && report.kind === "audio" && (report.audioLevel || 0) > SPEAKING_LEVEL) {
          heard.set("self", now);
        }
      });
    }
    const speaking = new Set();
    for (const [who, at] of heard) {
      if (now - at <= HOLD_MS) {
        speaking.add(who);
      } else {
        heard.delete(who);
      }
    }
    const self = speaking.delete("self");
    const key = `${self}|${[...speaking].sort().join(",")}`;
    if (key !== last) {
      last = key;
      onChange(speaking, self);
    }
  }

  async function poll() {
    try {
      await levels();
    } catch {
      // a connection closed between the check and getStats(): the next poll sees it gone
    }
    timer = setTimeout(poll, POLL_MS);
  }

  return {
    start() {
      if (timer === null) {
        timer = setTimeout(poll, POLL_MS);
      }
    },
    stop() {
      clearTimeout(timer);
      timer = null;
      heard.clear();
      last = "";
    },
  };
}

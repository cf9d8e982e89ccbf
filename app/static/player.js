// The transcript player: the chosen file plays in the page; the transcript is segments with their
// start times (and speakers, in colour), built from a stream's word and segment events (or a job's
// verbose_json, as the same events); clicking a segment or a word plays from there, and the word
// being played is highlighted.
const COLOURS = ["#2457d6", "#c2410c", "#15803d", "#9333ea", "#be123c", "#0e7490", "#a16207", "#4d7c0f"];

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hms = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const [h, m, sec] = hms.map((n) => String(n).padStart(2, "0"));
  return hms[0] ? `${hms[0]}:${m}:${sec}` : `${Number(m)}:${sec}`;
}

export function speakerColour(label) {
  // A, B, ..., Z, AA, ...: the same speaker always gets the same colour.
  let index = 0;
  for (const c of label) index = index * 26 + (c.charCodeAt(0) - 64);
  return COLOURS[(index - 1) % COLOURS.length];
}

export class Player {
  constructor(mediaBox, transcriptBox) {
    this.mediaBox = mediaBox;
    this.box = transcriptBox;
    this.media = null;
    this.url = null;
    this.words = []; // {start, end, el}, in time order, for the highlight
    this.current = null;
    this.clear();
    this.box.addEventListener("click", (event) => {
      const target = event.target.closest("[data-start]");
      if (target) this.playFrom(Number(target.dataset.start));
    });
  }

  load(file) {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = URL.createObjectURL(file);
    const video = file.type.startsWith("video/");
    const media = document.createElement(video ? "video" : "audio");
    media.id = "media";
    media.controls = true;
    media.preload = "metadata";
    media.src = this.url;
    media.addEventListener("timeupdate", () => this.highlight());
    media.addEventListener("play", () => this.follow());
    this.mediaBox.replaceChildren(media);
    this.mediaBox.hidden = false;
    this.media = media;
  }

  duration() {
    const d = this.media?.duration;
    return Number.isFinite(d) ? d : null;
  }

  playFrom(seconds) {
    if (!this.media) return;
    this.media.currentTime = seconds;
    this.media.play().catch(() => {}); // a browser may refuse to play; the position is still set
    this.highlight();
  }

  follow() {
    // timeupdate fires ~4 times a second: too coarse for a word; follow the frames while playing.
    const step = () => {
      this.highlight();
      if (this.media && !this.media.paused) requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }

  highlight() {
    if (!this.media) return;
    const t = this.media.currentTime;
    let lo = 0, hi = this.words.length - 1, found = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.words[mid].start <= t) { found = this.words[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    const el = found && t < found.end + 0.5 ? found.el : null;
    if (el === this.current) return;
    this.current?.classList.remove("current");
    el?.classList.add("current");
    this.current = el;
  }

  clear() {
    this.segments = new Map(); // id -> {start, end, text, speaker, words: []}
    this.pending = ""; // text whose segments have not come yet (a diarized stream's, until its end)
    this.render();
  }

  onEvent(event) {
    if (event.type === "transcript.segment") {
      const s = event.segment;
      const known = this.segments.get(s.id);
      this.segments.set(s.id, { ...s, words: known?.words || [] });
      this.pending = "";
    } else if (event.type === "transcript.word") {
      const id = event.segment ?? 0;
      if (!this.segments.has(id)) this.segments.set(id, { id, start: event.start, text: "", words: [], wordsOnly: true });
      this.segments.get(id).words.push(event);
    } else if (event.type === "transcript.text.delta" && !this.segments.size) {
      this.pending += event.delta;
    } else if (event.type === "transcript.text.done" && !this.segments.size) {
      this.pending = event.text;
    }
  }

  show(body) {
    // A whole verbose_json body (a job's result), fed through the stream's events so both show alike.
    this.clear();
    for (const segment of body.segments || []) this.onEvent({ type: "transcript.segment", segment });
    for (const word of body.words || []) this.onEvent({ type: "transcript.word", ...word });
    if (!this.segments.size) this.onEvent({ type: "transcript.text.done", text: body.text });
    this.render();
  }

  render() {
    const rows = [];
    this.words = [];
    for (const s of [...this.segments.values()].sort((a, b) => a.start - b.start)) {
      const row = document.createElement("p");
      row.className = "segment";
      row.dataset.start = s.start;
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = clock(s.start);
      row.append(time);
      if (s.speaker) {
        const who = document.createElement("span");
        who.className = "speaker";
        who.textContent = `Speaker ${s.speaker}`;
        who.style.color = speakerColour(s.speaker);
        row.style.borderLeftColor = speakerColour(s.speaker);
        row.append(who);
      }
      const text = document.createElement("span");
      text.className = "text";
      if (s.words.length) {
        for (const w of s.words) {
          const word = document.createElement("span");
          word.className = "word";
          word.dataset.start = w.start;
          word.textContent = w.word;
          text.append(word, " ");
          this.words.push({ start: w.start, end: w.end, el: word });
        }
      } else {
        text.textContent = s.text.trim();
      }
      row.append(text);
      rows.push(row);
    }
    if (this.pending) {
      const row = document.createElement("p");
      row.className = "segment pending";
      row.textContent = this.pending;
      rows.push(row);
    }
    this.words.sort((a, b) => a.start - b.start);
    this.box.replaceChildren(...rows);
    this.current = null;
    this.highlight();
  }
}

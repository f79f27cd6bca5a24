// A two-channel waveform on a canvas: the agent's track above the customer's,
// each labelled, with a playhead; a click seeks the audio element.
//
// The peaks (0..1 per point and channel) come from
// GET /api/v1/recordings/{id}/peaks; both tracks share one time axis because
// the recording fills gaps with silence.

const COLOURS = { agent: "#2563eb", customer: "#16a34a", playhead: "#dc2626", grid: "#cbd5e1" };

export class Waveform {
  constructor(canvas, audio, labels) {
    this.canvas = canvas;
    this.audio = audio;
    this.labels = labels; // {agent, customer}: the track names in the page's language
    this.peaks = null;
    canvas.addEventListener("click", (event) => this.seekTo(event));
    for (const name of ["timeupdate", "seeked", "loadedmetadata", "play"]) {
      audio.addEventListener(name, () => this.draw());
    }
    audio.addEventListener("play", () => this.follow());
    window.addEventListener("resize", () => this.draw());
  }

  show(peaks) {
    this.peaks = peaks;
    const loudest = (values) => values.reduce((a, b) => Math.max(a, b), 0);
    // What the page shows is also readable by tests and assistive tools.
    this.canvas.dataset.points = String(peaks.channels.agent.length);
    this.canvas.dataset.agentPeak = loudest(peaks.channels.agent).toFixed(4);
    this.canvas.dataset.customerPeak = loudest(peaks.channels.customer).toFixed(4);
    this.canvas.dataset.durationMs = String(peaks.duration_ms);
    this.draw();
  }

  clear() {
    this.peaks = null;
    for (const key of ["points", "agentPeak", "customerPeak", "durationMs"]) {
      delete this.canvas.dataset[key];
    }
    this.draw();
  }

  durationS() {
    if (Number.isFinite(this.audio.duration) && this.audio.duration > 0) return this.audio.duration;
    return this.peaks ? this.peaks.duration_ms / 1000 : 0;
  }

  seekTo(event) {
    const duration = this.durationS();
    if (!duration) return;
    const box = this.canvas.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    this.audio.currentTime = fraction * duration;
    this.draw();
  }

  follow() {
    const step = () => {
      this.draw();
      if (!this.audio.paused && !this.audio.ended) window.requestAnimationFrame(step);
    };
    window.requestAnimationFrame(step);
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    const track = height / 2;
    g.strokeStyle = COLOURS.grid;
    g.beginPath();
    g.moveTo(0, track);
    g.lineTo(width, track);
    g.stroke();
    if (this.peaks) {
      this.drawTrack(g, this.peaks.channels.agent, 0, track, COLOURS.agent, width);
      this.drawTrack(g, this.peaks.channels.customer, track, track, COLOURS.customer, width);
    }
    g.font = `${12 * ratio}px sans-serif`;
    g.fillStyle = COLOURS.agent;
    g.fillText(this.labels.agent, 6 * ratio, 14 * ratio);
    g.fillStyle = COLOURS.customer;
    g.fillText(this.labels.customer, 6 * ratio, track + 14 * ratio);
    const duration = this.durationS();
    if (duration) {
      const x = Math.min(1, this.audio.currentTime / duration) * width;
      g.strokeStyle = COLOURS.playhead;
      g.lineWidth = 2 * ratio;
      g.beginPath();
      g.moveTo(x, 0);
      g.lineTo(x, height);
      g.stroke();
      g.lineWidth = 1;
      canvas.dataset.playheadX = (x / width).toFixed(4);
    }
  }

  drawTrack(g, values, top, height, colour, width) {
    const middle = top + height / 2;
    const span = width / Math.max(1, values.length);
    g.fillStyle = colour;
    values.forEach((value, i) => {
      const half = Math.max(0.5, value * (height / 2) * 0.9);
      g.fillRect(i * span, middle - half, Math.max(1, span - 0.5), half * 2);
    });
  }
}

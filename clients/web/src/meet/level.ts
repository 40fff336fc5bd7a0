// Loudness of an audio track (WebAudio analyser), for the microphone meter before joining and
// the "speaking" ring on each tile.

let shared: AudioContext | null = null;

function context(): AudioContext {
  shared ??= new AudioContext();
  // Autoplay rules may start it suspended; a click (Join) resumes it.
  if (shared.state === 'suspended') void shared.resume().catch(() => {});
  return shared;
}

/** Speaking above this RMS level (0–1). */
export const SPEAKING_LEVEL = 0.02;

/** Calls `onLevel(rms)` about ten times a second until the returned function is called. */
export function watchLevel(track: MediaStreamTrack, onLevel: (rms: number) => void): () => void {
  let ctx: AudioContext;
  try {
    ctx = context();
  } catch {
    return () => {};
  }
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const timer = window.setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    onLevel(Math.sqrt(sum / buf.length));
  }, 100);
  return () => {
    clearInterval(timer);
    source.disconnect();
  };
}

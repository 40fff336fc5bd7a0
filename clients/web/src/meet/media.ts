// The local camera and microphone: opening them (with a chosen device), switching them on and
// off, and a screen share that stands in for the camera while it lasts.

export interface DeviceChoice {
  audioId: string | null;
  videoId: string | null;
}

/** One person's outgoing media. `changed` runs after any track is replaced or toggled. */
export class LocalMedia {
  readonly stream = new MediaStream();
  audio: MediaStreamTrack | null = null;
  camera: MediaStreamTrack | null = null;
  screen: MediaStreamTrack | null = null;
  micOn = true;
  camOn = true;
  choice: DeviceChoice = { audioId: null, videoId: null };
  changed: () => void = () => {};

  /** The track that goes out as video: the screen while sharing, else the camera. */
  get video(): MediaStreamTrack | null {
    return this.screen ?? (this.camOn ? this.camera : null);
  }

  /** Opens the chosen (or default) devices; what cannot be opened stays null. */
  async open(): Promise<void> {
    this.stopTracks();
    const audio = this.choice.audioId ? { deviceId: { exact: this.choice.audioId } } : true;
    const video = this.choice.videoId ? { deviceId: { exact: this.choice.videoId } } : { width: 640, height: 360 };
    const got = await getMedia({ audio, video: this.camOn ? video : false });
    this.audio = got?.getAudioTracks()[0] ?? null;
    this.camera = got?.getVideoTracks()[0] ?? null;
    if (!got) {
      // Maybe only one of them is missing or refused: try each alone.
      this.audio = (await getMedia({ audio }))?.getAudioTracks()[0] ?? null;
      if (this.camOn) this.camera = (await getMedia({ video }))?.getVideoTracks()[0] ?? null;
    }
    if (this.audio) this.audio.enabled = this.micOn;
    this.sync();
  }

  setMic(on: boolean): void {
    this.micOn = on;
    if (this.audio) this.audio.enabled = on;
    this.changed();
  }

  /** Camera off releases the device (its light goes out); on opens it again. */
  async setCam(on: boolean): Promise<void> {
    this.camOn = on;
    if (!on) {
      this.camera?.stop();
      this.camera = null;
    } else if (!this.camera) {
      const video = this.choice.videoId ? { deviceId: { exact: this.choice.videoId } } : { width: 640, height: 360 };
      this.camera = (await getMedia({ video }))?.getVideoTracks()[0] ?? null;
    }
    this.sync();
  }

  /** Starts sharing the screen; false when the person cancelled or the browser refused. */
  async shareScreen(): Promise<boolean> {
    try {
      const s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      const track = s.getVideoTracks()[0];
      if (!track) return false;
      this.screen = track;
      track.addEventListener('ended', () => this.stopScreen());
      this.sync();
      return true;
    } catch {
      return false;
    }
  }

  stopScreen(): void {
    if (!this.screen) return;
    this.screen.stop();
    this.screen = null;
    this.sync();
  }

  stop(): void {
    this.stopTracks();
    this.screen?.stop();
    this.screen = null;
    this.sync();
  }

  private stopTracks(): void {
    this.audio?.stop();
    this.camera?.stop();
    this.audio = null;
    this.camera = null;
  }

  /** Keeps `stream` (shown in the self view) holding exactly the outgoing tracks. */
  private sync(): void {
    for (const t of this.stream.getTracks()) this.stream.removeTrack(t);
    if (this.audio) this.stream.addTrack(this.audio);
    const v = this.video;
    if (v) this.stream.addTrack(v);
    this.changed();
  }
}

async function getMedia(c: MediaStreamConstraints): Promise<MediaStream | null> {
  try {
    return await navigator.mediaDevices.getUserMedia(c);
  } catch {
    return null;
  }
}

/** Cameras and microphones (labels only once a device was opened). */
export async function listDevices(): Promise<{ audio: MediaDeviceInfo[]; video: MediaDeviceInfo[] }> {
  try {
    const all = await navigator.mediaDevices.enumerateDevices();
    return {
      audio: all.filter((d) => d.kind === 'audioinput' && d.deviceId),
      video: all.filter((d) => d.kind === 'videoinput' && d.deviceId),
    };
  } catch {
    return { audio: [], video: [] };
  }
}

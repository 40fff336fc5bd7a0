// The video grid: one tile per participant (ours first, mirrored), with the name, the audio and
// video state from the roster, and a ring while the person speaks.

import { h, icon, replace } from '../dom';
import { t } from '../i18n';
import { avatar, colorFor } from '../ui/avatar';
import { SPEAKING_LEVEL, watchLevel } from './level';
import { shownName, type Participant } from './participant';
import { MI } from './icons';

interface Tile {
  el: HTMLElement;
  video: HTMLVideoElement;
  label: HTMLElement;
  stream: MediaStream | null;
  audioTrack: MediaStreamTrack | null;
  unwatch: () => void;
  quietSince: number;
}

/** Ring stays this long after the level drops, so that it does not flicker between words. */
const SPEAKING_HOLD_MS = 600;

export class Grid {
  readonly el = h('div', { class: 'meet-grid', 'data-testid': 'meet-grid' });
  private tiles = new Map<string, Tile>();

  /** Shows `people` in order; `streams` has each one's media (ours: the local stream). */
  update(people: Participant[], myId: string, streams: Map<string, MediaStream>): void {
    const keep = new Set(people.map((p) => p.id));
    for (const [id, tile] of this.tiles) {
      if (!keep.has(id)) {
        tile.unwatch();
        tile.el.remove();
        this.tiles.delete(id);
      }
    }
    for (const p of people) {
      let tile = this.tiles.get(p.id);
      if (!tile) {
        tile = this.create(p.id, p.id === myId);
        this.tiles.set(p.id, tile);
      }
      this.fill(tile, p, p.id === myId, streams.get(p.id) ?? null);
      this.el.appendChild(tile.el);
    }
    this.el.dataset['count'] = String(people.length);
  }

  clear(): void {
    for (const tile of this.tiles.values()) tile.unwatch();
    this.tiles.clear();
    replace(this.el);
  }

  private create(id: string, mine: boolean): Tile {
    const video = h('video', { autoplay: true, playsinline: true, class: mine ? 'mirrored' : null });
    video.muted = mine; // never play our own microphone back
    const label = h('div', { class: 'tile-label' });
    const el = h('figure', { class: 'tile', 'data-participant': id, 'data-testid': mine ? 'tile-me' : 'tile-remote' }, video, label);
    return { el, video, label, stream: null, audioTrack: null, unwatch: () => {}, quietSince: 0 };
  }

  private fill(tile: Tile, p: Participant, mine: boolean, stream: MediaStream | null): void {
    if (tile.stream !== stream) {
      tile.stream = stream;
      tile.video.srcObject = stream;
    }
    // A track added to the same stream later (the first ontrack of two) also needs watching.
    const audio = stream?.getAudioTracks()[0] ?? null;
    if (audio !== tile.audioTrack) {
      tile.unwatch();
      tile.audioTrack = audio;
      tile.unwatch = audio ? watchLevel(audio, (rms) => this.speaking(tile, rms)) : () => {};
    }
    const name = mine ? t('meetMe', { name: shownName(p) }) : shownName(p);
    const showVideo = p.video || p.screen;
    tile.el.classList.toggle('no-video', !showVideo);
    tile.el.dataset['audio'] = String(p.audio);
    tile.el.dataset['video'] = String(p.video);
    tile.el.dataset['screen'] = String(p.screen);
    tile.el.setAttribute('aria-label', t('meetVideoOf', { name }));
    const placeholder = showVideo ? null : h('div', { class: 'tile-avatar' }, avatar(shownName(p), colorFor(p.user_id ?? p.id), 'md'));
    tile.el.querySelector('.tile-avatar')?.remove();
    if (placeholder) tile.el.insertBefore(placeholder, tile.label);
    replace(
      tile.label,
      p.audio ? null : h('span', { class: 'tile-state', title: t('meetMuted'), 'data-testid': 'muted-icon' }, icon(MI.micOff, 14), h('span', { class: 'sr-only' }, t('meetMuted'))),
      p.screen ? h('span', { class: 'tile-state', title: t('meetSharing') }, icon(MI.screen, 14), h('span', { class: 'sr-only' }, t('meetSharing'))) : null,
      h('span', { class: 'tile-name' }, name),
    );
  }

  private speaking(tile: Tile, rms: number): void {
    const now = Date.now();
    if (rms > SPEAKING_LEVEL) tile.quietSince = 0;
    else if (!tile.quietSince) tile.quietSince = now;
    const on = tile.quietSince === 0 || now - tile.quietSince < SPEAKING_HOLD_MS;
    if (tile.el.classList.contains('speaking') !== on) {
      tile.el.classList.toggle('speaking', on);
      tile.el.title = on ? t('meetSpeaking') : '';
    }
  }
}

// Before joining: a preview of the camera, a microphone meter, device choice, mic and camera
// switches, a name field for guests, and the Join button.

import { h, icon, replace } from '../dom';
import { t } from '../i18n';
import { MI } from './icons';
import { watchLevel } from './level';
import { listDevices, type LocalMedia } from './media';

export interface PreJoin {
  el: HTMLElement;
  /** Shows the name field (guests, invite holders) once the hello reply says who we are. */
  setGuest(guest: boolean, name: string | null): void;
  /** A refusal or progress line under the button; the button is usable again after an error. */
  status(text: string, busy: boolean): void;
  destroy(): void;
}

export function preJoin(title: string, media: LocalMedia, onJoin: (name: string | null) => void): PreJoin {
  const video = h('video', { class: 'preview mirrored', autoplay: true, playsinline: true, 'data-testid': 'preview' });
  video.muted = true;
  const meter = h('div', { class: 'mic-meter', role: 'meter', 'aria-label': t('meetMicLevel'), 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0 }, h('span', {}));
  const devices = h('div', { class: 'device-choice' });
  const nameInput = h('input', { type: 'text', class: 'input', maxlength: 64, autocomplete: 'name', 'data-testid': 'guest-name', id: 'meet-guest-name' });
  const nameRow = h('div', { class: 'field', hidden: true }, h('label', { for: 'meet-guest-name' }, t('meetYourName')), nameInput);
  const statusEl = h('p', { class: 'muted prejoin-status', role: 'status', 'aria-live': 'polite' });
  const noDevices = h('p', { class: 'notice', hidden: true }, t('meetNoDevices'));
  let guest = false;
  let stopMeter = (): void => {};

  const micBtn = h('button', { class: 'round-btn', type: 'button', 'data-testid': 'prejoin-mic' });
  const camBtn = h('button', { class: 'round-btn', type: 'button', 'data-testid': 'prejoin-cam' });
  const joinBtn = h('button', { class: 'btn btn-primary btn-large', type: 'button', 'data-testid': 'join' }, t('meetJoin'));

  const renderButtons = (): void => {
    setToggle(micBtn, media.micOn, MI.mic, MI.micOff, t('meetMicOn'), t('meetMicOff'));
    setToggle(camBtn, media.camOn, MI.cam, MI.camOff, t('meetCamOn'), t('meetCamOff'));
  };
  const showMedia = (): void => {
    video.srcObject = media.camera ? new MediaStream([media.camera]) : null;
    video.hidden = !media.camera;
    noDevices.hidden = !!(media.audio || media.camera) || !media.camOn;
    stopMeter();
    stopMeter = media.audio
      ? watchLevel(media.audio, (rms) => {
          const pct = Math.min(100, Math.round(rms * 400));
          meter.setAttribute('aria-valuenow', String(pct));
          (meter.firstChild as HTMLElement).style.width = `${media.micOn ? pct : 0}%`;
        })
      : () => {};
    renderButtons();
  };
  const renderDevices = async (): Promise<void> => {
    const { audio, video: cams } = await listDevices();
    const select = (label: string, list: MediaDeviceInfo[], current: string | undefined, pick: (id: string) => void): HTMLElement | null =>
      list.length > 1
        ? h(
            'label',
            { class: 'field' },
            h('span', {}, label),
            h(
              'select',
              { class: 'select', onchange: (e: Event) => pick((e.target as HTMLSelectElement).value) },
              list.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || `${label} ${i + 1}`)),
            ),
          )
        : null;
    replace(
      devices,
      select(t('meetCamera'), cams, media.camera?.getSettings().deviceId, (id) => {
        media.choice.videoId = id;
        void media.open().then(showMedia);
      }),
      select(t('meetMicrophone'), audio, media.audio?.getSettings().deviceId, (id) => {
        media.choice.audioId = id;
        void media.open().then(showMedia);
      }),
    );
  };

  micBtn.addEventListener('click', () => {
    media.setMic(!media.micOn);
    showMedia();
  });
  camBtn.addEventListener('click', () => void media.setCam(!media.camOn).then(showMedia));
  joinBtn.addEventListener('click', () => {
    const name = nameInput.value.trim();
    if (guest && !name) {
      statusEl.textContent = t('meetNameNeeded');
      nameInput.focus();
      return;
    }
    onJoin(guest ? name : null);
  });
  nameInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') joinBtn.click();
  });

  renderButtons();
  void media.open().then(() => {
    showMedia();
    void renderDevices();
  });

  const el = h(
    'div',
    { class: 'prejoin card', 'data-testid': 'prejoin' },
    h('div', { class: 'preview-wrap' }, video, h('div', { class: 'preview-controls' }, micBtn, camBtn)),
    h(
      'div',
      { class: 'prejoin-side' },
      h('h1', {}, title || t('meetCheckTitle')),
      h('p', { class: 'muted' }, t('meetCheckLead')),
      noDevices,
      h('div', { class: 'field' }, h('span', {}, t('meetMicLevel')), meter),
      devices,
      nameRow,
      joinBtn,
      statusEl,
    ),
  );
  return {
    el,
    setGuest(g, name) {
      guest = g;
      nameRow.hidden = !g;
      if (g && name && !nameInput.value) nameInput.value = name;
    },
    status(text, busy) {
      statusEl.textContent = text;
      joinBtn.disabled = busy;
    },
    destroy() {
      stopMeter();
    },
  };
}

/** A two-state round button: icon, label and aria-pressed follow `on`. */
export function setToggle(btn: HTMLButtonElement, on: boolean, onIcon: string, offIcon: string, onLabel: string, offLabel: string): void {
  btn.classList.toggle('off', !on);
  btn.setAttribute('aria-label', on ? onLabel : offLabel);
  btn.title = on ? onLabel : offLabel;
  replace(btn, icon(on ? onIcon : offIcon, 20));
}

import { h } from '../dom';

let region: HTMLElement | null = null;

/** A short message at the bottom of the screen, read out by screen readers. */
export function toast(message: string, action?: { label: string; run: () => void }, ms = 5000): void {
  if (!region) {
    region = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(region);
  }
  const item = h('div', { class: 'toast' }, h('span', {}, message));
  const dismiss = (): void => {
    item.classList.add('leaving');
    setTimeout(() => item.remove(), 200);
  };
  if (action) {
    item.appendChild(
      h('button', { class: 'toast-action', type: 'button', onclick: () => { action.run(); dismiss(); } }, action.label),
    );
  }
  region.appendChild(item);
  setTimeout(dismiss, ms);
}

// Small pieces shared by the messages screens: the people search (GET /api/users?q=, from 2
// characters), presence dots and avatars with a dot.

import { api, type User } from '../api';
import { h, replace } from '../dom';
import { t, type Key } from '../i18n';
import { displayName, session } from '../session';
import { avatar, colorFor } from '../ui/avatar';
import type { Message, PresenceState } from './types';

const PRESENCE_LABEL: Record<PresenceState, Key> = {
  online: 'presOnline',
  away: 'presAway',
  meeting: 'presMeeting',
  offline: 'presOffline',
};

export function presenceLabel(state: PresenceState | undefined): string {
  return t(PRESENCE_LABEL[state ?? 'offline'] ?? 'presOffline');
}

/** A line's author as shown (a meeting's guests have no user id: their name as given). */
export function authorName(a: Message['author']): string {
  return a.user_id ? displayName(a.user_id, a.name) : a.name;
}

/**
 * Who wrote a line, as one string for colours and for grouping lines: the user id, else (a
 * guest) the participant or, failing that, the name; prefixed so that none can pass for a user.
 */
export function authorKey(a: Message['author']): string {
  return a.user_id ? a.user_id : a.participant ? 'guest:' + a.participant : 'guest-name:' + a.name;
}

/** A coloured dot: online, away, in a meeting or offline (unknown counts as offline). */
export function presenceDot(state: PresenceState | undefined): HTMLElement {
  const s = state ?? 'offline';
  return h('span', { class: `pres-dot pres-${s}`, role: 'img', 'aria-label': presenceLabel(s), title: presenceLabel(s), 'data-presence': s });
}

/** An avatar with a presence dot in its corner. */
export function personAvatar(id: string, name: string, state?: PresenceState, size: 'sm' | 'md' = 'md'): HTMLElement {
  const shown = displayName(id, name);
  return h('span', { class: 'avatar-wrap' }, avatar(shown, colorFor(id), size, shown), state ? presenceDot(state) : null);
}

/**
 * A search field that lists matching people; `onPick` gets the chosen one. People in
 * `exclude()` (and the signed-in user) are left out.
 */
export function personSearch(onPick: (u: User) => void, exclude: () => string[] = () => [], label = t('searchPeople')): { el: HTMLElement; input: HTMLInputElement } {
  const listId = 'ps-' + Math.random().toString(36).slice(2);
  const input = h('input', {
    class: 'input',
    type: 'search',
    autocomplete: 'off',
    role: 'combobox',
    'aria-autocomplete': 'list',
    'aria-expanded': 'false',
    'aria-controls': listId,
    placeholder: label,
    'aria-label': label,
    'data-testid': 'person-search',
  });
  const list = h('ul', { class: 'suggest', id: listId, role: 'listbox', hidden: true });
  let timer = 0;
  let found: User[] = [];
  let active = -1;
  let generation = 0;

  const close = (): void => {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
  };
  const choose = (u: User): void => {
    onPick(u);
    input.value = '';
    close();
    input.focus();
  };
  const show = (): void => {
    const options = found.map((u, i) =>
      h(
        'li',
        {
          role: 'option',
          id: `${listId}-${i}`,
          class: 'suggest-item',
          'aria-selected': String(i === active),
          'data-testid': 'person-option',
          onmousedown: (e: Event) => {
            e.preventDefault();
            choose(u);
          },
        },
        avatar(u.name, colorFor(u.id), 'sm'),
        h('span', {}, u.name),
        u.email ? h('span', { class: 'muted small' }, u.email) : null,
      ),
    );
    replace(list, options.length ? options : h('li', { class: 'suggest-empty muted' }, t('noMatches')));
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
  };
  input.addEventListener('input', () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if ([...q].length < 2) {
      close();
      return;
    }
    timer = window.setTimeout(async () => {
      const mine = ++generation;
      try {
        const { users } = await api.users(q);
        if (mine !== generation) return;
        const skip = new Set([session.me.id, ...exclude()]);
        found = users.filter((u) => !skip.has(u.id)).slice(0, 8);
        active = found.length ? 0 : -1;
        show();
      } catch {
        close();
      }
    }, 180);
  });
  input.addEventListener('keydown', (e) => {
    if (list.hidden || !found.length) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      active = (active + (e.key === 'ArrowDown' ? 1 : found.length - 1)) % found.length;
      show();
      input.setAttribute('aria-activedescendant', `${listId}-${active}`);
    } else if (e.key === 'Enter' && active >= 0) {
      e.preventDefault();
      const u = found[active];
      if (u) choose(u);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      close();
    }
  });
  input.addEventListener('blur', () => window.setTimeout(close, 150));
  return { el: h('div', { class: 'combo' }, input, list), input };
}

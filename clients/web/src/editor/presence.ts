import { h, replace } from '../dom';
import { t } from '../i18n';
import { displayName } from '../session';
import { avatar } from '../ui/avatar';
import type { DocConnection } from './connection';

const MAX_SHOWN = 4;

interface Person {
  name: string;
  color: string;
}

/** The avatars of the other people in the document, from awareness (live). */
export function presence(conn: DocConnection): { el: HTMLElement; destroy: () => void } {
  const el = h('div', { class: 'presence', role: 'group' });
  const render = (): void => {
    const seen = new Set<string>();
    const people: Person[] = [];
    for (const [clientId, state] of conn.provider.awareness.getStates()) {
      if (clientId === conn.doc.clientID) continue;
      const user = (state as { user?: { id?: string; name?: string; color?: string } }).user;
      if (!user?.name) continue;
      // One avatar per person even with several tabs open (same id and colour).
      const key = `${user.id ?? clientId}|${user.color ?? ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      people.push({ name: displayName(user.id ?? '', user.name), color: user.color ?? '#64748b' });
    }
    people.sort((a, b) => a.name.localeCompare(b.name));
    const names = people.map((p) => p.name).join(', ');
    el.setAttribute('aria-label', people.length ? `${t('presence')}: ${names}` : t('presence'));
    el.hidden = people.length === 0;
    const shown = people.slice(0, MAX_SHOWN).map((p) => avatar(p.name, p.color, 'sm'));
    const rest = people.length - shown.length;
    replace(el, shown, rest > 0 ? h('span', { class: 'avatar avatar-sm avatar-more', title: names }, `+${rest}`) : null);
  };
  const awareness = conn.provider.awareness;
  awareness.on('change', render);
  render();
  return { el, destroy: () => awareness.off('change', render) };
}

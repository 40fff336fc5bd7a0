import { api } from '../api';
import { h, icon } from '../dom';
import { lang, setLang, t } from '../i18n';
import { displayName, session, myColor } from '../session';
import { avatar } from './avatar';
import { I } from './icons';
import { menuButton, type MenuItem } from './menu';
import { forgetLocalData } from '../offline';

// Pieces of the top bar shared by every screen.

export function brand(): HTMLElement {
  return h(
    'a',
    { class: 'brand', href: '/', 'data-link': true, 'aria-label': t('documents') + ' — ' + t('appName') },
    h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '두'),
    h('span', { class: 'brand-name' }, t('appName')),
  );
}

export function langSwitch(): HTMLElement {
  return h(
    'button',
    {
      class: 'btn btn-ghost lang-switch',
      type: 'button',
      lang: lang() === 'ko' ? 'en' : 'ko',
      'aria-label': t('switchLanguageLabel'),
      title: t('switchLanguageLabel'),
      onclick: () => setLang(lang() === 'ko' ? 'en' : 'ko'),
    },
    icon(I.globe, 16),
    h('span', { class: 'hide-narrow' }, t('switchLanguage')),
  );
}

export function userMenu(): HTMLElement {
  const me = { ...session.me, name: displayName(session.me.id, session.me.name) };
  const button = h(
    'button',
    {
      class: 'user-btn',
      type: 'button',
      'aria-label': `${t('account')}: ${me.name}`,
      title: session.config.mode === 'local' ? `${me.name} · ${t('localMode')}` : me.email ? `${me.name} <${me.email}>` : me.name,
    },
    avatar(me.name, myColor(), 'md', me.name),
  );
  return menuButton(button, () => {
    const items: MenuItem[] = [
      // Also here: on narrow screens the editor's top bar has no room for the switch.
      { label: t('switchLanguage'), icon: icon(I.globe, 16), run: () => setLang(lang() === 'ko' ? 'en' : 'ko') },
    ];
    if (session.config.mode === 'oidc') {
      items.push({
        label: t('signOut'),
        icon: icon(I.logout, 16),
        run: () => void signOut(),
      });
    }
    return items;
  });
}

async function signOut(): Promise<void> {
  await forgetLocalData(session.me.id);
  try {
    const { redirect } = await api.logout();
    location.assign(redirect ?? '/');
  } catch {
    location.assign('/');
  }
}

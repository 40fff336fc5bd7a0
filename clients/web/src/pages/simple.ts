import { h, icon } from '../dom';
import { t } from '../i18n';
import { loginUrl } from '../session';
import { brand, langSwitch } from '../ui/chrome';
import { I } from '../ui/icons';
import type { Page } from './page';

function centered(...children: HTMLElement[]): HTMLElement {
  return h(
    'div',
    { class: 'app' },
    h('header', { class: 'topbar topbar-plain' }, brand(), h('div', { class: 'spacer' }), langSwitch()),
    h('main', { id: 'main', class: 'center-page', tabindex: -1 }, h('div', { class: 'card center-card' }, children)),
  );
}

export function signInPage(signedOut = false): Page {
  return {
    el: centered(
      h('div', { class: 'hero-mark', 'aria-hidden': 'true' }, '두'),
      h('h1', {}, t('signInTitle')),
      h('p', { class: 'muted' }, signedOut ? t('signedOut') : t('signInLead')),
      h('a', { class: 'btn btn-primary btn-large', href: loginUrl(), 'data-testid': 'sign-in' }, t('signInButton')),
    ),
  };
}

export function notFoundPage(): Page {
  return {
    el: centered(
      h('div', { class: 'hero-icon', 'aria-hidden': 'true' }, icon(I.doc, 36)),
      h('h1', {}, t('notFoundTitle')),
      h('p', { class: 'muted' }, t('notFoundLead')),
      h('a', { class: 'btn btn-primary', href: '/', 'data-link': true }, t('goToDocuments')),
    ),
  };
}

export function messagePage(message: string, retry?: () => void): Page {
  return {
    el: centered(
      h('div', { class: 'hero-icon', 'aria-hidden': 'true' }, icon(I.offline, 36)),
      h('p', {}, message),
      retry ? h('button', { class: 'btn btn-primary', type: 'button', onclick: retry }, t('retry')) : h('span'),
    ),
  };
}

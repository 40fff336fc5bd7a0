import type { Role } from '../api';
import { h } from '../dom';
import { t } from '../i18n';

export function roleLabel(role: Role): string {
  return role === 'owner' ? t('roleOwner') : role === 'editor' ? t('roleEditor') : t('roleViewer');
}

export function roleBadge(role: Role): HTMLElement {
  return h('span', { class: `badge badge-${role}` }, roleLabel(role));
}

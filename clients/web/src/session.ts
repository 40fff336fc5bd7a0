import type { Config, Me } from './api';
import { t } from './i18n';
import { colorFor } from './ui/avatar';

// Who is using the app, known after start-up (main.ts).
export const session: { config: Config; me: Me } = {
  config: { mode: 'local', login: null },
  me: { id: 'local', name: 'Local user', groups: [], admin: true, mode: 'local' },
};

export function myColor(): string {
  return colorFor(session.me.id);
}

/** Where the sign-in button goes: the provider login, then back to this page. */
export function loginUrl(): string {
  const base = session.config.login ?? '/auth/login';
  return `${base}?return_to=${encodeURIComponent(location.pathname + location.search)}`;
}

/**
 * A person's name as shown: in local mode the one local user is named by the app, in the
 * app's language (the server calls it "Local user").
 */
export function displayName(id: string, name: string): string {
  return session.config.mode === 'local' && id === session.me.id ? t('localUser') : name;
}

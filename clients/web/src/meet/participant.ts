import { displayName } from '../session';

// Participants as the server describes them (docs/realtime.md: meet.roster, meet.lobby).

export interface Participant {
  id: string;
  name: string;
  role: 'host' | 'cohost' | 'participant';
  guest: boolean;
  user_id: string | null;
  audio: boolean;
  video: boolean;
  screen: boolean;
}

export interface Waiting {
  id: string;
  name: string;
  guest: boolean;
  since: number | string;
}

export interface ChatMessage {
  id: string;
  seq: number;
  at: number | string;
  author: { participant: string; name: string; user_id: string | null };
  text: string;
  client_ref: string | null;
}

export const isHost = (role: string): boolean => role === 'host' || role === 'cohost';

/** A participant's name as shown: the local user is named by the app, in its language. */
export const shownName = (p: { name: string; user_id?: string | null }): string => (p.user_id ? displayName(p.user_id, p.name) : p.name);

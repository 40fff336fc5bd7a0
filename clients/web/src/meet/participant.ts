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

/**
 * A line of the meeting's chat: an entry of the meeting's conversation log (docs/messaging.md),
 * so it may also have been written, edited or deleted from the Messages page. `participant` is
 * only on lines posted from inside the meeting; `user_id` is absent for guests (`guest` true).
 */
export interface ChatMessage {
  kind?: 'message';
  id: string;
  seq: number;
  at: number | string;
  author: { name: string; participant?: string; user_id?: string | null; guest?: boolean };
  text: string;
  client_ref: string | null;
  attachments?: { name: string }[];
  edited_at?: number | null;
  deleted?: boolean;
}

export const isHost = (role: string): boolean => role === 'host' || role === 'cohost';

/** A participant's name as shown: the local user is named by the app, in its language. */
export const shownName = (p: { name: string; user_id?: string | null }): string => (p.user_id ? displayName(p.user_id, p.name) : p.name);

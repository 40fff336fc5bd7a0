// Conversations, messages and log entries as docs/messaging.md describes them.

export interface Member {
  user_id: string;
  name: string;
  role: 'admin' | 'member';
}

export interface Attachment {
  id: string;
  name: string;
  size: number;
  type: string;
  thumbnail: boolean;
}

export interface Message {
  seq: number;
  kind: 'message';
  id: string;
  at: number;
  /**
   * `user_id` is absent for a meeting's guests (not signed in; `guest` is then true);
   * `participant` only on lines posted from inside a meeting.
   */
  author: { user_id?: string | null; name: string; participant?: string; guest?: boolean };
  text: string;
  client_ref: string | null;
  reply_to: number | null;
  mentions: string[];
  docs: string[];
  attachments: Attachment[];
  edited_at: number | null;
  deleted: boolean;
}

export interface ChangeEntry {
  seq: number;
  kind: 'edit' | 'delete';
  at: number;
  by: string;
  target: number;
}

export interface EventEntry {
  seq: number;
  kind: 'event';
  at: number;
  by: string;
  action: 'created' | 'renamed' | 'added' | 'removed' | 'left' | 'role';
  users: string[];
  title: string | null;
  role: string | null;
}

export type Entry = Message | ChangeEntry | EventEntry;

export interface Conversation {
  id: string;
  /** `meeting`: a meeting's chat (members are its signed-in participants; nobody is admin). */
  kind: 'direct' | 'group' | 'meeting';
  title: string | null;
  /** The meeting's slug, for `meeting` conversations. */
  meeting?: string;
  members: Member[];
  created_by: string;
  created_at: number;
  last_seq: number;
  last_at: number | null;
  last_message: Message | null;
  read_seq: number;
  unread: number;
  unread_more?: boolean;
  unread_mentions: number;
  archived: boolean;
  role: 'admin' | 'member';
}

export type PresenceState = 'online' | 'away' | 'meeting' | 'offline';

/** `d` (direct), `g` (group) or `m` (meeting) and 32 hex digits. */
export const CONVERSATION_ID = /^[dgm][0-9a-f]{32}$/;

/** Groups and meeting chats: a title, a members list, author names on lines, a way to leave. */
export const isGroupLike = (c: Pick<Conversation, 'kind'>): boolean => c.kind === 'group' || c.kind === 'meeting';

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
  author: { user_id: string; name: string };
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
  kind: 'direct' | 'group';
  title: string | null;
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

/** `d` or `g` and 32 hex digits. */
export const CONVERSATION_ID = /^[dg][0-9a-f]{32}$/;

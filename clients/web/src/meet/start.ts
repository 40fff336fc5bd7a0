// Starting a meeting from the app (the document page's "Meet", the list's "New meeting").

import { api } from '../api';
import { t } from '../i18n';
import { meetPath, navigate } from '../router';
import { toast } from '../ui/toast';

/** Creates a meeting (linked to `docId` if given) and opens its page. */
export async function startMeeting(title: string, docId: string | null): Promise<void> {
  try {
    const m = await api.createMeeting(title.slice(0, 200) || t('meetDefaultTitle'), docId);
    navigate(meetPath(m.slug));
  } catch (err) {
    toast(t('startMeetingFailed', { message: (err as Error).message }));
  }
}

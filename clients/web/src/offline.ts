// Offline support: the service worker (app shell) and the per-user local data.

export function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator)) return;
  // After load, so the first visit is not slowed down by precaching.
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((err: unknown) => {
      console.warn('service worker registration failed', err);
    });
  });
}

/** The IndexedDB database holding one document for one user (y-indexeddb). */
export function docDatabaseName(userId: string, docId: string): string {
  return `dure:${userId}:${docId}`;
}

/**
 * On sign-out, removes what this user left on the device: cached API answers and local
 * copies of documents (a shared office computer must not keep them for the next person).
 */
export async function forgetLocalData(userId: string): Promise<void> {
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const key = localStorage.key(i);
    if (key?.startsWith('dure:cache:')) localStorage.removeItem(key);
  }
  try {
    const dbs = await indexedDB.databases();
    const prefix = `dure:${userId}:`;
    await Promise.all(
      dbs
        .filter((db) => db.name?.startsWith(prefix))
        .map(
          (db) =>
            new Promise<void>((resolve) => {
              const req = indexedDB.deleteDatabase(db.name ?? '');
              req.onsuccess = req.onerror = req.onblocked = () => resolve();
            }),
        ),
    );
  } catch {
    // indexedDB.databases() is missing in old browsers: nothing more to do
  }
}

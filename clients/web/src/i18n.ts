// Korean and English strings. `en` defines the keys; `ko` must translate every one (checked by
// the type). The language comes from localStorage, else navigator.language.

const en = {
  appName: 'Dure',
  skipToContent: 'Skip to content',
  language: 'Language',
  switchLanguage: '한국어',
  switchLanguageLabel: 'Switch to Korean',
  signOut: 'Sign out',
  account: 'Account',
  localMode: 'Local mode',
  // sign-in
  signInTitle: 'Sign in to Dure',
  signInLead: 'Write documents together with your colleagues, online or offline.',
  signInButton: 'Sign in with your organisation account',
  signedOut: 'You were signed out. Sign in again to continue.',
  // list
  documents: 'Documents',
  newDocument: 'New document',
  importMarkdown: 'Import Markdown',
  tabRecent: 'Recent',
  tabMine: 'Mine',
  tabShared: 'Shared with me',
  tabOrg: 'Organisation',
  tabTrash: 'Trash',
  searchTitles: 'Search titles',
  colTitle: 'Title',
  colOwner: 'Owner',
  colUpdated: 'Updated',
  colDeleted: 'Deleted',
  untitled: 'Untitled',
  you: 'You',
  emptyRecent: 'No documents yet. Create one to get started.',
  emptyMine: 'You have not created any documents yet.',
  emptyShared: 'Nothing has been shared with you yet.',
  emptyOrg: 'No documents are shared with the whole organisation.',
  emptyTrash: 'The trash is empty.',
  emptySearch: 'No document title matches “{q}”.',
  trashNote: 'Documents in the trash are deleted for good after the retention period.',
  purgeAt: 'Deleted for good {when}',
  rename: 'Rename',
  moveToTrash: 'Move to trash',
  restore: 'Restore',
  open: 'Open',
  actionsFor: 'Actions for {title}',
  renamePrompt: 'New title',
  save: 'Save',
  cancel: 'Cancel',
  create: 'Create',
  newDocTitle: 'Title of the new document',
  movedToTrash: '“{title}” moved to the trash.',
  restored: '“{title}” restored.',
  undo: 'Undo',
  offlineList: 'You are offline. This is the list from your last visit.',
  offlineNoList: 'You are offline and this list was never loaded on this device.',
  loadFailed: 'Could not load: {message}',
  retry: 'Retry',
  loading: 'Loading…',
  imported: 'Imported “{title}”.',
  importFailed: 'Import failed: {message}',
  // roles
  roleOwner: 'Owner',
  roleEditor: 'Editor',
  roleViewer: 'Viewer',
  // time
  justNow: 'just now',
  minutesAgo: '{n} min ago',
  hoursAgo: '{n} h ago',
  yesterday: 'yesterday',
  // editor
  backToDocuments: 'Back to documents',
  documentTitle: 'Document title',
  documentBody: 'Document text',
  statusConnecting: 'Connecting…',
  statusSaving: 'Saving…',
  statusSaved: 'Saved',
  statusOffline: 'Offline — changes kept on this device',
  statusViewOnly: 'View only',
  statusSavedHint: 'Every change is stored on the server.',
  statusSavingHint: 'Waiting for the server to confirm your latest changes are stored.',
  statusOfflineHint: 'Your changes are kept on this device and sent when the connection returns.',
  readOnlyNotice: 'You can view this document but not change it.',
  permissionDenied: 'Your last changes were refused: you may only view this document.',
  closed4401: 'You were signed out. Sign in again to keep editing.',
  closed4403: 'You no longer have access to this document.',
  closed4404: 'This document was deleted or does not exist.',
  noAccess: 'You do not have access to this document. Ask its owner to share it with you.',
  statusSignedOut: 'Signed out',
  statusNoAccess: 'No access',
  statusGone: 'Not available',
  signInAgain: 'Sign in again',
  goToDocuments: 'Go to documents',
  toolbar: 'Formatting',
  undoEdit: 'Undo',
  redoEdit: 'Redo',
  textStyle: 'Text style',
  paragraph: 'Text',
  heading1: 'Heading 1',
  heading2: 'Heading 2',
  heading3: 'Heading 3',
  bold: 'Bold',
  italic: 'Italic',
  underline: 'Underline',
  strike: 'Strikethrough',
  code: 'Inline code',
  bulletList: 'Bulleted list',
  orderedList: 'Numbered list',
  taskList: 'Checklist',
  blockquote: 'Quote',
  codeBlock: 'Code block',
  horizontalRule: 'Divider',
  link: 'Link',
  linkPrompt: 'Link address (empty to remove)',
  insertTable: 'Insert table',
  addRow: 'Add row below',
  addColumn: 'Add column right',
  deleteRow: 'Delete row',
  deleteColumn: 'Delete column',
  deleteTable: 'Delete table',
  placeholder: 'Start writing…',
  presence: 'People in this document',
  share: 'Share',
  more: 'More',
  export: 'Download',
  exportMd: 'Markdown (.md)',
  exportHtml: 'Web page (.html)',
  exportTxt: 'Plain text (.txt)',
  exportFailed: 'Download failed: {message}',
  // sharing
  shareTitle: 'Share “{title}”',
  addPeople: 'Add people or groups',
  searchPeople: 'Name or e-mail',
  groupId: 'Group name',
  addGroup: 'Add group',
  add: 'Add',
  peopleWithAccess: 'People with access',
  orgAccess: 'Everyone in the organisation',
  orgNone: 'No organisation-wide access',
  orgCanView: 'Everyone can view',
  orgCanEdit: 'Everyone can edit',
  remove: 'Remove',
  removeShare: 'Remove access for {name}',
  roleFor: 'Role for {name}',
  copyLink: 'Copy link',
  linkCopied: 'Link copied',
  done: 'Done',
  close: 'Close',
  noMatches: 'No one matches',
  shareFailed: 'Could not change sharing: {message}',
  group: 'Group',
  person: 'Person',
  // errors
  notFoundTitle: 'Page not found',
  notFoundLead: 'There is nothing at this address.',
  offlineStart: 'You are offline and Dure has not been opened on this device before.',
  serverError: 'Something went wrong: {message}',
  localUser: 'Local user',
  shareLocalNote: 'Local mode has no people, groups or organisation to share with: whoever uses Dure on this computer can open the link.',
  // Stable error codes from the server (gateway/src/error_code.rs): API errors and close reasons.
  err_bad_request: 'The request is not valid.',
  err_unauthenticated: 'Sign in first.',
  err_forbidden: 'You do not have access to this.',
  err_not_found: 'This document was deleted or does not exist.',
  err_conflict: 'The change conflicts with the document as it is now.',
  err_quota_exceeded: 'You own as many documents as allowed. Delete some and empty the trash first.',
  err_unknown_user: 'Nobody by that name has signed in yet; they must sign in once.',
  err_too_large: 'This is larger than the server allows.',
  err_import_refused: 'This Markdown file cannot be imported.',
  err_import_busy: 'Too many imports at once. Try again shortly.',
  err_ambiguous_user: 'More than one person has that e-mail address. Share by user id instead.',
  err_rate_limited: 'Too many requests. Try again shortly.',
  err_unknown_host: 'This server does not answer to that address. Open Dure at its usual address.',
  err_method_not_allowed: 'That action is not allowed here.',
  err_unavailable: 'The server cannot reach its storage right now. Try again shortly.',
  err_internal: 'Something went wrong on the server.',
  err_foreign_origin: 'Pages from other sites may not open documents here.',
  err_too_many_sockets: 'You have too many connections open. Close some tabs.',
  err_too_many_documents_open: 'You have too many documents open. Close some.',
  err_restart: 'The server is restarting. Reconnecting…',
  err_malformed: 'The app sent a message the server could not read.',
  err_invalid_update: 'A change could not be applied. Reload the page.',
  err_awareness_too_large: 'Your presence information is too large.',
  err_slow_reader: 'The connection was too slow to keep up. Reconnecting…',
  err_room_failed: 'The document failed on the server. Reload the page.',
  err_document_too_large: 'This document reached its size limit; the last change was not saved.',
  err_frame_too_large: 'A change was larger than the server allows.',
  err_protocol_error: 'The connection broke. Reconnecting…',
  err_text_frame: 'The app sent a message the server could not read.',
};

export type Key = keyof typeof en;
type Dict = Record<Key, string>;

const ko: Dict = {
  appName: '두레',
  skipToContent: '본문으로 건너뛰기',
  language: '언어',
  switchLanguage: 'English',
  switchLanguageLabel: '영어로 전환',
  signOut: '로그아웃',
  account: '계정',
  localMode: '로컬 모드',
  signInTitle: '두레에 로그인',
  signInLead: '동료와 함께 문서를 작성하세요. 온라인이든 오프라인이든.',
  signInButton: '기관 계정으로 로그인',
  signedOut: '로그아웃되었습니다. 계속하려면 다시 로그인하세요.',
  documents: '문서',
  newDocument: '새 문서',
  importMarkdown: 'Markdown 가져오기',
  tabRecent: '최근',
  tabMine: '내 문서',
  tabShared: '공유받은 문서',
  tabOrg: '기관 전체',
  tabTrash: '휴지통',
  searchTitles: '제목 검색',
  colTitle: '제목',
  colOwner: '소유자',
  colUpdated: '수정',
  colDeleted: '삭제',
  untitled: '제목 없음',
  you: '나',
  emptyRecent: '아직 문서가 없습니다. 새 문서를 만들어 시작하세요.',
  emptyMine: '아직 만든 문서가 없습니다.',
  emptyShared: '공유받은 문서가 없습니다.',
  emptyOrg: '기관 전체에 공유된 문서가 없습니다.',
  emptyTrash: '휴지통이 비어 있습니다.',
  emptySearch: '“{q}”와(과) 일치하는 문서 제목이 없습니다.',
  trashNote: '휴지통의 문서는 보관 기간이 지나면 영구 삭제됩니다.',
  purgeAt: '{when} 영구 삭제',
  rename: '이름 바꾸기',
  moveToTrash: '휴지통으로 이동',
  restore: '복원',
  open: '열기',
  actionsFor: '{title} 작업',
  renamePrompt: '새 제목',
  save: '저장',
  cancel: '취소',
  create: '만들기',
  newDocTitle: '새 문서 제목',
  movedToTrash: '“{title}” 문서를 휴지통으로 옮겼습니다.',
  restored: '“{title}” 문서를 복원했습니다.',
  undo: '실행 취소',
  offlineList: '오프라인 상태입니다. 마지막으로 접속했을 때의 목록입니다.',
  offlineNoList: '오프라인 상태이며 이 기기에서 이 목록을 불러온 적이 없습니다.',
  loadFailed: '불러오지 못했습니다: {message}',
  retry: '다시 시도',
  loading: '불러오는 중…',
  imported: '“{title}” 문서를 가져왔습니다.',
  importFailed: '가져오지 못했습니다: {message}',
  roleOwner: '소유자',
  roleEditor: '편집자',
  roleViewer: '뷰어',
  justNow: '방금',
  minutesAgo: '{n}분 전',
  hoursAgo: '{n}시간 전',
  yesterday: '어제',
  backToDocuments: '문서 목록으로',
  documentTitle: '문서 제목',
  documentBody: '문서 본문',
  statusConnecting: '연결 중…',
  statusSaving: '저장 중…',
  statusSaved: '저장됨',
  statusOffline: '오프라인 — 변경 내용은 이 기기에 보관됨',
  statusViewOnly: '보기 전용',
  statusSavedHint: '모든 변경 내용이 서버에 저장되었습니다.',
  statusSavingHint: '최근 변경 내용이 저장되었다는 서버의 확인을 기다리는 중입니다.',
  statusOfflineHint: '변경 내용은 이 기기에 보관되며 연결이 돌아오면 전송됩니다.',
  readOnlyNotice: '이 문서를 볼 수는 있지만 수정할 수는 없습니다.',
  permissionDenied: '최근 변경 내용이 거부되었습니다. 이 문서는 보기만 할 수 있습니다.',
  closed4401: '로그아웃되었습니다. 계속 편집하려면 다시 로그인하세요.',
  closed4403: '이 문서에 더 이상 접근할 수 없습니다.',
  closed4404: '이 문서는 삭제되었거나 존재하지 않습니다.',
  noAccess: '이 문서에 접근할 권한이 없습니다. 문서 소유자에게 공유를 요청하세요.',
  statusSignedOut: '로그아웃됨',
  statusNoAccess: '접근 권한 없음',
  statusGone: '사용할 수 없음',
  signInAgain: '다시 로그인',
  goToDocuments: '문서 목록으로 가기',
  toolbar: '서식',
  undoEdit: '실행 취소',
  redoEdit: '다시 실행',
  textStyle: '텍스트 스타일',
  paragraph: '본문',
  heading1: '제목 1',
  heading2: '제목 2',
  heading3: '제목 3',
  bold: '굵게',
  italic: '기울임꼴',
  underline: '밑줄',
  strike: '취소선',
  code: '인라인 코드',
  bulletList: '글머리 기호 목록',
  orderedList: '번호 매기기 목록',
  taskList: '체크리스트',
  blockquote: '인용',
  codeBlock: '코드 블록',
  horizontalRule: '구분선',
  link: '링크',
  linkPrompt: '링크 주소 (비우면 링크 제거)',
  insertTable: '표 삽입',
  addRow: '아래에 행 추가',
  addColumn: '오른쪽에 열 추가',
  deleteRow: '행 삭제',
  deleteColumn: '열 삭제',
  deleteTable: '표 삭제',
  placeholder: '내용을 입력하세요…',
  presence: '이 문서에 있는 사람',
  share: '공유',
  more: '더 보기',
  export: '다운로드',
  exportMd: 'Markdown (.md)',
  exportHtml: '웹 페이지 (.html)',
  exportTxt: '일반 텍스트 (.txt)',
  exportFailed: '다운로드하지 못했습니다: {message}',
  shareTitle: '“{title}” 공유',
  addPeople: '사용자 또는 그룹 추가',
  searchPeople: '이름 또는 이메일',
  groupId: '그룹 이름',
  addGroup: '그룹 추가',
  add: '추가',
  peopleWithAccess: '접근 권한이 있는 사용자',
  orgAccess: '기관의 모든 사용자',
  orgNone: '기관 전체 접근 없음',
  orgCanView: '모두 보기 가능',
  orgCanEdit: '모두 편집 가능',
  remove: '삭제',
  removeShare: '{name}의 접근 권한 삭제',
  roleFor: '{name}의 역할',
  copyLink: '링크 복사',
  linkCopied: '링크를 복사했습니다',
  done: '완료',
  close: '닫기',
  noMatches: '일치하는 사용자가 없습니다',
  shareFailed: '공유 설정을 바꾸지 못했습니다: {message}',
  group: '그룹',
  person: '사용자',
  notFoundTitle: '페이지를 찾을 수 없습니다',
  notFoundLead: '이 주소에는 아무것도 없습니다.',
  offlineStart: '오프라인 상태이며 이 기기에서 두레를 연 적이 없습니다.',
  serverError: '문제가 발생했습니다: {message}',
  localUser: '로컬 사용자',
  shareLocalNote: '로컬 모드에는 공유할 사용자, 그룹, 기관이 없습니다. 이 컴퓨터에서 두레를 쓰는 사람은 누구나 링크를 열 수 있습니다.',
  // Stable error codes from the server (gateway/src/error_code.rs): API errors and close reasons.
  err_bad_request: '요청이 올바르지 않습니다.',
  err_unauthenticated: '먼저 로그인하세요.',
  err_forbidden: '접근 권한이 없습니다.',
  err_not_found: '이 문서는 삭제되었거나 존재하지 않습니다.',
  err_conflict: '지금 문서 상태와 맞지 않는 변경입니다.',
  err_quota_exceeded: '소유할 수 있는 문서 수에 도달했습니다. 일부를 삭제하고 휴지통을 비우세요.',
  err_unknown_user: '그 이름으로 로그인한 사용자가 아직 없습니다. 먼저 한 번 로그인해야 합니다.',
  err_too_large: '서버가 허용하는 크기보다 큽니다.',
  err_import_refused: '이 Markdown 파일은 가져올 수 없습니다.',
  err_import_busy: '가져오기가 너무 많이 진행 중입니다. 잠시 후 다시 시도하세요.',
  err_ambiguous_user: '그 이메일 주소를 쓰는 사람이 여러 명입니다. 사용자 ID로 공유하세요.',
  err_rate_limited: '요청이 너무 많습니다. 잠시 후 다시 시도하세요.',
  err_unknown_host: '이 서버는 그 주소로 응답하지 않습니다. 평소 쓰는 주소로 두레를 여세요.',
  err_method_not_allowed: '여기서는 허용되지 않는 작업입니다.',
  err_unavailable: '서버가 지금 저장소에 연결할 수 없습니다. 잠시 후 다시 시도하세요.',
  err_internal: '서버에서 문제가 발생했습니다.',
  err_foreign_origin: '다른 사이트의 페이지는 여기서 문서를 열 수 없습니다.',
  err_too_many_sockets: '열린 연결이 너무 많습니다. 탭을 몇 개 닫으세요.',
  err_too_many_documents_open: '열린 문서가 너무 많습니다. 몇 개를 닫으세요.',
  err_restart: '서버가 다시 시작하는 중입니다. 다시 연결합니다…',
  err_malformed: '앱이 보낸 메시지를 서버가 읽을 수 없습니다.',
  err_invalid_update: '변경을 적용할 수 없습니다. 페이지를 새로 고치세요.',
  err_awareness_too_large: '접속 정보가 너무 큽니다.',
  err_slow_reader: '연결이 너무 느립니다. 다시 연결합니다…',
  err_room_failed: '서버에서 문서에 문제가 생겼습니다. 페이지를 새로 고치세요.',
  err_document_too_large: '이 문서가 크기 제한에 도달하여 마지막 변경은 저장되지 않았습니다.',
  err_frame_too_large: '변경이 서버가 허용하는 크기보다 큽니다.',
  err_protocol_error: '연결이 끊어졌습니다. 다시 연결합니다…',
  err_text_frame: '앱이 보낸 메시지를 서버가 읽을 수 없습니다.',
};

export type Lang = 'en' | 'ko';
const dicts: Record<Lang, Dict> = { en, ko };
const STORAGE_KEY = 'dure:lang';

function initialLang(): Lang {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === 'en' || saved === 'ko') return saved;
  return navigator.language.toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

let current: Lang = initialLang();
const listeners = new Set<() => void>();

export function lang(): Lang {
  return current;
}

export function setLang(next: Lang): void {
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next;
  for (const l of listeners) l();
}

/** Called after the language changes (screens re-render their text). */
export function onLangChange(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The string for `key` in the current language, with `{name}` placeholders filled in. */
export function t(key: Key, params: Record<string, string | number> = {}): string {
  return dicts[current][key].replace(/\{(\w+)\}/g, (m, name: string) =>
    name in params ? String(params[name]) : m,
  );
}

/** "3 min ago", "어제", or a date in the current language. */
export function relativeTime(iso: string, now = Date.now()): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return '';
  const diff = Math.max(0, now - then);
  const min = Math.floor(diff / 60_000);
  if (min < 1) return t('justNow');
  if (min < 60) return t('minutesAgo', { n: min });
  const hours = Math.floor(min / 60);
  if (hours < 24) return t('hoursAgo', { n: hours });
  if (hours < 48) return t('yesterday');
  const sameYear = new Date(then).getFullYear() === new Date(now).getFullYear();
  return new Intl.DateTimeFormat(current === 'ko' ? 'ko-KR' : 'en-GB', {
    year: sameYear ? undefined : 'numeric',
    month: 'short',
    day: 'numeric',
  }).format(new Date(then));
}

export function fullTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat(current === 'ko' ? 'ko-KR' : 'en-GB', {
    dateStyle: 'medium',
    timeStyle: 'short',
  }).format(d);
}

document.documentElement.lang = current;

/**
 * What to show for a stable error code from the server (an API error's `error`, a socket's
 * close reason): its translation, or `fallback` for a code this app does not know.
 */
export function errorText(code: string, fallback: string): string {
  return Object.prototype.hasOwnProperty.call(en, 'err_' + code) ? t(('err_' + code) as Key) : fallback;
}

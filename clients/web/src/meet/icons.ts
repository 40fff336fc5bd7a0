// Meeting icons on the app's 24×24 stroke grid (see ui/icons.ts).

export const MI = {
  mic: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z|M5 11a7 7 0 0 0 14 0|M12 18v3',
  micOff: 'M3 3l18 18|M9 9v3a3 3 0 0 0 5 2.2|M15 10V6a3 3 0 0 0-5.7-1.3|M5 11a7 7 0 0 0 11 5.7|M19 11a7 7 0 0 1-.7 3|M12 18v3',
  cam: 'M3 7h12v10H3z|M15 10l6-3v10l-6-3',
  camOff: 'M3 3l18 18|M15 11V7H8|M3 7v10h12v-2|M15 10l6-3v10l-4-2',
  screen: 'M3 4h18v12H3z|M8 20h8|M12 16v4',
  leave: 'M4 15c5-5 11-5 16 0l-2 3-3-1v-3a11 11 0 0 0-6 0v3l-3 1z',
  chat: 'M4 5h16v11H9l-5 4z',
  people: 'M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z|M2.5 20a6.5 6.5 0 0 1 13 0|M16 4.5a3.5 3.5 0 0 1 0 6.5|M18 14a6.5 6.5 0 0 1 3.5 6',
  link: 'M10 14a4.5 4.5 0 0 0 6.4 0l3-3a4.5 4.5 0 0 0-6.4-6.4l-1 1|M14 10a4.5 4.5 0 0 0-6.4 0l-3 3a4.5 4.5 0 0 0 6.4 6.4l1-1',
  video: 'M3 7h12v10H3z|M15 10l6-3v10l-6-3',
} as const;

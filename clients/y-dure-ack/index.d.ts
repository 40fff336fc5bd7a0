export declare const MESSAGE_SAVED: 100;
export declare function readVarUint(decoder: { arr: Uint8Array; pos: number }): number;
export declare function onSaved(
  provider: { messageHandlers: Array<Function | undefined> },
  listener: (n: number) => void,
): () => void;
export declare function savedCount(provider: object): number;

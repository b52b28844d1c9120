/** The part of fs-native-extensions (prebuilt native addon) that Hornbill uses. */
declare module 'fs-native-extensions' {
  /** fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) on Linux. */
  export function trimSync(fd: number, offset: number, length: number): void;
  /** Non-blocking exclusive (or shared) advisory lock on the whole file; false when another holder has it. */
  export function tryLock(
    fd: number,
    offset?: number,
    length?: number,
    options?: { shared?: boolean },
  ): boolean;
  export function unlock(fd: number, offset?: number, length?: number): void;
  const extensions: {
    trimSync: typeof trimSync;
    tryLock: typeof tryLock;
    unlock: typeof unlock;
  };
  export default extensions;
}

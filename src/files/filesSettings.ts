/** Limits and places of the file manager; parsed from the environment in config.ts. */
export interface FilesSettings {
  /** Absolute path of the file root inside the runtime; must lie in the volume (`volumeRoot`). */
  root: string;
  /** The runtime volume's mount point: staging happens here so a rename can move files into place. */
  volumeRoot: string;
  quotaBytes: number;
  maxFileBytes: number;
  maxRequestBytes: number;
  maxFilesPerUpload: number;
  textMaxBytes: number;
  importMaxEntries: number;
  /** Host folder for uploads whose size is not known up front; emptied at start-up. */
  spoolDir: string;
  /** Bytes all spooled uploads may hold at once. */
  spoolMaxBytes: number;
  /** Spooling stops before the spool's disk has less free space than this. */
  spoolMinFreeBytes: number;
  /**
   * An archive stream (a download whose client has read nothing, an upload whose client has sent
   * nothing) idle this long is cut: while it is open the engine holds the lock of the container it
   * goes through, so an idle client must not keep it for ever.
   */
  streamIdleMs: number;
}

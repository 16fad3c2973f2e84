/**
 * Files out of a drop or a file picker, with their paths relative to what was chosen: a dropped
 * folder `photos` gives `photos/a.jpg`, `photos/2024/b.jpg`, … (the server creates the folders).
 */
export interface PickedFile {
  file: File;
  relativePath: string;
}

export interface Picked {
  files: PickedFile[];
  /** Folders with nothing in them, relative like the files (they are created with mkdir). */
  emptyDirs: string[];
  /** Entries the browser could not read (permissions, files gone meanwhile). */
  unreadable: number;
}

/** Whether a drag carries files from outside the page (not text or a link of the page). */
export function dragHasFiles(data: DataTransfer | null): boolean {
  return !!data && Array.from(data.types).includes('Files');
}

/**
 * Reads a drop. Call it in the drop handler itself: the browser hands out the entries only
 * while the event is dispatched; reading them may take longer and happens after.
 */
export function readDrop(data: DataTransfer): Promise<Picked> {
  const entries: FileSystemEntry[] = [];
  const loose: File[] = [];
  const items = Array.from(data.items ?? []);
  if (items.length > 0 && typeof items[0]?.webkitGetAsEntry === 'function') {
    for (const item of items) {
      if (item.kind !== 'file') continue;
      const entry = item.webkitGetAsEntry();
      if (entry) entries.push(entry);
      else {
        const file = item.getAsFile();
        if (file) loose.push(file);
      }
    }
  } else loose.push(...Array.from(data.files));
  return collect(entries, loose);
}

/** Files of an `<input type="file" multiple>` or of one with `webkitdirectory` (then with their folders). */
export function readInput(list: FileList | null): Picked {
  const files = Array.from(list ?? []).map((file) => ({ file, relativePath: file.webkitRelativePath || file.name }));
  return { files, emptyDirs: [], unreadable: 0 };
}

async function collect(entries: FileSystemEntry[], loose: File[]): Promise<Picked> {
  const picked: Picked = { files: loose.map((file) => ({ file, relativePath: file.name })), emptyDirs: [], unreadable: 0 };
  const walked = await Promise.all(entries.map((entry) => walk(entry, '')));
  for (const part of walked) {
    picked.files.push(...part.files);
    picked.emptyDirs.push(...part.emptyDirs);
    picked.unreadable += part.unreadable;
  }
  return picked;
}

const collator = new Intl.Collator(undefined, { numeric: true });

async function walk(entry: FileSystemEntry, prefix: string): Promise<Picked> {
  const relativePath = prefix + entry.name;
  try {
    if (entry.isFile) {
      const file = await fileOf(entry as FileSystemFileEntry);
      return { files: [{ file, relativePath }], emptyDirs: [], unreadable: 0 };
    }
    if (entry.isDirectory) {
      const children = await readAll((entry as FileSystemDirectoryEntry).createReader());
      if (children.length === 0) return { files: [], emptyDirs: [relativePath], unreadable: 0 };
      // Readers answer in no particular order: uploads go (and are listed) by name.
      children.sort((a, b) => collator.compare(a.name, b.name));
      const parts = await Promise.all(children.map((child) => walk(child, `${relativePath}/`)));
      return {
        files: parts.flatMap((p) => p.files),
        emptyDirs: parts.flatMap((p) => p.emptyDirs),
        unreadable: parts.reduce((sum, p) => sum + p.unreadable, 0),
      };
    }
  } catch {
    // counted below
  }
  return { files: [], emptyDirs: [], unreadable: 1 };
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

/** A directory reader answers in chunks (100 at a time in Chrome): ask until it answers with none. */
async function readAll(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  const all: FileSystemEntry[] = [];
  for (;;) {
    const chunk = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (chunk.length === 0) return all;
    all.push(...chunk);
  }
}

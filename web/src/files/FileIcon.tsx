/** Small inline icons (no emoji: not every system has a font for them). Decorative only. */
export function FileIcon({ kind }: { kind: 'folder' | 'file' | 'image' | 'link' }) {
  return (
    <svg className={`files-icon files-icon-${kind}`} viewBox="0 0 20 20" width="18" height="18" aria-hidden="true" focusable="false">
      {kind === 'folder' ? (
        <path d="M2 5.5A1.5 1.5 0 0 1 3.5 4h4l2 2h7A1.5 1.5 0 0 1 18 7.5v7a1.5 1.5 0 0 1-1.5 1.5h-13A1.5 1.5 0 0 1 2 14.5z" />
      ) : (
        <>
          <path d="M5 2.5h6.5L15.5 6.5V17a.5.5 0 0 1-.5.5H5a.5.5 0 0 1-.5-.5V3a.5.5 0 0 1 .5-.5z" />
          <path d="M11.5 2.5v4h4" />
          {kind === 'image' && <path d="M6.5 15l2.5-3 2 2 1.5-1.5 1.5 2.5z" />}
          {kind === 'link' && <path d="M7.5 13.5l4-4M8.5 9.5h3v3" />}
        </>
      )}
    </svg>
  );
}
